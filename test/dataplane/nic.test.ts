// NIC ports against the kernel's own network stack: a veth pair whose far end lives in a network namespace
// this test creates (AF_PACKET and AF_XDP ports), and a tap device the switch creates. Our virtio-user frontend on a
// vhost-user port asks, by ARP, for the kernel endpoint's link-local address and must get the answer.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { VirtioUserPort } from '../../src/gen/virtio-user.js';
import { createLogger } from '../../src/log.js';
import { native, type NativeSwitch } from '../../src/dataplane/native.js';
import { VSwitch } from '../../src/switch/model.js';
import { VhostUserEndpoint } from '../../src/vhost/endpoint.js';

const OUR_MAC = '02:00:00:00:05:0a';
const OUR_IP = '169.254.50.1';

function ip(...args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8' });
}

/** An ARP request for target from us, as a broadcast Ethernet frame. */
function arpRequest(target: string, vlanTag?: number): Buffer {
  const mac = (m: string) => Buffer.from(m.split(':').map((h) => parseInt(h, 16)));
  const ipb = (a: string) => Buffer.from(a.split('.').map(Number));
  const arp = Buffer.concat([
    Buffer.from([0, 1, 8, 0, 6, 4, 0, 1]), mac(OUR_MAC), ipb(OUR_IP), Buffer.alloc(6), ipb(target),
  ]);
  const eth = Buffer.concat([mac('ff:ff:ff:ff:ff:ff'), mac(OUR_MAC)]);
  const type = vlanTag ? Buffer.from([0x81, 0, vlanTag >> 8, vlanTag & 0xff, 8, 6]) : Buffer.from([8, 6]);
  const f = Buffer.concat([eth, type, arp]);
  return f.length < 60 ? Buffer.concat([f, Buffer.alloc(60 - f.length)]) : f;
}

function isArpReplyFrom(f: Buffer, from: string): boolean {
  return f.readUInt16BE(12) === 0x0806 && f.readUInt16BE(20) === 2 && f.subarray(28, 32).join('.') === from;
}

interface Net {
  sw: NativeSwitch;
  ep: VhostUserEndpoint;
  front?: VirtioUserPort;
  dir: string;
  cleanup: (() => void)[];
}
let net: Net | undefined;

async function attachGuestPort(vlan = 0): Promise<Net> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vs-nic-'));
  const sw = new (native().Switch)({ threads: 1 });
  const id = sw.addPort({ name: 'vm', vlan, queuePairs: 1, mtu: 1500 });
  const socket = path.join(dir, 'vm.sock');
  const ep = new VhostUserEndpoint({ native: sw, portId: id, name: 'vm', mode: 'server', socketPath: socket, queuePairs: 1, mtu: 1500, offloads: true, log: () => {} });
  ep.start();
  net = { sw, ep, dir, cleanup: [] };
  net.front = await VirtioUserPort.connect(socket);
  return net;
}

async function expectArpReply(n: Net, target: string): Promise<void> {
  for (let attempt = 0; attempt < 5; attempt++) {
    n.front!.send([arpRequest(target)]);
    const got = await n.front!.recvSome(8, 500);
    if (got.some((f) => isArpReplyFrom(f, target))) return;
  }
  throw new Error(`no ARP reply from ${target}`);
}

function makeNamespace(tag: string): { ns: string; outside: string; inside: string } {
  const ns = `vs-${tag}-${process.pid}`;
  const outside = `vso${tag}${process.pid % 10000}`.slice(0, 15);
  const inside = `vsi${tag}${process.pid % 10000}`.slice(0, 15);
  ip('netns', 'add', ns);
  net!.cleanup.push(() => ip('netns', 'del', ns));
  ip('link', 'add', outside, 'type', 'veth', 'peer', 'name', inside);
  net!.cleanup.push(() => { try { ip('link', 'del', outside); } catch { /* went with the namespace */ } });
  ip('link', 'set', inside, 'netns', ns);
  ip('-n', ns, 'link', 'set', inside, 'up');
  return { ns, outside, inside };
}

afterEach(async () => {
  if (!net) return;
  net.front?.close();
  await net.ep.close();
  net.sw.close();
  for (const c of net.cleanup.reverse()) c();
  fs.rmSync(net.dir, { recursive: true, force: true });
  net = undefined;
});

