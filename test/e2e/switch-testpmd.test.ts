// DPDK as a real peer: dpdk-testpmd with two net_virtio_user ports attached to two switch ports, in io
// forwarding with tx_first (the reference loop). Frames circulate testpmd -> switch -> testpmd for 30 s:
// testpmd's own counters show the traffic, the switch counts no drops, and both sides' counters agree. Once with
// split virtqueues, once with packed ones (packed_vq=1); both with VIRTIO_F_IN_ORDER negotiated.
//
//   testpmd port 0 --vhu0-- vhost-switch --vhu1-- testpmd port 1   (testpmd forwards 0 <-> 1)
import { afterEach, describe, expect, it } from 'vitest';
import { makeRunDir, requireHugepages, requireTool, uniqueSocketPath } from '../../harness/env.js';
import { startTestpmd, type Testpmd } from '../../harness/testpmd.js';
import type { DaemonProcess } from '../integration/support/daemon.js';
import { portCounters, startSwitch, waitPortState } from './switch-daemon.js';

describe('dpdk-testpmd virtio-user ports through vhost-switch', () => {
  let pmd: Testpmd | undefined;
  let d: DaemonProcess | undefined;
  afterEach(async () => {
    await pmd?.quit().catch(() => pmd?.kill('SIGKILL'));
    await d?.stop();
    pmd = undefined;
    d = undefined;
  });

  it('forwards a 30 s io loop with no drops and counters that agree', async () => {
    await ioLoop(false);
  });

  it('does the same with packed virtqueues', async () => {
    await ioLoop(true);
  });

  async function ioLoop(packed: boolean): Promise<void> {
    requireTool('dpdk-testpmd');
    requireHugepages(128);
    const dir = makeRunDir('sw-pmd');
    const s0 = uniqueSocketPath(dir, 'vhu0');
    const s1 = uniqueSocketPath(dir, 'vhu1');
    // Switch poll thread on CPU 1, testpmd on CPU 0: never on the same core.
    d = await startSwitch(dir, [
      { name: 'vhu0', mode: 'server', socket: s0 },
      { name: 'vhu1', mode: 'server', socket: s1 },
    ], ['--cpus', '1']);
    pmd = await startTestpmd({
      name: 'gen',
      cpu: 0,
      ports: [
        { type: 'virtio_user', path: s0, mac: '02:00:00:00:01:00', packed },
        { type: 'virtio_user', path: s1, mac: '02:00:00:00:01:01', packed },
      ],
      // Each port addresses the other, so after one round the switch forwards by learned MACs.
      extraApp: ['--eth-peer=0,02:00:00:00:01:01', '--eth-peer=1,02:00:00:00:01:00'],
    });
    await waitPortState(d, 'vhu0', (s) => s === 'ready', 30_000);
    await waitPortState(d, 'vhu1', (s) => s === 'ready', 30_000);
    // Both ports negotiated the ring layout asked for (the daemon logs what each frontend negotiated).
    const negotiated = (d.stdout + d.stderr).split('\n').filter((l) => l.includes('msg="features negotiated"'));
    expect(negotiated.length).toBeGreaterThanOrEqual(2);  // DPDK negotiates twice per port
    for (const l of negotiated) expect(l.includes('VIRTIO_F_RING_PACKED'), l).toBe(packed);
    // DPDK's virtio PMD asks for in-order use (its in_order=1 default) and takes its in-order paths with it.
    for (const l of negotiated) expect(l.includes('VIRTIO_F_IN_ORDER'), l).toBe(true);

    await pmd.start({ txFirst: true });
    await new Promise((r) => setTimeout(r, 30_000));
    const fwd = await pmd.stop();
    // Let frames in flight settle before reading both sides.
    await new Promise((r) => setTimeout(r, 500));
    const nic = await pmd.portStats();
    const c0 = await portCounters(d, 'vhu0');
    const c1 = await portCounters(d, 'vhu1');
    console.log({ fwd: fwd.total, nic, c0, c1 });

    expect(nic[0]!.rxPackets).toBeGreaterThan(100_000);
    expect(nic[1]!.rxPackets).toBeGreaterThan(100_000);
    for (const c of [c0, c1]) for (const [reason, n] of Object.entries(c.drops)) expect(n, reason).toBe(0);
    // What testpmd sent on a port is what the switch took from it, and what the switch delivered to a
    // port is what testpmd received there, but for the frames still in testpmd's receive ring when its
    // forwarding stopped (the loop carries one 32-frame burst per port).
    expect(c0.rxPackets).toBe(nic[0]!.txPackets);
    expect(c1.rxPackets).toBe(nic[1]!.txPackets);
    for (const [c, n] of [[c0, nic[0]!], [c1, nic[1]!]] as const) {
      expect(c.txPackets).toBeGreaterThanOrEqual(n.rxPackets);
      expect(c.txPackets - n.rxPackets).toBeLessThanOrEqual(32);
    }
  }
});
