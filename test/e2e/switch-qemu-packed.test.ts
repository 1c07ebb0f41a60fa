// Packed virtqueues with a real guest driver: a QEMU 7.2 guest whose virtio-net NIC has packed=on and a guest with
// split rings on the same switch ping each other; the packed guest is stopped and started again while the switch
// keeps running, and talks again.
//
//   guest p (169.254.22.1, packed) --vhu-p-- vhost-switch --vhu-s-- guest s (169.254.22.2, split)
import { afterAll, describe, expect, it } from 'vitest';
import { makeRunDir, requireTool, uniqueSocketPath } from '../support/env.js';
import { startGuest, type Guest } from '../support/qemu.js';
import type { DaemonProcess } from '../integration/support/daemon.js';
import { portCounters, startSwitch, waitPortState } from './switch-daemon.js';

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
});
