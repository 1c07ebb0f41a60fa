// The two traffic generators of the reference topology: two virtio ports on the generator CPU in an io-forwarding
// loop, primed with one burst per port (testpmd's `start tx_first`), so that the DUT's forwarding rate and the
// generator's own rate settle on what the slower of the two sustains.
//
//  - testpmd: dpdk-testpmd with two net_virtio_user ports (--single-file-segments so the whole mempool is one
//    memory region per hugepage file), `set fwd io`, `start tx_first`. Port MACs are fixed and each port's
//    --eth-peer is the other port, so a learning switch sees unicast traffic: frames leaving port 1 carry
//    src=MAC1 dst=MAC0 (testpmd's stream rx 0 → tx 1 uses the peer address of port 1).
//  - gen: our VirtioUserPort + native Generator (src/gen/bench-session.ts), io roles paired 0↔1.
//
// IMIX (7:4:1 of 64/570/1518 B): our generator cycles through the 12-frame pattern and injects 36 frames per port.
// testpmd has no mixed-size mode, so it is primed in three steps with --no-flush-rx (so a later `start` does not
// throw the frames already looping away): burst 3, then 1 × 3 frames of 1518, 4 × 3 of 570 and 7 × 3 of 64 per
// port: the same 36 frames in the same proportions.
import { startTestpmd, type Testpmd } from '../harness/testpmd.js';
import { GenSession, parseSize, totals } from '../src/gen/bench-session.js';
import type { GenCounters, GenName, SizeLabel, TrafficGen } from './types.js';
import { sleep } from './lib/util.js';

export const GEN_MAC0 = '02:00:00:00:00:a0';
export const GEN_MAC1 = '02:00:00:00:00:b1';

export interface GenOptions {
  cpu: number;
  /** testpmd: bursts of 32 frames primed per port (default 1). */
  inFlight?: number;
  /** testpmd: false asks no DUT for VIRTIO_F_IN_ORDER (in_order=0). */
  inOrder?: boolean;
  /** Packed virtqueues (VIRTIO_F_RING_PACKED; testpmd's packed_vq=1) instead of split ones. */
  packed?: boolean;
}

export class TestpmdGen implements TrafficGen {
  readonly name: GenName = 'testpmd';
  private t: Testpmd | undefined;

  constructor(private readonly o: GenOptions) {}

  async start(sockets: [string, string], size: SizeLabel): Promise<void> {
    const bursts = this.o.inFlight ?? 1;
    // More than one burst in flight per port needs room for them in every ring on the way.
    const queueSize = bursts > 1 ? 1024 : undefined;
    const imix = size === 'imix';
    const { inOrder, packed } = this.o;
    this.t = await startTestpmd({
      name: 'gen',
      cpu: this.o.cpu,
      ports: [
        { type: 'virtio_user', path: sockets[0], mac: GEN_MAC0, queueSize, inOrder, packed },
        { type: 'virtio_user', path: sockets[1], mac: GEN_MAC1, queueSize, inOrder, packed },
      ],
      memMiB: 256,
      mbufs: 16384,
      fwd: 'io',
      extraApp: ['--no-flush-rx', `--eth-peer=0,${GEN_MAC1}`, `--eth-peer=1,${GEN_MAC0}`],
    });
    const t = this.t;
    // Let the DUT finish setting up the rings (vhost-user handshake done, queues enabled) before priming.
    await sleep(300);
    if (!imix) {
      await t.cmd(`set txpkts ${parseSize(size)[0]}`);
      await t.start({ txFirst: bursts > 1 ? bursts : true });
      return;
    }
    await t.cmd('set burst 3');
    for (const [len, bursts] of [[1518, 1], [570, 4], [64, 7]] as const) {
      await t.cmd(`set txpkts ${len}`);
      await t.start({ txFirst: bursts });
      await t.stop();
    }
    await t.cmd('set burst 32');
    await t.start();
  }

  async counters(): Promise<GenCounters> {
    if (!this.t) throw new Error('testpmd generator not started');
    const stats = await this.t.portStats();
    const tNs = process.hrtime.bigint();
    if (stats.length < 2) throw new Error('testpmd generator: could not parse port stats');
    return { tNs, rxPackets: stats.reduce((a, s) => a + s.rxPackets, 0), rxBytes: stats.reduce((a, s) => a + s.rxBytes, 0) };
  }

  async stop(): Promise<void> {
    const t = this.t;
    this.t = undefined;
    if (t) await t.quit(5000).catch(() => t.kill('SIGKILL'));
  }
}

export class OurGen implements TrafficGen {
  readonly name: GenName = 'gen';
  private s: GenSession | undefined;

  constructor(private readonly o: GenOptions) {}

  async start(sockets: [string, string], size: SizeLabel): Promise<void> {
    this.s = await GenSession.attach(sockets, { timeoutMs: 10_000, packed: this.o.packed });
    await sleep(100);
    this.s.start({ role: 'io', sizes: parseSize(size), cpu: this.o.cpu });
  }

  async counters(): Promise<GenCounters> {
    if (!this.s) throw new Error('generator not started');
    const snap = this.s.snapshot();
    const t = totals(snap);
    return { tNs: snap.tNs, rxPackets: Number(t.rxPackets), rxBytes: Number(t.rxBytes) };
  }

  async stop(): Promise<void> {
    this.s?.close();
    this.s = undefined;
  }
}

export function makeGen(name: GenName, o: GenOptions): TrafficGen {
  return name === 'testpmd' ? new TestpmdGen(o) : new OurGen(o);
}
