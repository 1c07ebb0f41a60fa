// The data plane behind real vhost-user sockets: our own frontend (the TypeScript handshake and the native
// driver) attaches to switch ports exactly as QEMU would, and frames cross the switch.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { VirtioUserPort, ethFrame } from '../../src/gen/virtio-user.js';
import { native, type NativeSwitch } from '../../src/dataplane/native.js';
import { VhostUserEndpoint } from '../../src/vhost/endpoint.js';

const BCAST = 'ff:ff:ff:ff:ff:ff';
const MAC_A = '02:00:00:00:00:0a';
const MAC_B = '02:00:00:00:00:0b';

interface Rig {
  sw: NativeSwitch;
  dir: string;
  ports: { id: number; ep: VhostUserEndpoint; socket: string }[];
  frontends: VirtioUserPort[];
}
let rig: Rig | undefined;

function makeRig(n: number, opts: { mode?: 'server' | 'client'; vlans?: number[] } = {}): Rig {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vs-dp-'));
  const sw = new (native().Switch)({ threads: 1 });
  const ports = Array.from({ length: n }, (_, i) => {
    const socket = path.join(dir, `p${i}.sock`);
    const id = sw.addPort({ name: `p${i}`, vlan: opts.vlans?.[i] ?? 0, queuePairs: 1, mtu: 1500 });
    const ep = new VhostUserEndpoint({
      native: sw, portId: id, name: `p${i}`, mode: opts.mode ?? 'server', socketPath: socket,
      queuePairs: 1, mtu: 1500, offloads: true, log: () => {}, reconnectMinMs: 20, reconnectMaxMs: 100,
    });
    return { id, ep, socket };
  });
  rig = { sw, dir, ports, frontends: [] };
  return rig;
}

async function waitFor(cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 10));
  }
}

afterEach(async () => {
  if (!rig) return;
  for (const f of rig.frontends) f.close();
  for (const p of rig.ports) await p.ep.close();
  rig.sw.close();
  fs.rmSync(rig.dir, { recursive: true, force: true });
  rig = undefined;
});

