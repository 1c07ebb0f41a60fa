// VLAN isolation through the real data plane: our own vhost-user frontend on switch ports over real sockets,
// NIC trunks on veth pairs, and what reaches the wire captured by dumpcap on the far end of the veth.
//   - a static FDB entry naming a port outside the frame's VLAN delivers nothing (and floods nothing)
//   - access ports (VLAN 0 included) drop tagged frames, counted, and none of them leaves a trunk NIC
//   - a guest trunk sends and receives its allowed VLANs tagged, its native VLAN untagged, nothing else
//   - a NIC trunk's allowed list holds in both directions
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_DRIVER_FEATURES, VirtioUserPort, ethFrame } from '../../src/gen/virtio-user.js';
import { native, type NativeSwitch, type NicBackend, type VlanOptions } from '../../src/dataplane/native.js';
import { VIRTIO_NET_F_CSUM } from '../../src/vhost/features.js';
import { VhostUserEndpoint } from '../../src/vhost/endpoint.js';
import { requireTool } from '../../harness/env.js';

const BCAST = 'ff:ff:ff:ff:ff:ff';
const HDR = 12; // virtio-net header with VERSION_1 / MRG_RXBUF
const NEXT = 1;
const NEEDS_CSUM = 1;

const macBytes = (m: string) => Buffer.from(m.split(':').map((h) => parseInt(h, 16)));

/** An Ethernet frame with an optional 802.1Q (or other) tag after the MAC addresses and a text marker. */
function frame(dst: string, src: string, opts: { tag?: number; tpid?: number; marker?: string } = {}): Buffer {
  const body = ethFrame(dst, src, 64, Buffer.from(opts.marker ?? ''));
  if (opts.tag === undefined) return body;
  const tag = Buffer.from([(opts.tpid ?? 0x8100) >> 8, (opts.tpid ?? 0x8100) & 0xff, opts.tag >> 8, opts.tag & 0xff]);
  return Buffer.concat([body.subarray(0, 12), tag, body.subarray(12)]);
}

const vlanOf = (f: Buffer) => (f.readUInt16BE(12) === 0x8100 ? f.readUInt16BE(14) & 0xfff : undefined);
const has = (f: Buffer, marker: string) => f.includes(Buffer.from(marker));

function ip(...args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Both ends of the veth report carrier: frames sent now reach the far end. */
async function linkUp(near: string, ns: string, far: string): Promise<void> {
  const up = (args: string[]) => /state UP/.test(ip(...args));
  await waitFor(() => up(['-o', 'link', 'show', 'dev', near]) && up(['-n', ns, '-o', 'link', 'show', 'dev', far]), 'veth carrier', 10_000);
}

interface Guest {
  id: number;
  ep: VhostUserEndpoint;
  port: VirtioUserPort;
}

interface Rig {
  dir: string;
  switches: NativeSwitch[];
  guests: Guest[];
  cleanup: (() => void)[];
}
let rig: Rig | undefined;

function newRig(): Rig {
  rig = { dir: fs.mkdtempSync(path.join(os.tmpdir(), 'vs-vlan-')), switches: [], guests: [], cleanup: [] };
  return rig;
}

function newSwitch(r: Rig): NativeSwitch {
  const sw = new (native().Switch)({ threads: 1 });
  r.switches.push(sw);
  return sw;
}

let seq = 0;
async function guest(r: Rig, sw: NativeSwitch, vlan: VlanOptions, features = DEFAULT_DRIVER_FEATURES): Promise<Guest> {
  const name = `g${seq++}`;
  const socket = path.join(r.dir, `${name}.sock`);
  const id = sw.addPort({ name, ...vlan, queuePairs: 1, mtu: 1500 });
  const ep = new VhostUserEndpoint({ native: sw, portId: id, name, mode: 'server', socketPath: socket, queuePairs: 1, mtu: 1500, offloads: true, log: () => {} });
  ep.start();
  const port = await VirtioUserPort.connect(socket, { features });
  const g = { id, ep, port };
  r.guests.push(g);
  await waitFor(() => ep.state === 'ready', 'port ready');
  return g;
}

async function waitFor(cond: () => boolean, what: string, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((res) => setTimeout(res, 10));
  }
}

const vlanDrops = (sw: NativeSwitch, id: number) => sw.portStats(id).drops.vlanFilter;

