// One run of our packet generator: VirtioUserPorts attached to vhost-user sockets, the native Generator
// driving them on its own thread, and counters read as snapshots. Shared by `vhost-switch gen` (src/gen/cli.ts)
// and the benchmark harness (bench/), which is why nothing here prints.
import fs from 'node:fs';
import { native, type GeneratorPortOptions, type GeneratorPortStats, type NativeGenerator } from '../dataplane/native.js';
import { VirtioUserPort, ethFrame } from './virtio-user.js';

export type GenRole = 'source' | 'sink' | 'io';
export type AttachMode = 'connect' | 'listen';

/**
 * Simple IMIX, 7:4:1 of 64, 570 and 1518 B frames (average 353.8 B), interleaved so that any 12 consecutive
 * frames have the exact mix.
 */
export const IMIX_PATTERN: readonly number[] = [64, 570, 64, 64, 570, 64, 1518, 64, 570, 64, 64, 570];
export const IMIX_AVG_BYTES = IMIX_PATTERN.reduce((a, b) => a + b, 0) / IMIX_PATTERN.length;

/** "64", "1518", "imix" → the frame sizes the generator cycles through. */
export function parseSize(s: string): number[] {
  const v = s.trim().toLowerCase();
  if (v === 'imix') return [...IMIX_PATTERN];
  if (!/^\d+$/.test(v)) throw new Error(`bad frame size "${s}": a number of bytes (60-9000) or "imix"`);
  const n = Number(v);
  if (n < 60 || n > 9000) throw new Error(`bad frame size ${n}: must be 60-9000 bytes`);
  return [n];
}

/** Frames injected per port by the io loop's first burst: 32 like testpmd's tx_first, 36 (3 × 12) for IMIX. */
export function defaultFirstBurst(sizes: readonly number[]): number {
  return sizes.length > 1 ? 3 * sizes.length : 32;
}

const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;
export function checkMac(mac: string, what: string): string {
  if (!MAC_RE.test(mac)) throw new Error(`${what}: "${mac}" is not a MAC address like 02:00:00:00:00:01`);
  return mac.toLowerCase();
}

export interface GenSnapshot {
  /** process.hrtime.bigint() when the counters were read. */
  tNs: bigint;
  ports: GeneratorPortStats[];
}

export interface GenTotals {
  rxPackets: bigint;
  rxBytes: bigint;
  txPackets: bigint;
  txBytes: bigint;
  txRingFull: bigint;
}

export function totals(s: GenSnapshot): GenTotals {
  const t: GenTotals = { rxPackets: 0n, rxBytes: 0n, txPackets: 0n, txBytes: 0n, txRingFull: 0n };
  for (const p of s.ports) {
    t.rxPackets += p.rxPackets;
    t.rxBytes += p.rxBytes;
    t.txPackets += p.txPackets;
    t.txBytes += p.txBytes;
    t.txRingFull += p.txRingFull;
  }
  return t;
}

export interface Rate {
  seconds: number;
  rxMpps: number;
  rxGbps: number;
  txMpps: number;
  txGbps: number;
  txRingFull: number;
}

/** Received and sent rates between two snapshots (all ports summed). Gbit/s counts frame bytes (no FCS, no preamble/IFG). */
export function rateBetween(a: GenSnapshot, b: GenSnapshot, ports?: number[]): Rate {
  const pick = (s: GenSnapshot): GenSnapshot => (ports ? { tNs: s.tNs, ports: ports.map((i) => s.ports[i]!) } : s);
  const ta = totals(pick(a));
  const tb = totals(pick(b));
  const seconds = Number(b.tNs - a.tNs) / 1e9;
  const per = (x: bigint) => (seconds > 0 ? Number(x) / seconds : 0);
  return {
    seconds,
    rxMpps: per(tb.rxPackets - ta.rxPackets) / 1e6,
    rxGbps: (per(tb.rxBytes - ta.rxBytes) * 8) / 1e9,
    txMpps: per(tb.txPackets - ta.txPackets) / 1e6,
    txGbps: (per(tb.txBytes - ta.txBytes) * 8) / 1e9,
    txRingFull: Number(tb.txRingFull - ta.txRingFull),
  };
}

