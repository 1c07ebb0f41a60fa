// Issue 3, VLAN isolation through real guests: a and b are access ports of VLAN 100, c is an access port of VLAN
// 200, all three in the same IP subnet. a and b ping each other; c reaches neither, and the switch's counters show
// that not one of c's frames (its ARP broadcasts) was delivered to a or b, nor any of theirs to c.
//
//   guest a (169.254.30.1) --vlan 100--+
//   guest b (169.254.30.2) --vlan 100--+-- vhost-switch
//   guest c (169.254.30.3) --vlan 200--+
//
// The guests run without IPv6, so the only frames on the switch are the ones the pings cause.
import { afterAll, describe, expect, it } from 'vitest';
import { makeRunDir, requireTool, uniqueSocketPath } from '../../harness/env.js';
import { startGuest, type Guest } from '../support/qemu.js';
import type { DaemonProcess } from '../integration/support/daemon.js';
import { waitPortState } from './switch-daemon.js';
import { bootAndLink, fullStats, parsePing, startSpecSwitch, totalDrops } from './lib-e2e.js';

describe('VLAN access ports isolate guests', () => {
  const guests: Guest[] = [];
  let d: DaemonProcess | undefined;
  afterAll(async () => {
    await Promise.all(guests.map((g) => g.stop()));
    await d?.stop();
  });

  it('a and b (VLAN 100) ping each other; c (VLAN 200) reaches neither, and no frame crosses between the VLANs', async () => {
    requireTool('qemu-system-x86_64');
    const dir = makeRunDir('fwd-vlan');
    const sock = { a: uniqueSocketPath(dir, 'a'), b: uniqueSocketPath(dir, 'b'), c: uniqueSocketPath(dir, 'c') };
    d = await startSpecSwitch(dir, [
      { name: 'p-a', mode: 'server', socket: sock.a, vlan: 100 },
      { name: 'p-b', mode: 'server', socket: sock.b, vlan: 100 },
      { name: 'p-c', mode: 'server', socket: sock.c, vlan: 200 },
    ]);
    const mk = (n: 'a' | 'b' | 'c', i: number) =>
      startGuest({
        name: `vlan-${n}`,
        netdevs: [{ socket: sock[n], mode: 'client', mac: `52:54:00:00:30:0${i}`, reconnect: 1 }],
        ip: `169.254.30.${i}/16`,
        noIpv6: true,
      });
    const a = await mk('a', 1);
    guests.push(a);
    const b = await mk('b', 2);
    guests.push(b);
    const c = await mk('c', 3);
    guests.push(c);
    await bootAndLink([a, b, c]);
    for (const p of ['p-a', 'p-b', 'p-c']) await waitPortState(d, p, (s) => s === 'ready');

    // Same VLAN: both directions.
    const ab = parsePing(await a.runOk('ping -c 3 -W 5 169.254.30.2', 60_000));
    expect(ab).toEqual({ transmitted: 3, received: 3 });
    const ba = parsePing(await b.runOk('ping -c 3 -W 5 169.254.30.1', 60_000));
    expect(ba).toEqual({ transmitted: 3, received: 3 });

    const cBefore = await fullStats(d, 'p-c');

    // Other VLAN: c's ARP requests for a and b go unanswered.
    for (const target of ['169.254.30.1', '169.254.30.2']) {
      const r = await c.run(`ping -c 3 -W 2 ${target}`, 60_000);
      expect(r.exitCode, r.output).not.toBe(0);
      expect(parsePing(r.output).received).toBe(0);
    }
    const neigh = await c.runOk('ip neigh show dev eth0');
    expect(neigh).not.toMatch(/lladdr 52:54:00:00:30:0[12]/);

    // a floods again (its neighbour entry is gone): the broadcast reaches b but not c.
    await a.runOk('ip neigh flush dev eth0');
    expect(parsePing(await a.runOk('ping -c 2 -W 5 169.254.30.2', 60_000))).toEqual({ transmitted: 2, received: 2 });

    const [sa, sb, sc] = await Promise.all(['p-a', 'p-b', 'p-c'].map((p) => fullStats(d!, p)));
    console.log(Object.fromEntries([sa, sb, sc].map((s) => [s.name, { rx: s.rxPackets, tx: s.txPackets, drops: totalDrops(s) }])));
    // c's broadcasts reached the switch (at least one ARP request per target) ...
    expect(sc.rxPackets - cBefore.rxPackets).toBeGreaterThanOrEqual(2);
    // ... but nothing was ever delivered to c, and everything delivered to a (b) came from b (a): the frames the
    // switch took from c went nowhere.
    expect(sc.txPackets).toBe(0);
    expect(sa.txPackets).toBeLessThanOrEqual(sb.rxPackets);
    expect(sb.txPackets).toBeLessThanOrEqual(sa.rxPackets);
    // Within VLAN 100 every frame arrived: a sent at least 5 echo requests + ARP, b answered them.
    expect(sa.rxPackets).toBeGreaterThanOrEqual(6);
    expect(sb.txPackets).toBeGreaterThanOrEqual(5);
    expect(sa.txPackets).toBeGreaterThanOrEqual(5);
    for (const s of [sa, sb]) for (const reason of ['noRxBuffer', 'badDescriptor', 'ringBroken', 'mtu', 'offload', 'badHeader']) {
      expect(s.drops[reason], `${s.name} ${reason}`).toBe(0);
    }
  });
});