describe('NIC ports', () => {
  it('AF_PACKET port on a veth: a kernel endpoint in a namespace answers ARP, counters move', async () => {
    const n = await attachGuestPort();
    const { ns, outside, inside } = makeNamespace('a');
    ip('-n', ns, 'addr', 'add', '169.254.50.2/16', 'dev', inside);
    const nic = n.sw.addNicPort({ name: 'uplink', kind: 'nic', iface: outside });
    await expectArpReply(n, '169.254.50.2');
    const s = n.sw.portStats(nic);
    expect(s.txPackets).toBeGreaterThan(0n); // to the wire
    expect(s.rxPackets).toBeGreaterThan(0n); // from the wire
  });

  it('AF_XDP port (forced) on a veth: ARP answered, reported as af_xdp, program detached on removal', async () => {
    const n = await attachGuestPort();
    const { ns, outside, inside } = makeNamespace('x');
    ip('-n', ns, 'addr', 'add', '169.254.50.3/16', 'dev', inside);
    const nic = n.sw.addNicPort({ name: 'uplink', kind: 'nic', iface: outside, backend: 'af_xdp' });
    const info = n.sw.portStats(nic);
    expect(info.backend).toBe('af_xdp');
    expect(['native', 'generic']).toContain(info.xdpMode);
    expect(ip('link', 'show', outside)).toMatch(/prog\/xdp/);
    await expectArpReply(n, '169.254.50.3');
    const s = n.sw.portStats(nic);
    expect(s.txPackets).toBeGreaterThan(0n);
    expect(s.rxPackets).toBeGreaterThan(0n);
    n.sw.removePort(nic);
    expect(ip('link', 'show', outside)).not.toMatch(/prog\/xdp/);
  });

  it('AF_XDP in generic (SKB) mode where driver mode is refused (veth peer MTU too large for native XDP)', async () => {
    const n = await attachGuestPort();
    const { ns, outside, inside } = makeNamespace('g');
    ip('-n', ns, 'link', 'set', inside, 'mtu', '4000');
    ip('-n', ns, 'addr', 'add', '169.254.50.5/16', 'dev', inside);
    const nic = n.sw.addNicPort({ name: 'uplink', kind: 'nic', iface: outside, backend: 'af_xdp' });
    expect(n.sw.portStats(nic)).toMatchObject({ backend: 'af_xdp', xdpMode: 'generic' });
    await expectArpReply(n, '169.254.50.5');
  });

  it('backend auto picks AF_XDP on a veth; af_packet when forced; af_xdp refused with the reason', async () => {
    const n = await attachGuestPort();
    const { ns, outside, inside } = makeNamespace('y');
    ip('-n', ns, 'addr', 'add', '169.254.50.4/16', 'dev', inside);
    const auto = n.sw.addNicPort({ name: 'uplink', kind: 'nic', iface: outside, backend: 'auto' });
    expect(n.sw.portStats(auto).backend).toBe('af_xdp');
    await expectArpReply(n, '169.254.50.4');
    n.sw.removePort(auto);
    const pkt = n.sw.addNicPort({ name: 'uplink', kind: 'nic', iface: outside, backend: 'af_packet' });
    expect(n.sw.portStats(pkt).backend).toBe('af_packet');
    expect(n.sw.portStats(pkt).xdpMode).toBeUndefined();
    await expectArpReply(n, '169.254.50.4');
    n.sw.removePort(pkt);
    // An MTU AF_XDP frames cannot carry: forced fails with the reason, auto falls back and says why.
    expect(() => n.sw.addNicPort({ name: 'big', kind: 'nic', iface: outside, backend: 'af_xdp', mtu: 9000 }))
      .toThrow(/AF_XDP: MTU 9000/);
    const fb = n.sw.addNicPort({ name: 'big', kind: 'nic', iface: outside, backend: 'auto', mtu: 9000 });
    expect(n.sw.portStats(fb).backend).toBe('af_packet');
    expect(n.sw.portStats(fb).backendNote).toMatch(/AF_XDP: MTU 9000/);
  });

  it.each(['af_packet', 'af_xdp'] as const)('VLAN trunk between two switches on a veth pair (%s): VLAN 100 reaches VLAN 100 only, tagged on the wire', async (backend) => {
    // Two "hosts": two switch instances joined by a veth pair, each with a trunk port on its end. (This
    // kernel has no 8021q module, so the far end cannot be a kernel VLAN device.)
    const n = await attachGuestPort(100);
    const a = `vsta${process.pid % 10000}`;
    const b = `vstb${process.pid % 10000}`;
    ip('link', 'add', a, 'type', 'veth', 'peer', 'name', b);
    n.cleanup.push(() => ip('link', 'del', a));
    n.sw.addNicPort({ name: 'trunk', kind: 'nic', iface: a, trunk: true, backend });
    const sw2 = new (native().Switch)({ threads: 1 });
    const eps: VhostUserEndpoint[] = [];
    n.cleanup.push(() => sw2.close());
    sw2.addNicPort({ name: 'trunk', kind: 'nic', iface: b, trunk: true, backend });
    const fronts: VirtioUserPort[] = [];
    for (const vlan of [100, 200]) {
      const id = sw2.addPort({ name: `vm${vlan}`, vlan, queuePairs: 1, mtu: 1500 });
      const socket = path.join(n.dir, `h2-${vlan}.sock`);
      const ep = new VhostUserEndpoint({ native: sw2, portId: id, name: `vm${vlan}`, mode: 'server', socketPath: socket, queuePairs: 1, mtu: 1500, offloads: true, log: () => {} });
      ep.start();
      eps.push(ep);
      fronts.push(await VirtioUserPort.connect(socket));
    }
    const [h2v100, h2v200] = fronts;
    const frame = (dst: string, src: string) => {
      const f = Buffer.alloc(64);
      Buffer.from(dst.split(':').map((h) => parseInt(h, 16))).copy(f, 0);
      Buffer.from(src.split(':').map((h) => parseInt(h, 16))).copy(f, 6);
      f.writeUInt16BE(0x88b5, 12);
      return f;
    };
    try {
      // Broadcast from host 1 VLAN 100: arrives untagged at host 2's VLAN 100 port only.
      let got: Buffer[] = [];
      for (let i = 0; i < 5 && got.length === 0; i++) {
        n.front!.send([frame('ff:ff:ff:ff:ff:ff', OUR_MAC)]);
        got = await h2v100!.recvSome(1, 400);
      }
      expect(got.length).toBeGreaterThan(0);
      expect(got[0]!.readUInt16BE(12)).toBe(0x88b5);
      expect(await h2v200!.recvSome(1, 300)).toHaveLength(0);
      // Unicast back to the learned MAC, across the trunk.
      h2v100!.send([frame(OUR_MAC, '02:00:00:00:06:0b')]);
      const back = await n.front!.recvSome(4, 1000);
      expect(back.some((f) => f.subarray(6, 12).toString('hex') === '02000000060b')).toBe(true);
    } finally {
      for (const f of fronts) f.close();
      for (const ep of eps) await ep.close();
    }
  });

  it('control plane: a nic port reports the backend in use; backend is refused on other port types', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vs-nicctl-'));
    const lines: string[] = [];
    const vs = new VSwitch({
      native: native(), threads: 1, agingSeconds: 300, runDir: dir, socketDirs: [],
      log: createLogger({ level: 'info', write: (l: string) => lines.push(l) }),
      endpointFactory: () => { throw new Error('no vhost-user ports here'); },
    });
    const a = `vscx${process.pid % 10000}`;
    ip('link', 'add', a, 'type', 'veth', 'peer', 'name', `vscy${process.pid % 10000}`);
    try {
      const dflt = await vs.addPort({ name: 'up', type: 'nic', iface: a });
      expect(dflt.activeBackend).toBe('af_xdp');  // the default, auto (src/switch/port.ts DEFAULT_NIC_BACKEND)
      await vs.removePort('up');
      const auto = await vs.addPort({ name: 'up', type: 'nic', iface: a, backend: 'auto' });
      expect(auto.activeBackend).toBe('af_xdp');
      expect(vs.getPort('up').xdpMode).toMatch(/native|generic/);
      expect(vs.portStats('up').backend).toBe('af_xdp');
      await vs.removePort('up');
      const pkt = await vs.addPort({ name: 'up', type: 'nic', iface: a, backend: 'af_packet' });
      expect(pkt.activeBackend).toBe('af_packet');
      await vs.removePort('up');
      const fb = await vs.addPort({ name: 'up', type: 'nic', iface: a, mtu: 9000, backend: 'auto' });
      expect(fb.activeBackend).toBe('af_packet');
      expect(fb.backendNote).toMatch(/MTU 9000/);
      expect(lines.join('\n')).toMatch(/AF_XDP not used/);
      await expect(vs.addPort({ name: 'tp', type: 'tap', iface: 'vs-tapx0', backend: 'af_xdp' })).rejects.toThrow(/only for nic ports/);
    } finally {
      await vs.close();
      ip('link', 'del', a);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('tap port: the switch creates the device; a kernel endpoint on it answers ARP', async () => {
    const n = await attachGuestPort();
    const tap = `vst${process.pid % 100000}`;
    const nic = n.sw.addNicPort({ name: 'tap', kind: 'tap', iface: tap });
    const ns = `vs-tap-${process.pid}`;
    ip('netns', 'add', ns);
    n.cleanup.push(() => ip('netns', 'del', ns));
    ip('link', 'set', tap, 'netns', ns);
    ip('-n', ns, 'addr', 'add', '169.254.53.2/16', 'dev', tap);
    ip('-n', ns, 'link', 'set', tap, 'up');
    await expectArpReply(n, '169.254.53.2');
    expect(n.sw.portStats(nic).rxPackets).toBeGreaterThan(0n);
  });

  it('port security on host ports: a kernel endpoint whose MAC is not the port\'s, or whose IP is not allowed, is dropped and counted', async () => {
    const n = await attachGuestPort();
    const { ns, outside, inside } = makeNamespace('s');
    ip('-n', ns, 'addr', 'add', '169.254.54.2/16', 'dev', inside);
    const insideMac = JSON.parse(ip('-n', ns, '-j', 'link', 'show', inside))[0].address as string;
    const tap = `vss${process.pid % 100000}`;
    const tns = `vs-tsec-${process.pid}`;
    const cases = [
      // [what, security of the port, answered]
      ['the endpoint\'s own MAC and addresses (its IPv6 link-local too)', { macs: [insideMac], ips: ['169.254.54.2/32', 'fe80::/64'] }, true],
      ['another MAC', { macs: ['02:00:00:00:54:99'], ips: [] }, false],
      ['its MAC, another IP', { macs: [insideMac], ips: ['169.254.54.3/32'] }, false],
    ] as const;
    for (const [what, security, answered] of cases) {
      const nic = n.sw.addNicPort({ name: 'uplink', kind: 'nic', iface: outside, security: { macs: [...security.macs], ips: [...security.ips] } });
      ip('-n', ns, 'neigh', 'flush', 'all');
      const before = n.sw.portStats(nic).drops.spoofed;
      let ok = true;
      try { await expectArpReply(n, '169.254.54.2'); } catch { ok = false; }
      const spoofed = n.sw.portStats(nic).drops.spoofed - before;
      expect({ what, answered: ok, spoofedCounted: spoofed > 0n }).toEqual({ what, answered, spoofedCounted: !answered });
      n.sw.removePort(nic);
    }
    // A tap port: the switch creates the device, the kernel's end gets a MAC the port does not allow.
    const nic = n.sw.addNicPort({ name: 'tap', kind: 'tap', iface: tap, security: { macs: ['02:00:00:00:54:98'], ips: [] } });
    ip('netns', 'add', tns);
    n.cleanup.push(() => ip('netns', 'del', tns));
    ip('link', 'set', tap, 'netns', tns);
    ip('-n', tns, 'addr', 'add', '169.254.55.2/16', 'dev', tap);
    ip('-n', tns, 'link', 'set', tap, 'up');
    await expect(expectArpReply(n, '169.254.55.2')).rejects.toThrow(/no ARP reply/);
    expect(n.sw.portStats(nic).drops.spoofed).toBeGreaterThan(0n);
  });

  it('refuses an interface that does not exist, with the reason', () => {
    const sw = new (native().Switch)({ threads: 1 });
    try {
      expect(() => sw.addNicPort({ name: 'x', kind: 'nic', iface: 'vs-no-such0' })).toThrow(/no interface vs-no-such0/);
    } finally {
      sw.close();
    }
  });
});