export interface AttachOptions {
  mode?: AttachMode;
  queueSize?: number;
  timeoutMs?: number;
  /** Packed virtqueues instead of split ones. */
  packed?: boolean;
}

/** Attaches one VirtioUserPort per socket (in parallel); on any failure the ones already up are closed. */
export async function attachPorts(sockets: string[], opts: AttachOptions = {}): Promise<VirtioUserPort[]> {
  const mode = opts.mode ?? 'connect';
  // listen: a socket file left by an earlier run would make bind() fail; anything else at the path is not ours.
  if (mode === 'listen') for (const s of sockets) removeStaleSocket(s);
  const results = await Promise.allSettled(
    sockets.map((s) =>
      mode === 'connect'
        ? VirtioUserPort.connect(s, { queueSize: opts.queueSize, timeoutMs: opts.timeoutMs, packed: opts.packed })
        : VirtioUserPort.listen(s, { queueSize: opts.queueSize, timeoutMs: opts.timeoutMs, acceptTimeoutMs: opts.timeoutMs, packed: opts.packed }),
    ),
  );
  const ok = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const failed = results.findIndex((r) => r.status === 'rejected');
  if (failed >= 0) {
    for (const p of ok) p.close();
    const reason = (results[failed] as PromiseRejectedResult).reason as Error;
    throw new Error(`cannot attach to ${sockets[failed]} (${mode}): ${reason.message}`);
  }
  return ok;
}

function removeStaleSocket(p: string): void {
  try {
    if (fs.lstatSync(p).isSocket()) fs.unlinkSync(p);
  } catch {
    /* nothing there */
  }
}

export interface GenRunOptions {
  role: GenRole;
  /** Frame sizes cycled through by source ports and the first burst of io ports. */
  sizes: number[];
  /** source: total frames per second over all source ports; 0 = as fast as the rings take them. */
  ratePps?: number;
  /** MACs of port 0; port 1 uses them swapped, further ports get 02:00:00:00:01:NN. */
  srcMac?: string;
  dstMac?: string;
  /** io: frames injected per port at start. */
  firstBurst?: number;
  /** Pin the generator thread to this CPU. */
  cpu?: number;
  /** Sleep this long after a pass that moved nothing, instead of spinning (a sink sharing a CPU). */
  idleSleepMicros?: number;
  /** source: stop after this many frames per source port (0 = no limit). */
  count?: number;
}

export const DEFAULT_SRC_MAC = '02:00:00:00:00:01';
export const DEFAULT_DST_MAC = '02:00:00:00:00:02';

/**
 * Port roles for a role name: io needs an even number of ports and pairs 0↔1, 2↔3…; source with two or more
 * ports sends on the even ports and sinks on the odd ones (the latency set-up); sink receives everywhere.
 */
export function portPlan(n: number, o: GenRunOptions): GeneratorPortOptions[] {
  if (n < 1) throw new Error('no ports');
  if (o.role === 'io' && n % 2 !== 0) throw new Error('role io needs two sockets (an io-forwarding pair)');
  const src = checkMac(o.srcMac ?? DEFAULT_SRC_MAC, '--src-mac');
  const dst = checkMac(o.dstMac ?? DEFAULT_DST_MAC, '--dst-mac');
  const macOf = (i: number): [string, string] => {
    if (i === 0) return [src, dst];
    if (i === 1) return [dst, src];
    const own = `02:00:00:00:01:${i.toString(16).padStart(2, '0')}`;
    const peer = `02:00:00:00:01:${(i ^ 1).toString(16).padStart(2, '0')}`;
    return [own, peer];
  };
  const sources = o.role === 'source' ? (n === 1 ? 1 : Math.ceil(n / 2)) : 0;
  const perSourceRate = o.ratePps && sources ? Math.max(1, Math.round(o.ratePps / sources)) : 0;
  return Array.from({ length: n }, (_, i) => {
    const [srcMac, dstMac] = macOf(i);
    if (o.role === 'io') {
      return { role: 'io', peer: i ^ 1, srcMac, dstMac, sizes: o.sizes, firstBurst: o.firstBurst ?? defaultFirstBurst(o.sizes) };
    }
    if (o.role === 'source' && (n === 1 || i % 2 === 0)) {
      return { role: 'source', srcMac, dstMac, sizes: o.sizes, ratePps: perSourceRate, count: o.count ?? 0 };
    }
    return { role: 'sink', srcMac, dstMac };
  });
}

