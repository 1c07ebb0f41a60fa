// Packed virtqueues with a real guest driver: a QEMU 7.2 guest whose virtio-net NIC has packed=on and a guest with
// split rings on the same switch ping each other (offloads off); the packed guest is stopped and started again
// while the switch keeps running, and talks again. Then two packed guests with checksum/TSO offloads on run
// iperf3 through the switch, and the switch connects to a packed guest (client mode). Last, two packed guests with
// two queue pairs each carry traffic on every queue.
//
//   guest p (169.254.22.1, packed) --vhu-p-- vhost-switch --vhu-s-- guest s (169.254.22.2, split)
import { afterAll, describe, expect, it } from 'vitest';
import { makeRunDir, requireTool, uniqueSocketPath } from '../../harness/env.js';
import { startGuest, type Guest } from '../support/qemu.js';
import type { DaemonProcess } from '../integration/support/daemon.js';
import { portCounters, startSwitch, waitPortState } from './switch-daemon.js';
import { bootAndLink, fullStats, parsePing, startSpecSwitch } from './lib-e2e.js';

const MAC_P = '52:54:00:00:22:01';
const MAC_S = '52:54:00:00:22:02';

/** The feature lists the daemon logged for a port's negotiations, oldest first. */
function negotiated(d: DaemonProcess, port: string): string[] {
  return (d.stdout + d.stderr)
    .split('\n')
    .filter((l) => l.includes('msg="features negotiated"') && l.includes(`port=${port} `));
}

