// Port security with real QEMU guests: a guest that takes another guest's MAC, and one that takes another guest's
// IP and answers ARP for it, cannot draw that guest's traffic to itself. The victim keeps receiving its pings,
// its FDB entry stays on its port, the attacker's frames are counted as `spoofed`, and the attacker's own
// traffic (ARP, IPv4, IPv6 link-local, DAD, MLD) passes untouched.
//
//   guest p (169.254.30.1) --vhu-p--+
//   guest v (169.254.30.2) --vhu-v--+-- vhost-switch      vhu-a: portSecurity, mac MAC_A,
//   guest a (169.254.30.3) --vhu-a--+                     allowedIps 169.254.30.3/32 + its EUI-64 link-local
//
// The victim's and the pinger's ports are plain, with learned FDB entries: what port security on the attacker's
// port protects, without the help of a static entry.
import { afterAll, describe, expect, it } from 'vitest';
import { eui64LinkLocal } from '../../src/config.js';
import { makeRunDir, requireTool, uniqueSocketPath } from '../../harness/env.js';
import { startGuest, type Guest } from '../support/qemu.js';
import type { DaemonProcess } from '../integration/support/daemon.js';
import { bootAndLink, fullStats, parsePing, pingUntilOk, startSpecSwitch } from './lib-e2e.js';

const MAC_P = '52:54:00:00:30:01';
const MAC_V = '52:54:00:00:30:02';
const MAC_A = '52:54:00:00:30:03';
const IP_P = '169.254.30.1';
const IP_V = '169.254.30.2';
const IP_A = '169.254.30.3';

/** Icmp InEchos of a guest (/proc/net/snmp): echo requests its kernel received. */
async function inEchos(g: Guest): Promise<number> {
  const lines = (await g.runOk('grep "^Icmp:" /proc/net/snmp')).trim().split('\n').map((l) => l.trim().split(/\s+/));
  const i = lines[0].indexOf('InEchos');
  if (i < 0 || lines.length < 2) throw new Error(`no InEchos in /proc/net/snmp of ${g.name}: ${lines.join(' / ')}`);
  return Number(lines[1][i]);
}

async function fdbPort(d: DaemonProcess, mac: string): Promise<string | undefined> {
  const r = await d.api.request('GET', '/v1/fdb');
  return (r.body as { entries: Array<{ mac: string; port: string }> }).entries.find((e) => e.mac === mac)?.port;
}

/** Waits until the guest's IPv6 link-local address has passed duplicate address detection. */
async function linkLocalReady(g: Guest): Promise<void> {
  // A subshell: `exit` must not end the console's shell.
  await g.runOk('(for i in $(seq 60); do ip -6 addr show dev eth0 | grep fe80 | grep -qv tentative && exit 0; sleep 1; done; exit 1)', 90_000);
}

const spoofed = async (d: DaemonProcess) => (await fullStats(d, 'vhu-a')).drops.spoofed ?? 0;

/** p pings v `n` times: every echo must come back, and v's kernel must have received every request. */
async function victimKeepsItsPings(p: Guest, v: Guest, n: number): Promise<void> {
  const before = await inEchos(v);
  const r = await p.run(`ping -c ${n} -i 0.5 -W 2 ${IP_V}`, 60_000);
  expect(parsePing(r.output), r.output).toEqual({ transmitted: n, received: n });
  expect((await inEchos(v)) - before).toBeGreaterThanOrEqual(n);
}

describe('port security with QEMU guests', () => {
  const guests: Guest[] = [];
  const daemons: DaemonProcess[] = [];
  afterAll(async () => {
    await Promise.all(guests.map((g) => g.stop()));
    await Promise.all(daemons.map((d) => d.stop()));
  });

  it('a guest that takes another guest\'s MAC, or its IP and answers ARP for it, cannot steal its traffic; spoofed counts it', async () => {
    requireTool('qemu-system-x86_64');
    const dir = makeRunDir('sec-qemu');
    const sock = { p: uniqueSocketPath(dir, 'p'), v: uniqueSocketPath(dir, 'v'), a: uniqueSocketPath(dir, 'a') };
    const d = await startSpecSwitch(dir, [
      { name: 'vhu-p', mode: 'server', socket: sock.p },
      { name: 'vhu-v', mode: 'server', socket: sock.v },
      { name: 'vhu-a', mode: 'server', socket: sock.a, mac: MAC_A, portSecurity: true, allowedIps: [`${IP_A}/32`, eui64LinkLocal(MAC_A)] },
    ]);
    daemons.push(d);
    const boot = (name: string, socket: string, mac: string, ip: string) =>
      startGuest({ name: `sec-${name}`, netdevs: [{ socket, mode: 'client', mac, reconnect: 1 }], ip: `${ip}/16` });
    const p = await boot('p', sock.p, MAC_P, IP_P);
    const v = await boot('v', sock.v, MAC_V, IP_V);
    const a = await boot('a', sock.a, MAC_A, IP_A);
    guests.push(p, v, a);
    await bootAndLink([p, v, a]);

    // Everyone talks; the secured guest's own traffic (ARP, IPv4, and its IPv6 link-local DAD, MLD and ND since
    // boot) is not touched.
    await pingUntilOk(p, IP_V);
    await pingUntilOk(a, IP_P);
    await Promise.all([linkLocalReady(a), linkLocalReady(p)]);
    await a.runOk(`ping6 -c 2 -W 5 -I eth0 ${eui64LinkLocal(MAC_P)}`, 60_000);
    expect(await fdbPort(d, MAC_V)).toBe('vhu-v');
    expect(await spoofed(d)).toBe(0);

    // 1. a takes v's MAC and keeps sending (ARP and pings toward p) while p pings v.
    await a.runOk(`ip link set eth0 address ${MAC_V}; (ping -i 0.2 -c 60 ${IP_P} >/dev/null 2>&1 &)`);
    await new Promise((r) => setTimeout(r, 2000));
    await victimKeepsItsPings(p, v, 5);
    expect(await fdbPort(d, MAC_V)).toBe('vhu-v');
    const afterMac = await spoofed(d);
    expect(afterMac).toBeGreaterThan(0);
    await a.runOk(`killall ping; ip link set eth0 address ${MAC_A}`);

    // 2. a takes v's IP: it answers ARP requests for it and announces it (gratuitous ARP) while p, its ARP
    // cache emptied, resolves and pings v.
    const aEchos = await inEchos(a);
    await a.runOk(`ip addr add ${IP_V}/16 dev eth0; (arping -U -c 30 -I eth0 -s ${IP_V} ${IP_V} >/dev/null 2>&1 &)`);
    await new Promise((r) => setTimeout(r, 2000));
    await p.runOk('ip neigh flush dev eth0');
    await victimKeepsItsPings(p, v, 5);
    expect(await p.runOk(`ip neigh show ${IP_V}`)).toContain(MAC_V);
    expect((await inEchos(a)) - aEchos).toBe(0);
    expect(await spoofed(d)).toBeGreaterThan(afterMac);
    await a.run(`killall arping; ip addr del ${IP_V}/16 dev eth0`);

    // Once it stops, the attacker is an ordinary guest again.
    await pingUntilOk(a, IP_P);
    expect(d.alive()).toBe(true);
  });
});
