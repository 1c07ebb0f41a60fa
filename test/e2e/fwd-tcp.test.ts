// Issue 3, TCP between two QEMU guests through the switch with checksum and segmentation offloads on: iperf3
// (server in b, client in a) for 5 s. The offloads are checked on both sides of the handshake (the daemon's
// "features negotiated" log line and the features the guest's virtio driver accepted, from sysfs), the transfer
// completes with bytes received, and the switch counts no 'offload' or 'badHeader' drops. A multi-queue variant
// (2 queue pairs, 2 vCPUs, 2 poll threads) shows both queue pairs carrying packets in the per-queue stats.
//
//   guest a (iperf3 -c) --p-a-- vhost-switch --p-b-- guest b (iperf3 -s)
import { afterAll, describe, expect, it } from 'vitest';
import { makeRunDir, requireTool, uniqueSocketPath } from '../../harness/env.js';
import { startGuest, type Guest } from '../support/qemu.js';
import type { DaemonProcess } from '../integration/support/daemon.js';
import { waitPortState } from './switch-daemon.js';
import { bootAndLink, fullStats, logLines, parsePing, startSpecSwitch, type FullPortStats } from './lib-e2e.js';

// virtio-net feature bits (virtio spec 5.1.3).
const OFFLOAD_BITS = { CSUM: 0, GUEST_CSUM: 1, GUEST_TSO4: 7, GUEST_TSO6: 8, HOST_TSO4: 11, HOST_TSO6: 12 } as const;
const MQ_BIT = 22;

/** The features the guest driver accepted: sysfs prints one '0'/'1' per bit, bit 0 first. */
async function guestFeatures(g: Guest): Promise<string> {
  const out = (await g.runOk('cat /sys/class/net/eth0/device/features')).trim();
  expect(out, `${g.name} features`).toMatch(/^[01]{32,}$/);
  return out;
}

interface IperfResult {
  sentBytes: number;
  receivedBytes: number;
  error?: string;
}

/** Starts a one-off iperf3 server in the background and waits until it listens. */
async function iperfServer(g: Guest, port: number): Promise<void> {
  await g.runOk(`iperf3 -s -1 -D -p ${port}`);
  await g.runOk(`i=0; while ! netstat -ltn | grep -q ':${port} '; do i=$((i+1)); [ $i -gt 100 ] && exit 1; sleep 0.1; done`, 60_000);
}

function parseIperf(json: string): IperfResult {
  const start = json.indexOf('{');
  const r = JSON.parse(json.slice(start, json.lastIndexOf('}') + 1)) as {
    error?: string;
    end?: { sum_sent?: { bytes: number }; sum_received?: { bytes: number } };
  };
  return { sentBytes: r.end?.sum_sent?.bytes ?? 0, receivedBytes: r.end?.sum_received?.bytes ?? 0, error: r.error };
}

function summary(s: FullPortStats) {
  return {
    rx: s.rxPackets,
    rxBytes: s.rxBytes,
    tx: s.txPackets,
    txBytes: s.txBytes,
    drops: Object.fromEntries(Object.entries(s.drops).filter(([, n]) => n > 0)),
    queues: s.queues.map((q) => `${q.index}:${q.started ? 's' : '-'}${q.enabled ? 'e' : '-'}:${q.packets}`).join(' '),
  };
}

/** The last "features negotiated" line the daemon logged for a port. */
function negotiatedOf(d: DaemonProcess, port: string): string {
  const lines = logLines(d, new RegExp(`msg="features negotiated".* port=${port.replace(/[.-]/g, '\\$&')}( |$)`));
  expect(lines.length, `features negotiated for ${port}`).toBeGreaterThan(0);
  return lines[lines.length - 1]!;
}

