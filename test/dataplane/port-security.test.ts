// Port security through real vhost-user sockets: our own frontend sends hand-built frames (MAC, IPv4, ARP, IPv6,
// neighbour discovery) from a secured port; the switch must drop and count (`spoofed`) every frame that claims
// another address, pass what the port owns, and never let a dropped frame move another port's FDB entry.
//
//   a (secured: MAC_A, pair MAC_A2; 169.254.40.1, 169.254.41.0/24, fe80::a) --+-- v (victim, plain, MAC_V)
//                                                                               +-- o (observer, plain)
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { VirtioUserPort } from '../../src/gen/virtio-user.js';
import { native, type NativeSwitch, type PortSecurityOptions } from '../../src/dataplane/native.js';
import { VhostUserEndpoint } from '../../src/vhost/endpoint.js';

const BCAST = 'ff:ff:ff:ff:ff:ff';
const MAC_A = '02:00:00:00:40:0a';
const MAC_A2 = '02:00:00:00:40:aa';
const MAC_V = '02:00:00:00:40:0b';
const MAC_O = '02:00:00:00:40:0c';
const IP_A = '169.254.40.1';
const IP_V = '169.254.40.2';
const LL_A = 'fe80::a';
const LL_V = 'fe80::b';
const SECURE: PortSecurityOptions = { macs: [MAC_A, MAC_A2], ips: [`${IP_A}/32`, '169.254.41.0/24', LL_A] };

// --- frame builders (network byte order, no checksums: the switch does not look at them) ---

const macBytes = (m: string) => Buffer.from(m.split(':').map((h) => parseInt(h, 16)));
const v4 = (a: string) => Buffer.from(a.split('.').map(Number));
function v6(a: string): Buffer {
  const [head, tail] = a.split('::');
  const groups = (s: string | undefined) => (s ? s.split(':').map((g) => parseInt(g, 16)) : []);
  const h = groups(head);
  const t = tail === undefined ? [] : groups(tail);
  const all = [...h, ...Array(8 - h.length - t.length).fill(0), ...t];
  const b = Buffer.alloc(16);
  all.forEach((g, i) => b.writeUInt16BE(g, 2 * i));
  return b;
}

function eth(dst: string, src: string, type: number, payload: Buffer): Buffer {
  const f = Buffer.alloc(Math.max(60, 14 + payload.length));
  macBytes(dst).copy(f, 0);
  macBytes(src).copy(f, 6);
  f.writeUInt16BE(type, 12);
  payload.copy(f, 14);
  return f;
}

/** The same frame with an 802.1Q tag after the MACs (a guest that tags its own frames). */
function tagged(frame: Buffer, vid: number): Buffer {
  const tag = Buffer.from([0x81, 0x00, vid >> 8, vid & 0xff]);
  return Buffer.concat([frame.subarray(0, 12), tag, frame.subarray(12)]);
}

function ipv4(src: string, dst: string, proto: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(20);
  h[0] = 0x45;
  h.writeUInt16BE(20 + payload.length, 2);
  h[8] = 64;
  h[9] = proto;
  v4(src).copy(h, 12);
  v4(dst).copy(h, 16);
  return Buffer.concat([h, payload]);
}

function udp(sport: number, dport: number): Buffer {
  const u = Buffer.alloc(8);
  u.writeUInt16BE(sport, 0);
  u.writeUInt16BE(dport, 2);
  u.writeUInt16BE(8, 4);
  return u;
}

function arp(op: number, sha: string, spa: string, tpa: string): Buffer {
  const a = Buffer.alloc(28);
  a.writeUInt16BE(1, 0);
  a.writeUInt16BE(0x0800, 2);
  a[4] = 6;
  a[5] = 4;
  a.writeUInt16BE(op, 6);
  macBytes(sha).copy(a, 8);
  v4(spa).copy(a, 14);
  v4(tpa).copy(a, 24);
  return a;
}

/** IPv6 with optional extension headers (type numbers, each an 8-byte header) before `next`. */
function ipv6(src: string, dst: string, next: number, payload: Buffer, ext: number[] = []): Buffer {
  const exts = ext.map((_, i) => {
    const e = Buffer.alloc(8);
    e[0] = i + 1 < ext.length ? ext[i + 1] : next;
    return e;
  });
  const body = Buffer.concat([...exts, payload]);
  const h = Buffer.alloc(40);
  h[0] = 0x60;
  h.writeUInt16BE(body.length, 4);
  h[6] = ext.length ? ext[0] : next;
  h[7] = 255;
  v6(src).copy(h, 8);
  v6(dst).copy(h, 24);
  return Buffer.concat([h, body]);
}

