// Issue 2 through real peers: QEMU 7.2 guests with vhost-user virtio-net NICs on the switch, in both socket
// modes, and a guest that is stopped and started again while the switch keeps running.
//
//   guest a (169.254.20.1) --vhu-a-- vhost-switch --vhu-b-- guest b (169.254.20.2)
import { afterAll, describe, expect, it } from 'vitest';
import { makeRunDir, requireTool, uniqueSocketPath } from '../../harness/env.js';
import { startGuest, type Guest } from '../support/qemu.js';
import type { DaemonProcess } from '../integration/support/daemon.js';
import { portCounters, startSwitch, waitPortState } from './switch-daemon.js';

const MAC_A = '52:54:00:00:20:01';
const MAC_B = '52:54:00:00:20:02';

describe('QEMU guests on vhost-switch ports', () => {
  const guests: Guest[] = [];
  const daemons: DaemonProcess[] = [];
  afterAll(async () => {
    await Promise.all(guests.map((g) => g.stop()));
    await Promise.all(daemons.map((d) => d.stop()));
  });

  it('server mode (QEMU connects): negotiate, link up, ping both ways, counters move; a guest restart does not need a switch restart', async () => {
    requireTool('qemu-system-x86_64');
    const dir = makeRunDir('sw-srv');
    const sockA = uniqueSocketPath(dir, 'a');
    const sockB = uniqueSocketPath(dir, 'b');
    const d = await startSwitch(dir, [
      { name: 'vhu-a', mode: 'server', socket: sockA },
      { name: 'vhu-b', mode: 'server', socket: sockB },
    ]);
    daemons.push(d);

    const a = await startGuest({ name: 'srv-a', netdevs: [{ socket: sockA, mode: 'client', mac: MAC_A, reconnect: 1 }], ip: '169.254.20.1/16' });
    guests.push(a);
    let b = await startGuest({ name: 'srv-b', netdevs: [{ socket: sockB, mode: 'client', mac: MAC_B, reconnect: 1 }], ip: '169.254.20.2/16' });
    guests.push(b);
    await Promise.all([a.waitReady(), b.waitReady()]);
    await Promise.all([a.waitLink('eth0'), b.waitLink('eth0')]);
    await waitPortState(d, 'vhu-a', (s) => s === 'ready');
    await waitPortState(d, 'vhu-b', (s) => s === 'ready');

    const ping = await a.run('ping -c 3 -W 5 169.254.20.2', 60_000);
    expect(ping.output).toMatch(/3 packets transmitted, 3 packets received/);
    const ca = await portCounters(d, 'vhu-a');
    const cb = await portCounters(d, 'vhu-b');
    // Frames from each guest reached the switch (rx) and frames the switch sent reached each guest (tx).
    expect(ca.rxPackets).toBeGreaterThanOrEqual(3);
    expect(ca.txPackets).toBeGreaterThanOrEqual(3);
    expect(cb.rxPackets).toBeGreaterThanOrEqual(3);
    expect(cb.txPackets).toBeGreaterThanOrEqual(3);

    // Guest b goes away: its port goes down, the switch stays up, a new guest on the same socket works.
    await b.stop();
    await waitPortState(d, 'vhu-b', (s) => s !== 'ready', 30_000);
    expect(d.alive()).toBe(true);
    b = await startGuest({ name: 'srv-b2', netdevs: [{ socket: sockB, mode: 'client', mac: MAC_B, reconnect: 1 }], ip: '169.254.20.2/16' });
    guests.push(b);
    await b.waitReady();
    await b.waitLink('eth0');
    await waitPortState(d, 'vhu-b', (s) => s === 'ready');
    const again = await b.run('ping -c 3 -W 5 169.254.20.1', 60_000);
    expect(again.output).toMatch(/3 packets transmitted, 3 packets received/);
  });

  it('client mode (the switch connects to QEMU): ping both ways', async () => {
    requireTool('qemu-system-x86_64');
    const dir = makeRunDir('sw-cli');
    const sockA = uniqueSocketPath(dir, 'a');
    const sockB = uniqueSocketPath(dir, 'b');
    // QEMU listens (server=on, wait=off); the switch's client ports retry until the sockets appear.
    const a = await startGuest({ name: 'cli-a', netdevs: [{ socket: sockA, mode: 'server', mac: MAC_A }], ip: '169.254.21.1/16' });
    guests.push(a);
    const b = await startGuest({ name: 'cli-b', netdevs: [{ socket: sockB, mode: 'server', mac: MAC_B }], ip: '169.254.21.2/16' });
    guests.push(b);
    const d = await startSwitch(dir, [
      { name: 'vhu-a', mode: 'client', socket: sockA },
      { name: 'vhu-b', mode: 'client', socket: sockB },
    ]);
    daemons.push(d);
    await Promise.all([a.waitReady(), b.waitReady()]);
    await Promise.all([a.waitLink('eth0'), b.waitLink('eth0')]);
    await waitPortState(d, 'vhu-a', (s) => s === 'ready');
    const ping = await b.run('ping -c 3 -W 5 169.254.21.1', 60_000);
    expect(ping.output).toMatch(/3 packets transmitted, 3 packets received/);
    const ca = await portCounters(d, 'vhu-a');
    expect(ca.rxPackets).toBeGreaterThanOrEqual(3);
    expect(ca.txPackets).toBeGreaterThanOrEqual(3);
  });
});