/** A chain of two descriptors on the transmit ring, split at `at` bytes: a tag can straddle them. */
function sendSplit(p: VirtioUserPort, hdr: Buffer, f: Buffer, at: number): void {
  const d = p.driver;
  const whole = Buffer.concat([hdr, f]);
  d.writeBuf(1, 10, whole.subarray(0, at));
  d.writeBuf(1, 11, whole.subarray(at));
  d.writeDesc(1, 10, d.bufGpa(1, 10), at, NEXT, 11);
  d.writeDesc(1, 11, d.bufGpa(1, 11), whole.length - at, 0, 0);
  d.pushAvail(1, 10);
  d.kick(1);
}

/** IPv4/UDP from 169.254.9.1 to 169.254.9.2 with the checksum left to the device (the pseudo-header sum in it). */
function udpPacket(payload: string): Buffer {
  const data = Buffer.from(payload);
  const ipHdr = Buffer.from([0x45, 0, 0, 0, 0, 1, 0, 0, 64, 17, 0, 0, 169, 254, 9, 1, 169, 254, 9, 2]);
  ipHdr.writeUInt16BE(20 + 8 + data.length, 2);
  const udp = Buffer.alloc(8);
  udp.writeUInt16BE(4000, 0);
  udp.writeUInt16BE(5000, 2);
  udp.writeUInt16BE(8 + data.length, 4);
  udp.writeUInt16BE(fold(pseudoSum(ipHdr, 8 + data.length)), 6);
  return Buffer.concat([ipHdr, udp, data]);
}

function sum16(b: Buffer, acc = 0): number {
  for (let i = 0; i < b.length; i += 2) acc += (b[i]! << 8) | (b[i + 1] ?? 0);
  return acc;
}
const fold = (s: number) => {
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
};
const pseudoSum = (ipHdr: Buffer, udpLen: number) => sum16(ipHdr.subarray(12, 20)) + 17 + udpLen;

/** The UDP checksum of an IPv4 packet verifies (sums to 0xffff with its pseudo-header). */
function udpChecksumOk(ipPacket: Buffer): boolean {
  const udpLen = ipPacket.readUInt16BE(20 + 4);
  return fold(pseudoSum(ipPacket, udpLen) + sum16(ipPacket.subarray(20, 20 + udpLen))) === 0xffff;
}