/** A neighbour solicitation (135) or advertisement (136) with link-layer address options [type, MAC]. */
function nd(type: 135 | 136, target: string, opts: Array<[1 | 2, string]> = []): Buffer {
  const m = Buffer.alloc(24);
  m[0] = type;
  v6(target).copy(m, 8);
  const o = opts.map(([t, mac]) => Buffer.concat([Buffer.from([t, 1]), macBytes(mac)]));
  return Buffer.concat([m, ...o]);
}

const mldv2Report = () => Buffer.from([143, 0, 0, 0, 0, 0, 0, 0]);

const ETH_IP = 0x0800;
const ETH_ARP = 0x0806;
const ETH_IP6 = 0x86dd;
const ICMP6 = 58;
const SOLICITED = 'ff02::1:ff00:a';

// --- the rig ---

interface Rig {
  sw: NativeSwitch;
  dir: string;
  eps: VhostUserEndpoint[];
  fronts: VirtioUserPort[];
  ids: { a: number; v: number; o: number };
  a: VirtioUserPort;
  v: VirtioUserPort;
  o: VirtioUserPort;
}
let rig: Rig | undefined;

async function waitFor(cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function makeRig(security: PortSecurityOptions | undefined): Promise<Rig> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vs-sec-'));
  const sw = new (native().Switch)({ threads: 1 });
  const names = ['a', 'v', 'o'] as const;
  const ids = {} as Rig['ids'];
  const eps = names.map((n) => {
    // Guest trunks (native VLAN 0, every VLAN tagged), so that tagged frames are carried and their inner headers checked.
    ids[n] = sw.addPort({ name: n, vlan: 0, trunk: true, queuePairs: 1, mtu: 1500, ...(n === 'a' && security ? { security } : {}) });
    return new VhostUserEndpoint({
      native: sw, portId: ids[n], name: n, mode: 'server', socketPath: path.join(dir, `${n}.sock`),
      queuePairs: 1, mtu: 1500, offloads: false, log: () => {},
    });
  });
  rig = { sw, dir, eps, fronts: [], ids } as unknown as Rig;
  for (const ep of eps) ep.start();
  const fronts = await Promise.all(names.map((n) => VirtioUserPort.connect(path.join(dir, `${n}.sock`))));
  rig.fronts = fronts;
  [rig.a, rig.v, rig.o] = fronts;
  await waitFor(() => eps.every((ep) => ep.state === 'ready'));
  return rig;
}

afterEach(async () => {
  if (!rig) return;
  for (const f of rig.fronts) f.close();
  for (const ep of rig.eps) await ep.close();
  rig.sw.close();
  fs.rmSync(rig.dir, { recursive: true, force: true });
  rig = undefined;
});

const spoofed = (r: Rig) => r.sw.portStats(r.ids.a).drops.spoofed;
const where = (r: Rig, mac: string) => r.sw.fdbList().find((e) => e.mac === mac)?.portId;

/**
 * Sends frames from a, then a marker frame a may always send; once the marker reached o, every frame before it
 * was judged (one queue, one poll thread, in order). Returns what o received before the marker.
 */
async function sendFromA(r: Rig, frames: Buffer[]): Promise<Buffer[]> {
  const marker = eth(BCAST, MAC_A, ETH_ARP, arp(1, MAC_A, IP_A, '169.254.40.99'));
  for (const f of [...frames, marker]) expect(r.a.send([f])).toBe(1);
  const got: Buffer[] = [];
  await waitFor(() => {
    got.push(...r.o.recv(64));
    return got.some((g) => g.equals(marker));
  });
  return got.filter((g) => !g.equals(marker));
}