describe('vhost-user ports carry frames through the switch', () => {
  it('server mode: flood, learn, unicast, counters', async () => {
    const r = makeRig(2);
    for (const p of r.ports) p.ep.start();
    const a = await VirtioUserPort.connect(r.ports[0].socket);
    const b = await VirtioUserPort.connect(r.ports[1].socket);
    r.frontends.push(a, b);
    await waitFor(() => r.ports.every((p) => p.ep.state === 'ready'));

    expect(a.send([ethFrame(BCAST, MAC_A)])).toBe(1);
    expect(await b.recvSome(1)).toHaveLength(1);
    expect(b.send([ethFrame(MAC_A, MAC_B, 100)])).toBe(1);
    const got = await a.recvSome(1);
    expect(got).toHaveLength(1);
    expect(got[0].length).toBe(100);
    expect(got[0].subarray(6, 12).toString('hex')).toBe('02000000000b');

    const s0 = r.sw.portStats(r.ports[0].id);
    expect(s0.rxPackets).toBe(1n);
    expect(s0.txPackets).toBe(1n);
    const macs = r.sw.fdbList().map((e) => `${e.mac}@${e.portId}`).sort();
    expect(macs).toEqual([`${MAC_A}@${r.ports[0].id}`, `${MAC_B}@${r.ports[1].id}`]);
  });

  it('client mode: the switch connects to a listening frontend and reconnects after it goes away', async () => {
    const r = makeRig(2, { mode: 'client' });
    for (const p of r.ports) p.ep.start();
    const a = await VirtioUserPort.listen(r.ports[0].socket);
    const b = await VirtioUserPort.listen(r.ports[1].socket);
    r.frontends.push(a, b);
    await waitFor(() => r.ports.every((p) => p.ep.state === 'ready'));
    expect(a.send([ethFrame(BCAST, MAC_A)])).toBe(1);
    expect(await b.recvSome(1)).toHaveLength(1);

    // The frontend on port 1 goes away: the port goes down, then comes back with a new frontend.
    b.close();
    fs.rmSync(r.ports[1].socket, { force: true });
    await waitFor(() => r.ports[1].ep.state !== 'ready');
    const b2 = await VirtioUserPort.listen(r.ports[1].socket);
    r.frontends.push(b2);
    await waitFor(() => r.ports[1].ep.state === 'ready');
    expect(a.send([ethFrame(BCAST, MAC_A)])).toBe(1);
    expect(await b2.recvSome(1)).toHaveLength(1);
  });

  it('VLANs: an access port in another VLAN sees nothing', async () => {
    const r = makeRig(3, { vlans: [0, 0, 10] });
    for (const p of r.ports) p.ep.start();
    const [a, b, c] = await Promise.all(r.ports.map((p) => VirtioUserPort.connect(p.socket)));
    r.frontends.push(a, b, c);
    await waitFor(() => r.ports.every((p) => p.ep.state === 'ready'));
    expect(a.send([ethFrame(BCAST, MAC_A)])).toBe(1);
    expect(await b.recvSome(1)).toHaveLength(1);
    expect(await c.recvSome(1, 200)).toHaveLength(0);
  });

  it('the generator loops traffic through the switch without drops', async () => {
    const r = makeRig(2);
    for (const p of r.ports) p.ep.start();
    const a = await VirtioUserPort.connect(r.ports[0].socket);
    const b = await VirtioUserPort.connect(r.ports[1].socket);
    r.frontends.push(a, b);
    await waitFor(() => r.ports.every((p) => p.ep.state === 'ready'));
    const gen = new (native().Generator)();
    gen.addPort(a.driver, { role: 'io', peer: 1, firstBurst: 32, srcMac: MAC_A, dstMac: MAC_B });
    gen.addPort(b.driver, { role: 'io', peer: 0, firstBurst: 32, srcMac: MAC_B, dstMac: MAC_A });
    gen.start();
    await new Promise((res) => setTimeout(res, 1000));
    gen.stop();
    const [ga, gb] = gen.stats();
    expect(ga.rxPackets + gb.rxPackets).toBeGreaterThan(1000n);
    const s = [0, 1].map((i) => r.sw.portStats(r.ports[i].id));
    for (const st of s) for (const [reason, n] of Object.entries(st.drops)) expect(n, reason).toBe(0n);
    // What the switch delivered to each port is what that generator port received, but for the frames
    // still in the receive ring when the generator stopped (at most the 64 circulating).
    expect(s[0].txPackets - ga.rxPackets).toBeGreaterThanOrEqual(0n);
    expect(s[0].txPackets - ga.rxPackets + s[1].txPackets - gb.rxPackets).toBeLessThanOrEqual(64n);
  });

  it('packed virtqueues: a packed frontend and a split one talk, and the generator loops packed rings', async () => {
    const r = makeRig(3);
    for (const p of r.ports) p.ep.start();
    const a = await VirtioUserPort.connect(r.ports[0].socket, { packed: true });
    const b = await VirtioUserPort.connect(r.ports[1].socket);
    const c = await VirtioUserPort.connect(r.ports[2].socket, { packed: true, queueSize: 100 });  // any size
    r.frontends.push(a, b, c);
    await waitFor(() => r.ports.every((p) => p.ep.state === 'ready'));
    expect(a.send([ethFrame(BCAST, MAC_A)])).toBe(1);
    expect(await b.recvSome(1)).toHaveLength(1);
    expect(await c.recvSome(1)).toHaveLength(1);
    expect(b.send([ethFrame(MAC_A, MAC_B, 300)])).toBe(1);
    const got = await a.recvSome(1);
    expect(got).toHaveLength(1);
    expect(got[0].length).toBe(300);

    // The io loop between the two packed ports, for many laps of c's 100-slot rings.
    const gen = new (native().Generator)();
    gen.addPort(a.driver, { role: 'io', peer: 1, firstBurst: 32, srcMac: MAC_A, dstMac: 'c2:00:00:00:00:0c' });
    gen.addPort(c.driver, { role: 'io', peer: 0, firstBurst: 32, srcMac: 'c2:00:00:00:00:0c', dstMac: MAC_A });
    gen.start();
    await new Promise((res) => setTimeout(res, 1000));
    gen.stop();
    const [ga, gc] = gen.stats();
    expect(ga.rxPackets + gc.rxPackets).toBeGreaterThan(1000n);
    for (const i of [0, 2]) {
      const st = r.sw.portStats(r.ports[i].id);
      for (const [reason, n] of Object.entries(st.drops)) expect(n, `${reason} on port ${i}`).toBe(0n);
    }
  });
});