describe('a packed-ring QEMU guest and a split-ring one on vhost-switch', () => {
  const guests: Guest[] = [];
  let d: DaemonProcess | undefined;
  afterAll(async () => {
    await Promise.all(guests.map((g) => g.stop()));
    await d?.stop();
  });
  /** Stops what the previous test left: at most two guests on the machine. */
  async function clear(): Promise<void> {
    await Promise.all(guests.splice(0).map((g) => g.stop()));
    await d?.stop();
    d = undefined;
  }

  it('ping both ways, counters move; the packed guest restarts without a switch restart', async () => {
    requireTool('qemu-system-x86_64');
    const dir = makeRunDir('sw-packed');
    const sockP = uniqueSocketPath(dir, 'p');
    const sockS = uniqueSocketPath(dir, 's');
    d = await startSwitch(dir, [
      { name: 'vhu-p', mode: 'server', socket: sockP },
      { name: 'vhu-s', mode: 'server', socket: sockS },
    ]);
    const packedNic = { socket: sockP, mode: 'client' as const, mac: MAC_P, reconnect: 1, packed: true };
    let p = await startGuest({ name: 'pk-p', netdevs: [packedNic], ip: '169.254.22.1/16' });
    guests.push(p);
    const s = await startGuest({ name: 'pk-s', netdevs: [{ socket: sockS, mode: 'client', mac: MAC_S, reconnect: 1 }], ip: '169.254.22.2/16' });
    guests.push(s);
    await Promise.all([p.waitReady(), s.waitReady()]);
    await Promise.all([p.waitLink('eth0'), s.waitLink('eth0')]);
    await waitPortState(d, 'vhu-p', (st) => st === 'ready');
    await waitPortState(d, 'vhu-s', (st) => st === 'ready');
    expect(negotiated(d, 'vhu-p').at(-1)).toContain('VIRTIO_F_RING_PACKED');
    expect(negotiated(d, 'vhu-s').at(-1)).not.toContain('VIRTIO_F_RING_PACKED');

    const ping = await p.run('ping -c 3 -W 5 169.254.22.2', 60_000);
    expect(ping.output).toMatch(/3 packets transmitted, 3 packets received/);
    const back = await s.run('ping -c 3 -W 5 169.254.22.1', 60_000);
    expect(back.output).toMatch(/3 packets transmitted, 3 packets received/);
    const cp = await portCounters(d, 'vhu-p');
    expect(cp.rxPackets).toBeGreaterThanOrEqual(6);
    expect(cp.txPackets).toBeGreaterThanOrEqual(6);
    for (const [reason, n] of Object.entries(cp.drops)) expect(n, reason).toBe(0);

    // The packed guest goes away and a new one comes on the same socket: the switch stays up throughout.
    await p.stop();
    await waitPortState(d, 'vhu-p', (st) => st !== 'ready', 30_000);
    expect(d.alive()).toBe(true);
    p = await startGuest({ name: 'pk-p2', netdevs: [packedNic], ip: '169.254.22.1/16' });
    guests.push(p);
    await p.waitReady();
    await p.waitLink('eth0');
    await waitPortState(d, 'vhu-p', (st) => st === 'ready');
    const again = await s.run('ping -c 3 -W 5 169.254.22.1', 60_000);
    expect(again.output).toMatch(/3 packets transmitted, 3 packets received/);
  });

  it('two packed guests with checksum/TSO offloads: iperf3 for 5 s, GSO frames cross whole, no drops', async () => {
    requireTool('qemu-system-x86_64');
    requireTool('iperf3');
    await clear();
    const dir = makeRunDir('sw-packed-tcp');
    const sa = uniqueSocketPath(dir, 'a');
    const sb = uniqueSocketPath(dir, 'b');
    d = await startSpecSwitch(dir, [
      { name: 'pt-a', mode: 'server', socket: sa, offloads: true },
      { name: 'pt-b', mode: 'server', socket: sb, offloads: true },
    ]);
    const mk = (n: string, i: number, sock: string) =>
      startGuest({ name: `pt-${n}`, netdevs: [{ socket: sock, mode: 'client', mac: `52:54:00:00:23:0${i}`, reconnect: 1, packed: true }], ip: `169.254.23.${i}/16`, noIpv6: true });
    const a = await mk('a', 1, sa);
    guests.push(a);
    const b = await mk('b', 2, sb);
    guests.push(b);
    await bootAndLink([a, b]);
    await waitPortState(d, 'pt-a', (st) => st === 'ready');
    await waitPortState(d, 'pt-b', (st) => st === 'ready');
    for (const port of ['pt-a', 'pt-b']) {
      const line = negotiated(d, port).at(-1) ?? '';
      for (const name of ['VIRTIO_F_RING_PACKED', 'VIRTIO_NET_F_HOST_TSO4', 'VIRTIO_NET_F_GUEST_TSO4']) expect(line, `${port} ${name}`).toContain(name);
    }
    expect(parsePing(await a.runOk('ping -c 2 -W 5 169.254.23.2', 60_000)).received).toBe(2);
    await b.runOk('iperf3 -s -1 -D -p 5201');
    await b.runOk(`i=0; while ! netstat -ltn | grep -q ':5201 '; do i=$((i+1)); [ $i -gt 100 ] && exit 1; sleep 0.1; done`, 60_000);
    const out = await a.runOk('iperf3 -c 169.254.23.2 -p 5201 -t 5 -J --connect-timeout 20000', 180_000);
    const r = JSON.parse(out.slice(out.indexOf('{'), out.lastIndexOf('}') + 1)) as { error?: string; end?: { sum_received?: { bytes: number } } };
    expect(r.error).toBeUndefined();
    const received = r.end?.sum_received?.bytes ?? 0;
    expect(received).toBeGreaterThan(0);
    const [pa, pb] = [await fullStats(d, 'pt-a'), await fullStats(d, 'pt-b')];
    console.log('iperf3 received', received, 'pt-a', pa.rxPackets, pa.rxBytes, pa.drops, 'pt-b', pb.txPackets, pb.txBytes, pb.drops);
    for (const st of [pa, pb]) {
      for (const reason of ['offload', 'badHeader', 'badDescriptor', 'ringBroken', 'runt', 'mtu']) expect(st.drops[reason], `${st.name} ${reason}`).toBe(0);
      expect(st.broken).toBe(false);
    }
    expect(pb.txBytes).toBeGreaterThanOrEqual(received);
    // TSO at work over packed rings: frames from a average more than a 1514-byte Ethernet frame.
    expect(pa.rxBytes / pa.rxPackets).toBeGreaterThan(1514);
  });

  it('client mode (the switch connects to QEMU): a packed guest and a split one ping both ways', async () => {
    requireTool('qemu-system-x86_64');
    await clear();
    const dir = makeRunDir('sw-packed-cli');
    const sp = uniqueSocketPath(dir, 'p');
    const ss = uniqueSocketPath(dir, 's');
    const p = await startGuest({ name: 'pc-p', netdevs: [{ socket: sp, mode: 'server', mac: MAC_P, packed: true }], ip: '169.254.24.1/16' });
    guests.push(p);
    const s = await startGuest({ name: 'pc-s', netdevs: [{ socket: ss, mode: 'server', mac: MAC_S }], ip: '169.254.24.2/16' });
    guests.push(s);
    d = await startSwitch(dir, [
      { name: 'vhu-p', mode: 'client', socket: sp },
      { name: 'vhu-s', mode: 'client', socket: ss },
    ]);
    await Promise.all([p.waitReady(), s.waitReady()]);
    await Promise.all([p.waitLink('eth0'), s.waitLink('eth0')]);
    await waitPortState(d, 'vhu-p', (st) => st === 'ready');
    await waitPortState(d, 'vhu-s', (st) => st === 'ready');
    expect(negotiated(d, 'vhu-p').at(-1)).toContain('VIRTIO_F_RING_PACKED');
    expect((await s.run('ping -c 3 -W 5 169.254.24.1', 60_000)).output).toMatch(/3 packets transmitted, 3 packets received/);
    expect((await p.run('ping -c 3 -W 5 169.254.24.2', 60_000)).output).toMatch(/3 packets transmitted, 3 packets received/);
  });

  it('multi-queue: packed guests with 2 queue pairs and 2 vCPUs carry traffic on every queue', async () => {
    requireTool('qemu-system-x86_64');
    await clear();
    const dir = makeRunDir('sw-packed-mq');
    const sa = uniqueSocketPath(dir, 'a');
    const sb = uniqueSocketPath(dir, 'b');
    // Two poll threads: a frame goes to the destination's receive queue of the pair it came from.
    d = await startSpecSwitch(
      dir,
      [
        { name: 'pm-a', mode: 'server', socket: sa, queues: 2 },
        { name: 'pm-b', mode: 'server', socket: sb, queues: 2 },
      ],
      { threads: 2 },
    );
    const mk = (n: string, i: number, sock: string) =>
      startGuest({ name: `pm-${n}`, smp: 2, netdevs: [{ socket: sock, mode: 'client', mac: `52:54:00:00:25:0${i}`, reconnect: 1, queues: 2, packed: true }], ip: `169.254.25.${i}/16`, noIpv6: true });
    const a = await mk('a', 1, sa);
    guests.push(a);
    const b = await mk('b', 2, sb);
    guests.push(b);
    await bootAndLink([a, b]);
    await waitPortState(d, 'pm-a', (st) => st === 'ready');
    await waitPortState(d, 'pm-b', (st) => st === 'ready');
    expect(negotiated(d, 'pm-a').at(-1)).toContain('VIRTIO_F_RING_PACKED');
    // A ping flood from each vCPU (the guest picks the transmit queue by CPU) in each direction.
    for (const [g, peer] of [[a, '169.254.25.2'], [b, '169.254.25.1']] as const) {
      const out = await g.runOk(`taskset -c 0 ping -c 20 -i 0.05 -W 5 ${peer} > /tmp/p0 2>&1 & taskset -c 1 ping -c 20 -i 0.05 -W 5 ${peer} > /tmp/p1 2>&1 & wait; cat /tmp/p0 /tmp/p1`, 120_000);
      expect(out.match(/20 packets transmitted, 20 packets received/g), out).toHaveLength(2);
    }
    for (const name of ['pm-a', 'pm-b']) {
      const st = await fullStats(d, name);
      console.log(name, st.queues.map((q) => `${q.index}:${q.packets}`).join(' '));
      for (const q of [0, 1, 2, 3]) expect(st.queues.find((x) => x.index === q)!.packets, `${name} queue ${q}`).toBeGreaterThan(0);
      for (const reason of ['badDescriptor', 'ringBroken', 'noRxBuffer']) expect(st.drops[reason], `${name} ${reason}`).toBe(0);
    }
  });
});