/** A generator over attached ports. start() may be called again after stop() with other options (a new native Generator). */
export class GenSession {
  private gen: NativeGenerator | undefined;
  private plan: GeneratorPortOptions[] = [];

  constructor(
    readonly ports: VirtioUserPort[],
    /** Socket files we created (listen mode), removed by close(). */
    private readonly ownSockets: string[] = [],
  ) {}

  static async attach(sockets: string[], opts: AttachOptions = {}): Promise<GenSession> {
    try {
      return new GenSession(await attachPorts(sockets, opts), opts.mode === 'listen' ? sockets : []);
    } catch (e) {
      if (opts.mode === 'listen') for (const s of sockets) removeStaleSocket(s);
      throw e;
    }
  }

  get roles(): GeneratorPortOptions[] {
    return this.plan;
  }

  /**
   * Makes a learning switch learn each sink port's MAC: one broadcast frame from every sink port before the
   * generator runs (source ports teach theirs with their first frame). Without it a switch floods the whole
   * run's traffic, since a sink never sends.
   */
  announceSinks(): void {
    for (let i = 0; i < this.plan.length; i++) {
      const p = this.plan[i]!;
      if (p.role === 'sink' && p.srcMac) this.ports[i]!.send([ethFrame('ff:ff:ff:ff:ff:ff', p.srcMac, 64)]);
    }
  }

  /** Drops whatever sits in the receive rings (frames of an earlier run). Only while the generator is stopped. */
  drain(): number {
    if (this.gen) throw new Error('drain() while the generator runs');
    let n = 0;
    for (const p of this.ports) {
      for (let got = p.recv(256).length; got > 0; got = p.recv(256).length) n += got;
      p.driver.reclaimTx(1);
    }
    return n;
  }

  start(o: GenRunOptions, opts: { announce?: boolean } = {}): void {
    if (this.gen) throw new Error('generator already running');
    this.plan = portPlan(this.ports.length, o);
    if (opts.announce ?? o.role === 'source') this.announceSinks();
    const g = new (native().Generator)({ ...(o.cpu === undefined ? {} : { cpu: o.cpu }), ...(o.idleSleepMicros ? { idleSleepMicros: o.idleSleepMicros } : {}) });
    this.ports.forEach((p, i) => g.addPort(p.driver, this.plan[i]!));
    g.start();
    this.gen = g;
  }

  snapshot(): GenSnapshot {
    if (!this.gen) throw new Error('generator not started');
    return { tNs: process.hrtime.bigint(), ports: this.gen.stats() };
  }

  get running(): boolean {
    return this.gen !== undefined;
  }

  /** Stops the generator thread; returns the final counters. */
  stop(): GenSnapshot | undefined {
    if (!this.gen) return undefined;
    this.gen.stop();
    const s = { tNs: process.hrtime.bigint(), ports: this.gen.stats() };
    this.gen = undefined;
    return s;
  }

  close(): void {
    this.stop();
    for (const p of this.ports) p.close();
    for (const s of this.ownSockets) removeStaleSocket(s);
  }
}

/** Latency quantiles of the ports that received stamped frames (sinks), in microseconds; undefined if none did. */
export function latencyOf(s: GenSnapshot, plan: GeneratorPortOptions[]): { p50Us: number; p99Us: number; p999Us: number; samples: number } | undefined {
  let best: GeneratorPortStats | undefined;
  for (let i = 0; i < s.ports.length; i++) {
    const p = s.ports[i]!;
    if (plan[i]?.role === 'io') continue; // io frames keep the stamp of their first send: their age, not a latency
    if (p.latencySamples > (best?.latencySamples ?? 0n)) best = p;
  }
  if (!best) return undefined;
  return { p50Us: best.latencyP50Ns / 1000, p99Us: best.latencyP99Ns / 1000, p999Us: best.latencyP999Ns / 1000, samples: Number(best.latencySamples) };
}