/** dumpcap on an interface (in a namespace): every frame it saw, tags as they were on the wire. */
async function capture(ns: string | undefined, iface: string, file: string): Promise<{ stop(): Promise<Buffer[]> }> {
  requireTool('dumpcap', 'tshark');
  const args = ['dumpcap', '-i', iface, '-P', '-w', file];
  const child = spawn(ns ? 'ip' : args[0]!, ns ? ['netns', 'exec', ns, ...args] : args.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<void>((res) => child.once('exit', () => res()));
  rig!.cleanup.push(() => child.kill('SIGKILL'));
  await waitFor(() => /Capturing on/.test(err) || child.exitCode !== null, 'dumpcap to start', 10_000);
  if (child.exitCode !== null) throw new Error(`dumpcap failed: ${err}`);
  return {
    async stop() {
      child.kill('SIGINT');
      await exited;
      return readPcap(fs.readFileSync(file));
    },
  };
}

function readPcap(b: Buffer): Buffer[] {
  if (b.readUInt32LE(0) !== 0xa1b2c3d4) throw new Error('not a little-endian pcap file');
  const out: Buffer[] = [];
  for (let off = 24; off + 16 <= b.length; ) {
    const len = b.readUInt32LE(off + 8);
    out.push(b.subarray(off + 16, off + 16 + len));
    off += 16 + len;
  }
  return out;
}

/** A veth pair; with ns, the far end lives in a new namespace (up). Names start with "vla" (this helper's). */
function veth(r: Rig, tag: string, ns?: string): { near: string; far: string } {
  const near = `vla${tag}n${process.pid % 10000}`.slice(0, 15);
  const far = `vla${tag}f${process.pid % 10000}`.slice(0, 15);
  ip('link', 'add', near, 'type', 'veth', 'peer', 'name', far);
  r.cleanup.push(() => {
    try {
      ip('link', 'del', near);
    } catch {
      /* went with the namespace */
    }
  });
  if (ns) {
    ip('netns', 'add', ns);
    r.cleanup.push(() => ip('netns', 'del', ns));
    ip('link', 'set', far, 'netns', ns);
    ip('-n', ns, 'link', 'set', far, 'up');
  }
  return { near, far };
}

afterEach(async () => {
  if (!rig) return;
  for (const g of rig.guests) g.port.close();
  for (const g of rig.guests) await g.ep.close();
  for (const sw of rig.switches) sw.close();
  for (const c of rig.cleanup.reverse()) c();
  fs.rmSync(rig.dir, { recursive: true, force: true });
  rig = undefined;
});

describe('VLAN isolation in the data plane', () => {
  it('a static entry naming a port that is not on the frame\'s VLAN delivers nothing, floods nothing, counts the drop', async () => {
    const r = newRig();
    const sw = newSwitch(r);
    const sender = await guest(r, sw, { vlan: 7 });
    const victim = await guest(r, sw, { vlan: 100 });
    const member = await guest(r, sw, { vlan: 7 });
    const VICTIM = '52:54:00:aa:bb:cc';
    const MEMBER = '52:54:00:aa:bb:dd';
    // The data plane takes the entry (the control plane refuses it: test/integration/cli.test.ts): here the
    // delivery check is what stands between VLAN 7 and the VLAN 100 guest.
    sw.fdbAdd(VICTIM, 7, victim.id);
    sw.fdbAdd(MEMBER, 7, member.id);

    expect(sender.port.send([frame(VICTIM, '02:00:00:00:07:01', { marker: 'CROSS' })])).toBe(1);
    await waitFor(() => vlanDrops(sw, sender.id) === 1n, 'vlanFilter drop on the sender');
    expect(await victim.port.recvSome(1, 300)).toHaveLength(0);
    expect(await member.port.recvSome(1, 100)).toHaveLength(0); // not flooded either
    expect(sw.portStats(victim.id).txPackets).toBe(0n);

    // An entry on the port's own VLAN delivers as always.
    expect(sender.port.send([frame(MEMBER, '02:00:00:00:07:01', { marker: 'OWN' })])).toBe(1);
    const got = await member.port.recvSome(1);
    expect(got.some((f) => has(f, 'OWN'))).toBe(true);
    expect(await victim.port.recvSome(1, 100)).toHaveLength(0);
  });

  it.each(['af_packet', 'af_xdp'] as const)('access ports (VLAN 0 and 100) drop tagged frames, counted; none leaves a trunk NIC (%s)', async (backend: NicBackend) => {
    const r = newRig();
    const sw = newSwitch(r);
    const ns = `vla-acc-${backend}-${process.pid}`;
    const { near, far } = veth(r, backend === 'af_xdp' ? 'x' : 'p', ns);
    sw.addNicPort({ name: 'uplink', kind: 'nic', iface: near, trunk: true, backend });
    const v0 = await guest(r, sw, { vlan: 0 });
    const v100 = await guest(r, sw, { vlan: 100 });
    const cap = await capture(ns, far, path.join(r.dir, 'wire.pcap'));
    await linkUp(near, ns, far);

    const A0 = '02:00:00:00:00:a0';
    const A100 = '02:00:00:00:01:a0';
    expect(v0.port.send([
      frame(BCAST, A0, { tag: 7, marker: 'INJECT-0-Q' }),
      frame(BCAST, A0, { tag: 7, tpid: 0x88a8, marker: 'INJECT-0-AD' }),
      frame(BCAST, A0, { tag: 0, marker: 'INJECT-0-PRIO' }),
    ])).toBe(3);
    expect(v100.port.send([frame(BCAST, A100, { tag: 7, marker: 'INJECT-100-Q' }), frame(BCAST, A100, { tag: 100, marker: 'INJECT-100-OWN' })])).toBe(2);
    await waitFor(() => vlanDrops(sw, v0.id) === 3n && vlanDrops(sw, v100.id) === 2n, 'vlanFilter drops');
    // Untagged frames from the same ports do reach the wire: VLAN 0 untagged, VLAN 100 tagged 100. Three of each:
    // on a loaded machine the kernel may lose one on the veth, and one that arrives is what is checked.
    for (let i = 0; i < 3; i++) {
      expect(v0.port.send([frame(BCAST, A0, { marker: 'PLAIN-0' })])).toBe(1);
      expect(v100.port.send([frame(BCAST, A100, { marker: 'PLAIN-100' })])).toBe(1);
    }
    await waitFor(() => sw.portStats(v0.id).rxPackets === 6n && sw.portStats(v100.id).rxPackets === 5n, 'frames taken');
    await new Promise((res) => setTimeout(res, 300));
    const wire = await cap.stop();

    expect(wire.filter((f) => has(f, 'INJECT')).map((f) => f.toString('hex'))).toEqual([]);
    const plain0 = wire.filter((f) => has(f, 'PLAIN-0'));
    const plain100 = wire.filter((f) => has(f, 'PLAIN-100'));
    expect(plain0.length).toBeGreaterThan(0);
    expect(plain100.length).toBeGreaterThan(0);
    expect(new Set(plain0.map(vlanOf))).toEqual(new Set([undefined]));
    expect(new Set(plain100.map(vlanOf))).toEqual(new Set([100]));
    // Each guest's other ports saw none of the tagged frames either.
    expect((await v0.port.recvSome(4, 100)).filter((f) => has(f, 'INJECT'))).toHaveLength(0);
  });

  it('a guest trunk: allowed VLANs tagged both ways, its native VLAN untagged, other VLANs neither sent nor received', async () => {
    const r = newRig();
    const sw = newSwitch(r);
    const trunk = await guest(r, sw, { trunk: true, vlan: 5, allowedVlans: [100, 200] });
    const a100 = await guest(r, sw, { vlan: 100 });
    const a300 = await guest(r, sw, { vlan: 300 });
    const a5 = await guest(r, sw, { vlan: 5 });
    const T = '02:00:00:00:0e:01';
    const A100 = '02:00:00:00:0e:64';

    // From the trunk: VLAN 100 tagged reaches the VLAN 100 guest untagged, and nobody else.
    expect(trunk.port.send([frame(BCAST, T, { tag: 100, marker: 'T-100' })])).toBe(1);
    const at100 = await a100.port.recvSome(1);
    expect(at100.map((f) => [vlanOf(f), has(f, 'T-100'), f.length])).toEqual([[undefined, true, 64]]);
    // VLAN 300 is not allowed: dropped, counted. Tagged with the native VLAN, or untagged: the native VLAN.
    expect(trunk.port.send([frame(BCAST, T, { tag: 300, marker: 'T-300' })])).toBe(1);
    await waitFor(() => vlanDrops(sw, trunk.id) === 1n, 'vlanFilter drop on the trunk');
    expect(trunk.port.send([frame(BCAST, T, { marker: 'T-NATIVE' }), frame(BCAST, T, { tag: 5, marker: 'T-5' })])).toBe(2);
    const at5 = await a5.port.recvSome(2);
    expect(at5.map((f) => [vlanOf(f), f.length])).toEqual([[undefined, 64], [undefined, 64]]);
    expect(at5.some((f) => has(f, 'T-NATIVE')) && at5.some((f) => has(f, 'T-5'))).toBe(true);
    expect(await a300.port.recvSome(1, 200)).toHaveLength(0);
    expect(await a100.port.recvSome(1, 100)).toHaveLength(0);

    // Toward the trunk: VLAN 100 arrives tagged 100 (unicast to the learned MAC), VLAN 5 untagged, VLAN 300 not at all.
    expect(a100.port.send([frame(T, A100, { marker: 'A-100' })])).toBe(1);
    const fromA100 = await trunk.port.recvSome(1);
    expect(fromA100.map((f) => [vlanOf(f), has(f, 'A-100'), f.length])).toEqual([[100, true, 68]]);
    expect(fromA100[0]!.subarray(0, 12).toString('hex')).toBe(macBytes(T).toString('hex') + macBytes(A100).toString('hex'));
    expect(fromA100[0]!.readUInt16BE(16)).toBe(0x88b5);
    expect(a5.port.send([frame(BCAST, '02:00:00:00:0e:05', { marker: 'A-5' })])).toBe(1);
    expect((await trunk.port.recvSome(1)).map((f) => [vlanOf(f), has(f, 'A-5')])).toEqual([[undefined, true]]);
    expect(a300.port.send([frame(BCAST, '02:00:00:00:0e:2c', { marker: 'A-300' })])).toBe(1);
    expect(await trunk.port.recvSome(1, 200)).toHaveLength(0);
    // The trunk's MAC was learned on VLAN 100 only: the VLAN 300 guest cannot reach it by unicast either.
    expect(a300.port.send([frame(T, '02:00:00:00:0e:2c', { marker: 'A-300-U' })])).toBe(1);
    expect(await trunk.port.recvSome(1, 200)).toHaveLength(0);
  });

  it('a tag across descriptors is cut right, and a pending checksum follows the tag out and back in', async () => {
    const r = newRig();
    const sw = newSwitch(r);
    const csum = DEFAULT_DRIVER_FEATURES | (1n << BigInt(VIRTIO_NET_F_CSUM)); // sends NEEDS_CSUM; no GUEST_CSUM
    const trunk = await guest(r, sw, { trunk: true }, csum);
    const a100 = await guest(r, sw, { vlan: 100 }, csum);
    const T = '02:00:00:00:0f:01';
    const A = '02:00:00:00:0f:64';
    const hdr = (csumStart: number) => {
      const h = Buffer.alloc(HDR);
      h[0] = NEEDS_CSUM;
      h.writeUInt16LE(csumStart, 6);
      h.writeUInt16LE(6, 8); // the UDP checksum field
      h.writeUInt16LE(1, 10); // num_buffers
      return h;
    };
    const eth = (dst: string, src: string, tag?: number) =>
      Buffer.concat([macBytes(dst), macBytes(src), ...(tag ? [Buffer.from([0x81, 0, tag >> 8, tag & 0xff])] : []), Buffer.from([8, 0])]);

    // Trunk → access: the tag split after its first byte, the checksum 4 bytes further in than it will be.
    const tagged = Buffer.concat([eth(A, T, 100), udpPacket('through-the-cut')]);
    sendSplit(trunk.port, hdr(14 + 4 + 20), tagged, HDR + 13);
    const got = await a100.port.recvSome(1);
    expect(got).toHaveLength(1);
    expect(got[0]!.length).toBe(tagged.length - 4);
    expect(got[0]!.readUInt16BE(12)).toBe(0x0800);
    expect(udpChecksumOk(got[0]!.subarray(14))).toBe(true);

    // Access → trunk: the tag goes in, and the checksum the switch fills lands 4 bytes further in.
    const plain = Buffer.concat([eth(T, A), udpPacket('into-the-tag')]);
    sendSplit(a100.port, hdr(14 + 20), plain, HDR + 6);
    const back = await trunk.port.recvSome(1);
    expect(back.map((f) => [vlanOf(f), f.length])).toEqual([[100, plain.length + 4]]);
    expect(udpChecksumOk(back[0]!.subarray(18))).toBe(true);
    expect(sw.portStats(trunk.id).drops.badHeader).toBe(0n);
  });

  it.each(['af_packet', 'af_xdp'] as const)('a NIC trunk with allowed VLANs: other VLANs neither leave nor enter it (%s)', async (backend: NicBackend) => {
    const r = newRig();
    const { near, far } = veth(r, backend === 'af_xdp' ? 'tx' : 'tp');
    // Host 1: the trunk under test carries VLAN 100 only. Host 2 (another switch on the far end) carries all.
    const sw1 = newSwitch(r);
    const up1 = sw1.addNicPort({ name: 'uplink', kind: 'nic', iface: near, trunk: true, allowedVlans: [100], backend });
    const g100 = await guest(r, sw1, { vlan: 100 });
    const g200 = await guest(r, sw1, { vlan: 200 });
    const sw2 = newSwitch(r);
    sw2.addNicPort({ name: 'uplink', kind: 'nic', iface: far, trunk: true, backend });
    const h100 = await guest(r, sw2, { vlan: 100 });
    const h200 = await guest(r, sw2, { vlan: 200 });
    const G100 = '02:00:00:00:10:01';

    // VLAN 100 crosses (the first frames may be lost while the links come up).
    let got: Buffer[] = [];
    for (let i = 0; i < 10 && got.length === 0; i++) {
      g100.port.send([frame(BCAST, G100, { marker: 'H1-100' })]);
      got = (await h100.port.recvSome(1, 300)).filter((f) => has(f, 'H1-100'));
    }
    expect(got.length).toBeGreaterThan(0);
    h100.port.send([frame(G100, '02:00:00:00:20:01', { marker: 'H2-100' })]);
    expect((await g100.port.recvSome(4, 1000)).some((f) => has(f, 'H2-100'))).toBe(true);

    // Out: VLAN 200 frames are not put on the trunk at all.
    const txBefore = sw1.portStats(up1).txPackets;
    g200.port.send([frame(BCAST, '02:00:00:00:10:02', { marker: 'H1-200' })]);
    await waitFor(() => sw1.portStats(g200.id).rxPackets === 1n, 'frame taken from the VLAN 200 guest');
    expect(await h200.port.recvSome(1, 300)).toHaveLength(0);
    expect(sw1.portStats(up1).txPackets).toBe(txBefore);

    // In: VLAN 200 frames from the wire are dropped and counted on the trunk, and reach no guest.
    for (let i = 0; i < 10 && vlanDrops(sw1, up1) === 0n; i++) {
      h200.port.send([frame(BCAST, '02:00:00:00:20:02', { marker: 'H2-200' })]);
      await new Promise((res) => setTimeout(res, 100));
    }
    expect(vlanDrops(sw1, up1)).toBeGreaterThan(0n);
    expect((await g200.port.recvSome(4, 200)).filter((f) => has(f, 'H2-200'))).toHaveLength(0);
    expect((await g100.port.recvSome(4, 100)).filter((f) => has(f, 'H2-200'))).toHaveLength(0);
  });
});