describe('port security', () => {
  it('a frame from another port\'s MAC is dropped and counted, and that port\'s FDB entry does not move', async () => {
    const r = await makeRig(SECURE);
    // v announces itself: its MAC is learned on v.
    expect(r.v.send([eth(BCAST, MAC_V, ETH_ARP, arp(1, MAC_V, IP_V, IP_A))])).toBe(1);
    await waitFor(() => where(r, MAC_V) === r.ids.v);
    expect((await r.o.recvSome(1)).length).toBe(1);

    const before = spoofed(r);
    const leaked = await sendFromA(r, [
      eth(BCAST, MAC_V, ETH_ARP, arp(2, MAC_V, IP_V, IP_A)), // v's MAC and v's IP
      eth(MAC_O, MAC_V, ETH_IP, ipv4(IP_A, '169.254.40.3', 17, udp(1, 2))), // v's MAC, a's own IP
      eth(BCAST, '02:00:00:00:40:ff', ETH_IP, ipv4(IP_A, '169.254.40.3', 17, udp(1, 2))), // a MAC nobody has
    ]);
    expect(leaked).toEqual([]);
    expect(spoofed(r) - before).toBe(3n);
    expect(where(r, MAC_V)).toBe(r.ids.v);
    expect(where(r, '02:00:00:00:40:ff')).toBeUndefined();

    // Traffic to v still goes to v, and not to a.
    r.a.recv(256);
    const toV = eth(MAC_V, MAC_O, ETH_IP, ipv4('169.254.40.3', IP_V, 17, udp(3, 4)));
    expect(r.o.send([toV])).toBe(1);
    const atV: Buffer[] = [];
    await waitFor(() => {
      atV.push(...r.v.recv(64));
      return atV.some((g) => g.equals(toV));
    });
    expect(r.a.recv(256).some((g) => g.equals(toV))).toBe(false);
  });

  it('drops and counts each kind of address spoofing: IPv4 source, ARP sender, IPv6 source, ND target and link-layer option', async () => {
    const r = await makeRig(SECURE);
    const cases: Array<[string, Buffer]> = [
      ['IPv4 source of another', eth(BCAST, MAC_A, ETH_IP, ipv4(IP_V, '169.254.40.3', 17, udp(1, 2)))],
      ['IPv4 0.0.0.0, not DHCP', eth(BCAST, MAC_A, ETH_IP, ipv4('0.0.0.0', '255.255.255.255', 17, udp(68, 1234)))],
      ['IPv4 header cut short', eth(BCAST, MAC_A, ETH_IP, Buffer.alloc(0)).subarray(0, 30)],
      ['ARP reply for another IP', eth(BCAST, MAC_A, ETH_ARP, arp(2, MAC_A, IP_V, '169.254.40.3'))],
      ['ARP request from another IP', eth(BCAST, MAC_A, ETH_ARP, arp(1, MAC_A, IP_V, '169.254.40.3'))],
      ['ARP sender MAC not the source MAC', eth(BCAST, MAC_A, ETH_ARP, arp(2, MAC_V, IP_A, '169.254.40.3'))],
      ['IPv6 source of another', eth(BCAST, MAC_A, ETH_IP6, ipv6(LL_V, 'ff02::1', 17, udp(1, 2)))],
      ['NA for another target', eth(BCAST, MAC_A, ETH_IP6, ipv6(LL_A, 'ff02::1', ICMP6, nd(136, LL_V, [[2, MAC_A]])))],
      ['NA with another MAC', eth(BCAST, MAC_A, ETH_IP6, ipv6(LL_A, 'ff02::1', ICMP6, nd(136, LL_A, [[2, MAC_V]])))],
      ['NS with another source MAC', eth(BCAST, MAC_A, ETH_IP6, ipv6(LL_A, SOLICITED, ICMP6, nd(135, LL_V, [[1, MAC_V]])))],
      ['DAD for another address', eth(BCAST, MAC_A, ETH_IP6, ipv6('::', SOLICITED, ICMP6, nd(135, LL_V)))],
      ['NA from ::', eth(BCAST, MAC_A, ETH_IP6, ipv6('::', 'ff02::1', ICMP6, nd(136, LL_A)))],
      ['NA for another target behind two extension headers',
        eth(BCAST, MAC_A, ETH_IP6, ipv6(LL_A, 'ff02::1', ICMP6, nd(136, LL_V), [0, 60]))],
      ['nine extension headers (not parsed)', eth(BCAST, MAC_A, ETH_IP6, ipv6(LL_A, 'ff02::1', 17, udp(1, 2), Array(9).fill(60)))],
      ['UDP from ::', eth(BCAST, MAC_A, ETH_IP6, ipv6('::', 'ff02::1', 17, udp(1, 2)))],
      ['not IP or ARP (allowed addresses set)', eth(BCAST, MAC_A, 0x88b5, Buffer.alloc(10))],
      ['tagged IPv4 from another IP', tagged(eth(BCAST, MAC_A, ETH_IP, ipv4(IP_V, '169.254.40.3', 17, udp(1, 2))), 7)],
      ['tagged NA for another target', tagged(eth(BCAST, MAC_A, ETH_IP6, ipv6(LL_A, 'ff02::1', ICMP6, nd(136, LL_V))), 7)],
    ];
    for (const [what, frame] of cases) {
      const before = spoofed(r);
      expect(await sendFromA(r, [frame]), what).toEqual([]);
      expect(spoofed(r) - before, what).toBe(1n);
    }
  });

  it('passes what the port owns: its MACs, addresses and prefixes, DHCP from 0.0.0.0, ARP probes, DAD and MLD from ::, address resolution', async () => {
    const r = await makeRig(SECURE);
    const ok: Array<[string, Buffer]> = [
      ['IPv4 from its address', eth(BCAST, MAC_A, ETH_IP, ipv4(IP_A, '169.254.40.3', 17, udp(1, 2)))],
      ['IPv4 from the allowed pair MAC and prefix', eth(BCAST, MAC_A2, ETH_IP, ipv4('169.254.41.77', '169.254.40.3', 17, udp(1, 2)))],
      ['DHCP discover', eth(BCAST, MAC_A, ETH_IP, ipv4('0.0.0.0', '255.255.255.255', 17, udp(68, 67)))],
      ['ARP request', eth(BCAST, MAC_A, ETH_ARP, arp(1, MAC_A, IP_A, IP_V))],
      ['ARP probe', eth(BCAST, MAC_A, ETH_ARP, arp(1, MAC_A, '0.0.0.0', IP_A))],
      ['ARP from the pair', eth(BCAST, MAC_A2, ETH_ARP, arp(2, MAC_A2, '169.254.41.5', IP_V))],
      ['IPv6 from its link-local address', eth(BCAST, MAC_A, ETH_IP6, ipv6(LL_A, 'ff02::1', 17, udp(1, 2)))],
      ['DAD for its address', eth(BCAST, MAC_A, ETH_IP6, ipv6('::', SOLICITED, ICMP6, nd(135, LL_A)))],
      ['MLDv2 report from :: behind hop-by-hop', eth(BCAST, MAC_A, ETH_IP6, ipv6('::', 'ff02::16', ICMP6, mldv2Report(), [0]))],
      ['NS for a neighbour', eth(BCAST, MAC_A, ETH_IP6, ipv6(LL_A, SOLICITED, ICMP6, nd(135, LL_V, [[1, MAC_A]])))],
      ['NA for itself', eth(BCAST, MAC_A, ETH_IP6, ipv6(LL_A, 'ff02::1', ICMP6, nd(136, LL_A, [[2, MAC_A]])))],
      ['tagged IPv4 from its address', tagged(eth(BCAST, MAC_A, ETH_IP, ipv4(IP_A, '169.254.40.3', 17, udp(1, 2))), 7)],
    ];
    const before = spoofed(r);
    const got = await sendFromA(r, ok.map(([, f]) => f));
    expect(got.length).toBe(ok.length);
    ok.forEach(([what, f], i) => expect(got[i].equals(f), what).toBe(true));
    expect(spoofed(r)).toBe(before);
  });

  it('with a MAC and no allowed addresses only the source MAC is checked', async () => {
    const r = await makeRig({ macs: [MAC_A], ips: [] });
    const before = spoofed(r);
    const ok = [eth(BCAST, MAC_A, ETH_ARP, arp(2, MAC_A, IP_V, IP_A)), eth(BCAST, MAC_A, 0x88b5, Buffer.alloc(10))];
    expect(await sendFromA(r, [...ok, eth(BCAST, MAC_V, ETH_IP, ipv4(IP_A, IP_V, 17, udp(1, 2)))])).toEqual(ok);
    expect(spoofed(r) - before).toBe(1n);
  });

  it('off by default: a plain port spoofs freely (and moves the other port\'s entry), nothing counted', async () => {
    const r = await makeRig(undefined);
    expect(r.v.send([eth(BCAST, MAC_V, ETH_ARP, arp(1, MAC_V, IP_V, IP_A))])).toBe(1);
    await waitFor(() => where(r, MAC_V) === r.ids.v);
    expect((await r.o.recvSome(1)).length).toBe(1);
    const spoof = eth(BCAST, MAC_V, ETH_ARP, arp(2, MAC_V, IP_V, IP_A));
    expect(await sendFromA(r, [spoof])).toHaveLength(1);
    expect(where(r, MAC_V)).toBe(r.ids.a);
    expect(spoofed(r)).toBe(0n);
  });

  it('the data plane refuses a malformed table', () => {
    const sw = new (native().Switch)({ threads: 1 });
    try {
      const add = (security: unknown) => sw.addPort({ name: 'x', vlan: 0, queuePairs: 1, mtu: 1500, security } as never);
      expect(() => add({ macs: [], ips: [] })).toThrow(/must name the port's MAC/);
      expect(() => add({ macs: ['01:00:00:00:00:01'], ips: [] })).toThrow(/not a unicast MAC/);
      expect(() => add({ macs: [MAC_A], ips: ['169.254.0.0/33'] })).toThrow(/bad prefix length/);
      expect(() => add({ macs: [MAC_A], ips: ['fe80::zz'] })).toThrow(/not an IPv4 or IPv6 address/);
      expect(() => add({ macs: [MAC_A], ips: 'x' })).toThrow(/must be an array/);
    } finally {
      sw.close();
    }
  });
});