describe('TCP between guests through the switch', () => {
  const guests: Guest[] = [];
  const daemons: DaemonProcess[] = [];
  afterAll(async () => {
    await Promise.all(guests.map((g) => g.stop()));
    await Promise.all(daemons.map((d) => d.stop()));
  });

  it('iperf3 for 5 s with checksum/TSO offloads negotiated: bytes arrive, no offload or badHeader drops', async () => {
    requireTool('qemu-system-x86_64');
    requireTool('iperf3');
    const dir = makeRunDir('fwd-tcp');
    const sa = uniqueSocketPath(dir, 'a');
    const sb = uniqueSocketPath(dir, 'b');
    const d = await startSpecSwitch(dir, [
      { name: 'p-a', mode: 'server', socket: sa, offloads: true },
      { name: 'p-b', mode: 'server', socket: sb, offloads: true },
    ]);
    daemons.push(d);
    const a = await startGuest({ name: 'tcp-a', netdevs: [{ socket: sa, mode: 'client', mac: '52:54:00:00:31:01', reconnect: 1 }], ip: '169.254.31.1/16', noIpv6: true });
    guests.push(a);
    const b = await startGuest({ name: 'tcp-b', netdevs: [{ socket: sb, mode: 'client', mac: '52:54:00:00:31:02', reconnect: 1 }], ip: '169.254.31.2/16', noIpv6: true });
    guests.push(b);
    await bootAndLink([a, b]);
    await waitPortState(d, 'p-a', (s) => s === 'ready');
    await waitPortState(d, 'p-b', (s) => s === 'ready');

    // Offloads, as the switch saw the frontend acknowledge them and as the guest driver accepted them.
    for (const p of ['p-a', 'p-b']) {
      const line = negotiatedOf(d, p);
      for (const name of ['VIRTIO_NET_F_CSUM', 'VIRTIO_NET_F_GUEST_CSUM', 'VIRTIO_NET_F_HOST_TSO4', 'VIRTIO_NET_F_GUEST_TSO4']) {
        expect(line, `${p} negotiated ${name}`).toContain(name);
      }
    }
    for (const g of [a, b]) {
      const f = await guestFeatures(g);
      for (const [name, bitNo] of Object.entries(OFFLOAD_BITS)) expect(f[bitNo], `${g.name} ${name}`).toBe('1');
    }

    expect(parsePing(await a.runOk('ping -c 2 -W 5 169.254.31.2', 60_000)).received).toBe(2);
    await iperfServer(b, 5201);
    const out = await a.runOk('iperf3 -c 169.254.31.2 -p 5201 -t 5 -J --connect-timeout 20000', 180_000);
    const r = parseIperf(out);
    expect(r.error).toBeUndefined();
    expect(r.sentBytes).toBeGreaterThan(0);
    expect(r.receivedBytes).toBeGreaterThan(0);

    const [pa, pb] = [await fullStats(d, 'p-a'), await fullStats(d, 'p-b')];
    console.log('iperf3', r, 'p-a', summary(pa), 'p-b', summary(pb));
    for (const s of [pa, pb]) {
      for (const reason of ['offload', 'badHeader', 'badDescriptor', 'ringBroken', 'runt', 'mtu']) expect(s.drops[reason], `${s.name} ${reason}`).toBe(0);
      expect(s.broken).toBe(false);
    }
    // The payload crossed the switch: what the switch took from a and delivered to b is at least what b received.
    expect(pa.rxBytes).toBeGreaterThanOrEqual(r.receivedBytes);
    expect(pb.txBytes).toBeGreaterThanOrEqual(r.receivedBytes);
    // TSO at work: the frames from a average more than a 1514-byte Ethernet frame, so segmentation-offload
    // (GSO) frames crossed the switch whole, header and all.
    expect(pa.rxBytes / pa.rxPackets).toBeGreaterThan(1514);
    expect(pb.txBytes / pb.txPackets).toBeGreaterThan(1514);
  });

  it('multi-queue: 2 queue pairs, 2 vCPUs, 2 poll threads: TCP passes and both queue pairs carry packets', async () => {
    requireTool('qemu-system-x86_64');
    requireTool('iperf3');
    // The first guest pair is done with: keep at most two guests on the machine.
    await Promise.all(guests.splice(0).map((g) => g.stop()));
    await Promise.all(daemons.splice(0).map((d) => d.stop()));

    const dir = makeRunDir('fwd-tcp-mq');
    const sa = uniqueSocketPath(dir, 'a');
    const sb = uniqueSocketPath(dir, 'b');
    // A port's receive queue is picked by the poll thread that forwards the frame, so two threads are what
    // spreads traffic over both receive queues of the destination.
    const d = await startSpecSwitch(
      dir,
      [
        { name: 'mq-a', mode: 'server', socket: sa, queues: 2, offloads: true },
        { name: 'mq-b', mode: 'server', socket: sb, queues: 2, offloads: true },
      ],
      { threads: 2 },
    );
    daemons.push(d);
    const mk = (n: string, i: number, sock: string) =>
      startGuest({ name: `mq-${n}`, smp: 2, netdevs: [{ socket: sock, mode: 'client', mac: `52:54:00:00:32:0${i}`, reconnect: 1, queues: 2 }], ip: `169.254.32.${i}/16`, noIpv6: true });
    const a = await mk('a', 1, sa);
    guests.push(a);
    const b = await mk('b', 2, sb);
    guests.push(b);
    await bootAndLink([a, b]);
    await waitPortState(d, 'mq-a', (s) => s === 'ready');
    await waitPortState(d, 'mq-b', (s) => s === 'ready');

    for (const g of [a, b]) {
      expect((await guestFeatures(g))[MQ_BIT], `${g.name} VIRTIO_NET_F_MQ`).toBe('1');
      const q = await g.runOk('ls /sys/class/net/eth0/queues; for f in /sys/class/net/eth0/queues/tx-*/xps_cpus; do echo "$f $(cat $f)"; done');
      console.log(g.name, q.replace(/\s+/g, ' '));
      expect(q).toMatch(/rx-1/);
      expect(q).toMatch(/tx-1/);
    }
    expect(parsePing(await a.runOk('ping -c 2 -W 5 169.254.32.2', 60_000)).received).toBe(2);

    // One client per vCPU (the guest picks the transmit queue by CPU), each to its own server.
    await iperfServer(b, 5201);
    await iperfServer(b, 5202);
    const out = await a.runOk(
      'taskset -c 0 iperf3 -c 169.254.32.2 -p 5201 -t 5 -P 2 -J --connect-timeout 20000 > /tmp/c0.json 2>&1 & ' +
        'taskset -c 1 iperf3 -c 169.254.32.2 -p 5202 -t 5 -P 2 -J --connect-timeout 20000 > /tmp/c1.json 2>&1 & ' +
        'wait; cat /tmp/c0.json; echo VS-SPLIT; cat /tmp/c1.json',
      240_000,
    );
    const results = out.split('VS-SPLIT').map(parseIperf);
    for (const r of results) {
      expect(r.error).toBeUndefined();
      expect(r.receivedBytes).toBeGreaterThan(0);
    }

    const [pa, pb] = [await fullStats(d, 'mq-a'), await fullStats(d, 'mq-b')];
    console.log('iperf3', results, 'mq-a', summary(pa), 'mq-b', summary(pb));
    for (const s of [pa, pb]) {
      for (const reason of ['offload', 'badHeader', 'badDescriptor', 'ringBroken', 'runt', 'mtu']) expect(s.drops[reason], `${s.name} ${reason}`).toBe(0);
      // Virtqueue 2k is pair k's receive queue, 2k+1 its transmit queue.
      expect(s.queues.map((q) => q.index).sort()).toEqual([0, 1, 2, 3]);
      for (const pair of [0, 1]) {
        const rxq = s.queues.find((q) => q.index === 2 * pair)!;
        const txq = s.queues.find((q) => q.index === 2 * pair + 1)!;
        expect(rxq.packets + txq.packets, `${s.name} pair ${pair}`).toBeGreaterThan(0);
      }
    }
    // The sender's data went out on both of its transmit queues and arrived on both of b's receive queues.
    expect(pa.queues.find((q) => q.index === 1)!.packets, 'mq-a tx queue 0').toBeGreaterThan(0);
    expect(pa.queues.find((q) => q.index === 3)!.packets, 'mq-a tx queue 1').toBeGreaterThan(0);
    expect(pb.queues.find((q) => q.index === 0)!.packets, 'mq-b rx queue 0').toBeGreaterThan(0);
    expect(pb.queues.find((q) => q.index === 2)!.packets, 'mq-b rx queue 1').toBeGreaterThan(0);
  });
});
