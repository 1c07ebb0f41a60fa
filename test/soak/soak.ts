// Soak: traffic through the real daemon while ports are added and removed through the API every few
// seconds, with virtio-user frontends attaching to them; the daemon's memory (RSS), fds and mappings are sampled
// and must stay flat, and the only drops allowed are the ones counted on the ports that were removed.
//
//   generator A (source, unicast to B's MAC) --s0-- vhost-switch --s1-- generator B (source, broadcast)
//                                                        |
//                          churn-1, churn-2, ... : added, attached (server or client mode), exchange frames, removed
//
// Steady traffic: our native Generator (one thread) on two VirtioUserPorts. A sends unicast frames to B's MAC (a
// static FDB entry through the port's `mac`), B sends broadcasts, which reach A and every churn port alive. Each
// churn cycle adds a port (alternately server and client mode), attaches a VirtioUserPort frontend, checks that a
// broadcast from B arrives and sends unicast frames to A and one broadcast, then removes it (alternately while the
// frontend is still attached and after it left). The daemon is sampled at the end of a cycle, when no churn port
// is alive, so that fds and mappings are compared in the same phase.
//
// Memory is judged on samples taken right after a full garbage collection and a memory trim (the daemon runs with
// --expose-gc; SIGUSR2 makes it collect), so that garbage V8 has not collected yet does not pass for a leak or hide
// one. fds must not move at all; anonymous RSS and mappings are judged by least-squares slopes against the ports
// that came and went, held memory (live heap + malloc) and, over long runs, anonymous RSS against time, and all
// within a slack of the baseline; the live JavaScript heap is compared at the
// baseline and at the end; glibc's malloc in use comes from GET /v1/stats. A field that was not measured fails.
//
// Used by test/e2e/fault-soak.test.ts (3 minutes) and scripts/soak.sh (30 minutes by default).
import fs from 'node:fs';
import path from 'node:path';
import { ethFrame, VirtioUserPort } from '../../src/gen/virtio-user.js';
import type { TrimStats } from '../../src/host/memtrim.js';
import { native, type NativeGenerator } from '../../src/dataplane/native.js';
import type { Collected, ProcessMemory } from '../../src/host/procmem.js';
import { DaemonProcess } from '../integration/support/daemon.js';
import { sleep } from '../../harness/env.js';

export interface SoakOptions {
  /** Total duration of the churn loop. */
  durationMs: number;
  /** Run directory (sockets, config, state); created by the caller. */
  runDir: string;
  /** Time per churn cycle (a port is added and removed within it). Default 3000 ms. */
  cycleMs?: number;
  /** Minimum time between samples (taken at a cycle's end). Default 5000 ms. */
  sampleEveryMs?: number;
  /**
   * Samples before this are warm-up; default half the duration, clamped to 20 s .. 120 s. The daemon's anonymous
   * memory grows by about a megabyte over its first 80 s of churn (V8 committing heap pages, compiled code) and is
   * flat after it: a baseline inside that would judge warm-up as a leak.
   */
  warmupMs?: number;
  /**
   * Unicast rate of generator A and broadcast rate of generator B (frames/s). Default 2000 and 200: with rings of
   * 4096 a receiver (or the poll thread) must be off the CPU for two seconds before a steady port drops a frame,
   * which keeps the soak honest on a loaded 2-core machine (such drops fail it).
   */
  unicastPps?: number;
  broadcastPps?: number;
  /** How the samples are judged (judgeSamples); defaults in runSoak. */
  bounds?: Partial<JudgeBounds>;
  /** Growth of the live JavaScript heap allowed between baseline and end: this or 20%, whichever is more (2 MiB). */
  liveHeapSlackKiB?: number;
  /** Progress lines (default: none). */
  log?: (line: string) => void;
}

export interface Sample {
  tMs: number;
  cycle: number;
  rssKiB: number;
  /**
   * Anonymous resident memory (RssAnon): RSS less file pages (code paged in) and shared memory (the steady ports'
   * guest memory, resident as the switch touches more of their buffers; bounded by its size, not a leak).
   */
  rssAnonKiB?: number;
  fds: number;
  maps: number;
  /** From GET /v1/stats `process`: V8's heap in use and glibc malloc in use, to tell a JavaScript leak from a C++ one. */
  heapKiB?: number;
  mallocKiB?: number;
  /** V8's committed heap and glibc's held memory (in use + free): with the two above, where RSS goes. */
  heapTotalKiB?: number;
  mallocHeldKiB?: number;
}

export interface RemovedPortDrops {
  name: string;
  mode: 'server' | 'client';
  drops: Record<string, number>;
}

export interface SoakResult {
  samples: Sample[];
  baseline?: Sample;
  /** Where the resident memory grew between the baseline sample and the end: KiB per mapping name, largest first. */
  rssGrowthByMapping?: Array<[string, number]>;
  /** Live JavaScript heap after a full GC, at the baseline and at the end. */
  liveHeapKiB?: { baseline?: number; end?: number };
  /** The daemon's memory trims after port removals (src/host/memtrim.ts), from GET /v1/stats at the end. */
  trims?: TrimStats;
  cycles: number;
  /** Everything that went wrong; empty when the soak passed. */
  violations: string[];
  /** Drops counted on churn ports just before their removal (allowed). */
  removedPortDrops: Record<string, number>;
  steady: {
    genA: { tx: number; rx: number; txRingFull: number };
    genB: { tx: number; rx: number; txRingFull: number };
    s0: { rx: number; tx: number; drops: Record<string, number> };
    s1: { rx: number; tx: number; drops: Record<string, number> };
    churnUnicastsToA: number;
    churnBroadcasts: number;
  };
  daemonAlive: boolean;
}

const MAC_A = '02:00:00:00:50:0a';
const MAC_B = '02:00:00:00:50:0b';
const BCAST = 'ff:ff:ff:ff:ff:ff';
const CHURN_UNICASTS = 8;
/** Ring size of the steady ports (4096 frames = 2 s of slack at 2000 frames/s for a descheduled receiver). */
const RING = 4096;

function churnMac(k: number): string {
  const h = (n: number) => (n & 0xff).toString(16).padStart(2, '0');
  return `02:00:51:${h(k >> 16)}:${h(k >> 8)}:${h(k)}`;
}

/** RSS (KiB), open fds and mapping count of a process, from /proc. */
export function processFootprint(pid: number): { rssKiB: number; rssAnonKiB: number; fds: number; maps: number } {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const rssKiB = Number(/^VmRSS:\s+(\d+)\s+kB/m.exec(status)?.[1] ?? NaN);
  const rssAnonKiB = Number(/^RssAnon:\s+(\d+)\s+kB/m.exec(status)?.[1] ?? NaN);
  const fds = fs.readdirSync(`/proc/${pid}/fd`).length;
  const maps = fs.readFileSync(`/proc/${pid}/maps`, 'utf8').split('\n').filter(Boolean).length;
  return { rssKiB, rssAnonKiB, fds, maps };
}

/** Resident KiB per mapping name (a file's path, [heap], [stack], or [anon] for anonymous memory), from smaps. */
export function residentByMapping(pid: number): Record<string, number> {
  const out: Record<string, number> = {};
  let name = '[anon]';
  for (const line of fs.readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const head = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (head) {
      name = head[1] ? head[1]!.trim() : '[anon]';
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss) out[name] = (out[name] ?? 0) + Number(rss[1]);
  }
  return out;
}

/** GET /v1/stats `process`: the daemon's own view of its memory, and its memory trims. */
async function daemonProcess(d: DaemonProcess): Promise<(Partial<ProcessMemory> & { trims?: TrimStats }) | undefined> {
  const r = await d.api.request('GET', '/v1/stats');
  return (r.body as { process?: Partial<ProcessMemory> & { trims?: TrimStats } }).process;
}

/**
 * The daemon's memory in KiB: V8's heap and malloc in use as they were right after the collection `c` (so that what
 * the daemon allocated since, the stats request's own work among it, is not counted), what it holds as it is now.
 */
async function daemonMemory(d: DaemonProcess, c: Collected): Promise<Pick<Sample, 'heapKiB' | 'mallocKiB' | 'heapTotalKiB' | 'mallocHeldKiB'>> {
  const p = await daemonProcess(d);
  const kib = (x: number | undefined) => (x === undefined ? undefined : Math.round(x / 1024));
  return { heapKiB: kib(c.heapUsedBytes), mallocKiB: kib(c.mallocInUseBytes), heapTotalKiB: kib(p?.heapTotalBytes), mallocHeldKiB: kib(p?.mallocHeldBytes) };
}

/**
 * SIGUSR2: the daemon (started with --expose-gc) collects its garbage, gives freed memory back and records what
 * was in use right after (src/daemon.ts); returns that record, from GET /v1/stats `process.collected`.
 */
async function collect(pid: number, d: DaemonProcess): Promise<Collected> {
  const asked = Date.now();
  process.kill(pid, 'SIGUSR2');
  for (;;) {
    await sleep(50);
    const c = (await daemonProcess(d))?.collected;
    if (c && c.atMs >= asked) return c;
    if (Date.now() - asked > 5000) throw new Error('no collection reported 5 s after SIGUSR2 (is the daemon running with --expose-gc?)');
  }
}

/** Live JavaScript heap of the daemon in KiB: V8's heap in use right after a full collection (collect). */
export async function liveHeapKiB(pid: number, d: DaemonProcess): Promise<number> {
  return Math.round((await collect(pid, d)).heapUsedBytes / 1024);
}

interface Stats {
  rxPackets: number;
  txPackets: number;
  drops: Record<string, number>;
}

async function portStats(d: DaemonProcess, name: string): Promise<Stats> {
  const r = await d.api.request('GET', `/v1/ports/${name}/stats`);
  if (r.status !== 200) throw new Error(`stats of ${name}: HTTP ${r.status} ${r.text}`);
  const b = r.body as { rxPackets: number | string; txPackets: number | string; drops: Record<string, number | string> };
  return {
    rxPackets: Number(b.rxPackets),
    txPackets: Number(b.txPackets),
    drops: Object.fromEntries(Object.entries(b.drops).map(([k, v]) => [k, Number(v)])),
  };
}

async function waitState(d: DaemonProcess, name: string, want: (s: string) => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  let last = '';
  for (;;) {
    const r = await d.api.request('GET', `/v1/ports/${name}`);
    last = r.status === 200 ? (r.body as { state: string }).state : `HTTP ${r.status}`;
    if (want(last)) return;
    if (Date.now() > end) throw new Error(`port ${name}: state ${last} after ${ms} ms`);
    await sleep(20);
  }
}

/** What judgeSamples checks against; the soak's defaults are in runSoak. */
export interface JudgeBounds {
  /** Every sample after the baseline within max(slack, ratio x baseline) of it. */
  rssSlackKiB: number;
  rssSlackRatio: number;
  mapsSlack: number;
  mapsSlackRatio: number;
  /** Open fds above the baseline's allowed at any later sample (0: exact; samples are taken with no churn port alive). */
  fdSlack: number;
  /**
   * Least-squares slopes after the baseline. Per port added and removed: anonymous RSS and mappings. Per minute:
   * the memory the daemon holds (live JavaScript heap + malloc in use), and anonymous RSS once the judged window is
   * at least rssTrendMinWindowMs long: the daemon's anonymous memory takes one-time steps of about a megabyte
   * (a thread's arena or stack, V8 committing a page) that a short window cannot tell from a creep.
   */
  rssPerPortKiB: number;
  mapsPerPort: number;
  heldTrendKiBPerMin: number;
  rssTrendKiBPerMin: number;
  rssTrendMinWindowMs: number;
  /** glibc malloc in use above the baseline: this or 20%, whichever is more. */
  mallocSlackKiB: number;
}

/** The fields every sample must carry: a field that was not measured fails the soak instead of passing unjudged. */
export const REQUIRED_SAMPLE_FIELDS = ['rssKiB', 'rssAnonKiB', 'fds', 'maps', 'heapKiB', 'mallocKiB'] as const;
/**
 * The soak's default slopes, from real 3-minute runs sampled after a collection: anonymous RSS ~40 KiB per port
 * (one-time steps included), held memory ~60 KiB per minute, mappings flat within a few. The leaks the judge must
 * catch are larger: 128 KiB or one mapping per port, one fd per 8 ports, 300 KiB per minute held; a creep of RSS
 * alone at 300 KiB per minute is judged once the window reaches 10 minutes (scripts/soak.sh; the CI soak judges 90 s).
 */
export const DEFAULT_RSS_PER_PORT_KIB = 96;
export const DEFAULT_MAPS_PER_PORT = 0.25;
export const DEFAULT_HELD_TREND_KIB_PER_MIN = 200;
export const DEFAULT_RSS_TREND_KIB_PER_MIN = 150;
export const DEFAULT_RSS_TREND_MIN_WINDOW_MS = 10 * 60_000;
/** The soak's bounds unless SoakOptions.bounds says otherwise. */
export const DEFAULT_JUDGE_BOUNDS: JudgeBounds = {
  rssSlackKiB: 8 * 1024,
  rssSlackRatio: 0.05,
  mapsSlack: 32,
  mapsSlackRatio: 0.1,
  fdSlack: 0,
  rssPerPortKiB: DEFAULT_RSS_PER_PORT_KIB,
  mapsPerPort: DEFAULT_MAPS_PER_PORT,
  heldTrendKiBPerMin: DEFAULT_HELD_TREND_KIB_PER_MIN,
  rssTrendKiBPerMin: DEFAULT_RSS_TREND_KIB_PER_MIN,
  rssTrendMinWindowMs: DEFAULT_RSS_TREND_MIN_WINDOW_MS,
  mallocSlackKiB: 2048,
};
/** Samples after the baseline needed for a slope to mean something. */
export const MIN_SAMPLES_FOR_TREND = 8;

/** Least-squares slope of y over x. */
export function slope(points: ReadonlyArray<readonly [number, number]>): number {
  const n = points.length;
  const mx = points.reduce((a, [x]) => a + x, 0) / n;
  const my = points.reduce((a, [, y]) => a + y, 0) / n;
  let sxy = 0;
  let sxx = 0;
  for (const [x, y] of points) {
    sxy += (x - mx) * (y - my);
    sxx += (x - mx) * (x - mx);
  }
  return sxx === 0 ? 0 : sxy / sxx;
}

/**
 * Judges samples from the baseline (the first sample at or after warm-up) on. Each sample is taken right after a
 * full garbage collection and a memory trim (SIGUSR2), at a cycle's end when no churn port is alive, so what it
 * measures is what the daemon keeps. A leak shows two ways: as growth against the number of ports that came and
 * went (a mapping, an fd or some KiB per port), and as RSS rising with time; both are least-squares slopes over
 * every sample, which one noisy sample cannot make or hide. fds must not move at all.
 */
export function judgeSamples(samples: Sample[], warmupMs: number, o: JudgeBounds): { baseline?: Sample; violations: string[] } {
  const baseline = samples.find((s) => s.tMs >= warmupMs);
  if (!baseline) return { violations: [`no sample after the ${warmupMs} ms warm-up (${samples.length} samples)`] };
  const judged = samples.filter((s) => s.tMs >= baseline.tMs);
  if (judged.length - 1 < MIN_SAMPLES_FOR_TREND) {
    return { baseline, violations: [`only ${judged.length - 1} samples after the baseline (${MIN_SAMPLES_FOR_TREND} needed): run longer`] };
  }
  const violations: string[] = [];
  for (const s of judged) {
    const missing = REQUIRED_SAMPLE_FIELDS.filter((f) => typeof s[f] !== 'number' || !Number.isFinite(s[f]));
    if (missing.length) violations.push(`sample at ${s.tMs} ms: ${missing.join(', ')} not measured`);
  }
  if (violations.length) return { baseline, violations };

  const rssMax = baseline.rssKiB + Math.max(o.rssSlackKiB, baseline.rssKiB * o.rssSlackRatio);
  const mapsMax = baseline.maps + Math.max(o.mapsSlack, baseline.maps * o.mapsSlackRatio);
  const mallocMax = baseline.mallocKiB! + Math.max(o.mallocSlackKiB, baseline.mallocKiB! * 0.2);
  for (const s of judged) {
    if (s.fds > baseline.fds + o.fdSlack) violations.push(`${s.fds} fds at ${s.tMs} ms, ${baseline.fds} at the baseline`);
    if (s.rssKiB > rssMax) violations.push(`RSS ${s.rssKiB} KiB at ${s.tMs} ms > ${Math.round(rssMax)} KiB (baseline ${baseline.rssKiB} KiB at ${baseline.tMs} ms)`);
    if (s.maps > mapsMax) violations.push(`${s.maps} mappings at ${s.tMs} ms > ${Math.round(mapsMax)} (baseline ${baseline.maps})`);
    if (s.mallocKiB! > mallocMax) violations.push(`malloc in use ${s.mallocKiB} KiB at ${s.tMs} ms > ${Math.round(mallocMax)} KiB (baseline ${baseline.mallocKiB} KiB)`);
  }
  const minutes = (x: Sample) => x.tMs / 60_000;
  const held = slope(judged.map((x) => [minutes(x), x.heapKiB! + x.mallocKiB!]));
  if (held > o.heldTrendKiBPerMin) violations.push(`held memory rising: ${Math.round(held)} KiB per minute of live JavaScript heap + malloc in use (at most ${o.heldTrendKiBPerMin})`);
  const windowMs = judged[judged.length - 1]!.tMs - baseline.tMs;
  if (windowMs >= o.rssTrendMinWindowMs) {
    const perMin = slope(judged.map((x) => [minutes(x), x.rssAnonKiB!]));
    if (perMin > o.rssTrendKiBPerMin) violations.push(`RSS rising: ${Math.round(perMin)} KiB per minute of anonymous memory after the baseline (at most ${o.rssTrendKiBPerMin})`);
  }
  const ports = judged[judged.length - 1]!.cycle - baseline.cycle;
  if (ports > 0) {
    const rssPerPort = slope(judged.map((x) => [x.cycle, x.rssAnonKiB!]));
    const mapsPerPort = slope(judged.map((x) => [x.cycle, x.maps]));
    if (rssPerPort > o.rssPerPortKiB) violations.push(`RSS grows ${rssPerPort.toFixed(1)} KiB of anonymous memory per port added and removed (at most ${o.rssPerPortKiB}; ${ports} ports)`);
    if (mapsPerPort > o.mapsPerPort) violations.push(`mappings grow ${mapsPerPort.toFixed(2)} per port added and removed (at most ${o.mapsPerPort}; ${ports} ports)`);
  }
  return { baseline, violations };
}

export async function runSoak(opts: SoakOptions): Promise<SoakResult> {
  const log = opts.log ?? (() => {});
  const cycleMs = opts.cycleMs ?? 3000;
  const sampleEveryMs = opts.sampleEveryMs ?? 5000;
  const warmupMs = opts.warmupMs ?? Math.min(120_000, Math.max(20_000, opts.durationMs * 0.5));
  const bounds = { ...DEFAULT_JUDGE_BOUNDS, ...opts.bounds, liveHeapSlackKiB: opts.liveHeapSlackKiB ?? 2048 };
  const dir = opts.runDir;
  const violations: string[] = [];
  const removedPortDrops: Record<string, number> = {};
  const samples: Sample[] = [];

  const config = path.join(dir, 'soak.json');
  fs.writeFileSync(
    config,
    JSON.stringify({
      switch: { threads: 1 },
      ports: [
        { name: 's0', mode: 'server', socket: 's0.sock', mac: MAC_A },
        { name: 's1', mode: 'server', socket: 's1.sock', mac: MAC_B },
      ],
    }),
  );
  const d = await DaemonProcess.start(dir, ['--config', config], { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --expose-gc`.trim() });
  const pid = d.child.pid!;
  const liveHeap: { baseline?: number; end?: number } = {};
  let rssAtBaseline: Record<string, number> | undefined;
  let rssGrowthByMapping: Array<[string, number]> | undefined;
  const frontends: VirtioUserPort[] = [];
  let gen: NativeGenerator | undefined;
  let cycles = 0;
  let churnUnicastsToA = 0;
  let churnBroadcasts = 0;
  try {
    const a = await VirtioUserPort.connect(path.join(dir, 's0.sock'), { queueSize: RING });
    const b = await VirtioUserPort.connect(path.join(dir, 's1.sock'), { queueSize: RING });
    frontends.push(a, b);
    await waitState(d, 's0', (s) => s === 'ready', 10_000);
    await waitState(d, 's1', (s) => s === 'ready', 10_000);
    gen = new (native().Generator)();
    gen.addPort(a.driver, { role: 'source', srcMac: MAC_A, dstMac: MAC_B, ratePps: opts.unicastPps ?? 2000, sizes: [64, 512, 1500] });
    gen.addPort(b.driver, { role: 'source', srcMac: MAC_B, dstMac: BCAST, ratePps: opts.broadcastPps ?? 200, sizes: [64, 256] });
    gen.start();
    log(`soak: daemon pid ${pid}, ${opts.durationMs / 1000} s, a port added and removed every ${cycleMs / 1000} s, warm-up ${warmupMs / 1000} s`);

    const t0 = Date.now();
    let lastSample = -Infinity;
    while (Date.now() - t0 < opts.durationMs) {
      if (!d.alive()) {
        violations.push(`the daemon died: ${d.stderr.slice(-2000)}`);
        break;
      }
      const cycleStart = Date.now();
      cycles++;
      try {
        const r = await churnCycle(d, dir, cycles, cycleMs, () => steadyState(d, gen!));
        churnUnicastsToA += r.unicasts;
        churnBroadcasts += r.broadcasts;
        for (const [k, v] of Object.entries(r.drops)) removedPortDrops[k] = (removedPortDrops[k] ?? 0) + v;
      } catch (err) {
        violations.push(`cycle ${cycles}: ${(err as Error).message}`);
        if (violations.length > 20) break;
      }
      const now = Date.now();
      if (now - lastSample >= sampleEveryMs && d.alive()) {
        lastSample = now;
        const c = await collect(pid, d);
        const s: Sample = { tMs: now - t0, cycle: cycles, ...processFootprint(pid), ...(await daemonMemory(d, c)) };
        samples.push(s);
        log(`soak: t=${Math.round(s.tMs / 1000)}s cycle=${s.cycle} rss=${s.rssKiB}KiB anon=${s.rssAnonKiB}KiB fds=${s.fds} maps=${s.maps} heap=${s.heapKiB ?? '?'}/${s.heapTotalKiB ?? '?'}KiB malloc=${s.mallocKiB ?? '?'}/${s.mallocHeldKiB ?? '?'}KiB`);
        if (!rssAtBaseline && s.tMs >= warmupMs) rssAtBaseline = residentByMapping(pid);
        if (liveHeap.baseline === undefined && s.tMs >= warmupMs) {
          liveHeap.baseline = await liveHeapKiB(pid, d);
          log(`soak: live JavaScript heap at the baseline: ${liveHeap.baseline} KiB`);
        }
      }
      const left = cycleMs - (Date.now() - cycleStart);
      if (left > 0) await sleep(left);
    }

    if (d.alive() && rssAtBaseline) {
      const now = residentByMapping(pid);
      const names = new Set([...Object.keys(now), ...Object.keys(rssAtBaseline)]);
      rssGrowthByMapping = [...names].map((n): [string, number] => [n, (now[n] ?? 0) - (rssAtBaseline![n] ?? 0)]).filter(([, v]) => v !== 0).sort((a, b) => b[1] - a[1]).slice(0, 10);
      log(`soak: resident growth by mapping since the baseline (KiB): ${rssGrowthByMapping.map(([n, v]) => `${n} ${v}`).join(', ')}`);
    }
    if (d.alive() && liveHeap.baseline !== undefined) {
      liveHeap.end = await liveHeapKiB(pid, d);
      log(`soak: live JavaScript heap at the end: ${liveHeap.end} KiB`);
      const max = liveHeap.baseline + Math.max(bounds.liveHeapSlackKiB, liveHeap.baseline * 0.2);
      if (liveHeap.end > max) violations.push(`live JavaScript heap ${liveHeap.end} KiB at the end > ${Math.round(max)} KiB (baseline ${liveHeap.baseline} KiB)`);
    }
    gen.stop();
    await sleep(500);
    const [ga, gb] = gen.stats();
    const [s0, s1] = [await portStats(d, 's0'), await portStats(d, 's1')];
    const n = (x: bigint) => Number(x);
    const steady = {
      genA: { tx: n(ga!.txPackets), rx: n(ga!.rxPackets), txRingFull: n(ga!.txRingFull) },
      genB: { tx: n(gb!.txPackets), rx: n(gb!.rxPackets), txRingFull: n(gb!.txRingFull) },
      s0: { rx: s0.rxPackets, tx: s0.txPackets, drops: s0.drops },
      s1: { rx: s1.rxPackets, tx: s1.txPackets, drops: s1.drops },
      churnUnicastsToA,
      churnBroadcasts,
    };
    // Steady ports: no drops at all, everything each generator sent was taken by the switch, and everything sent
    // toward a steady port was delivered to it.
    for (const [name, s] of [['s0', s0], ['s1', s1]] as const) {
      for (const [reason, c] of Object.entries(s.drops)) if (c !== 0) violations.push(`steady port ${name}: ${c} ${reason} drops`);
    }
    if (s0.rxPackets !== steady.genA.tx) violations.push(`s0: the switch took ${s0.rxPackets} frames, generator A sent ${steady.genA.tx}`);
    if (s1.rxPackets !== steady.genB.tx) violations.push(`s1: the switch took ${s1.rxPackets} frames, generator B sent ${steady.genB.tx}`);
    const toS1 = steady.genA.tx + churnBroadcasts;
    const toS0 = steady.genB.tx + churnUnicastsToA + churnBroadcasts;
    if (s1.txPackets !== toS1) violations.push(`s1: ${s1.txPackets} frames delivered, ${toS1} sent toward it`);
    if (s0.txPackets !== toS0) violations.push(`s0: ${s0.txPackets} frames delivered, ${toS0} sent toward it`);
    for (const [name, g, s] of [['A', steady.genA, s0], ['B', steady.genB, s1]] as const) {
      if (g.rx > s.txPackets || s.txPackets - g.rx > RING) violations.push(`generator ${name} received ${g.rx}, the switch delivered ${s.txPackets}`);
    }
    if (steady.genA.tx === 0 || steady.genB.tx === 0) violations.push('a generator sent nothing');

    // Removed ports must have been followed by memory trims (one per 30 s at most): without them RSS creeps.
    const trims = (await daemonProcess(d))?.trims;
    log(`soak: memory trims: ${JSON.stringify(trims)}`);
    if (opts.durationMs >= 60_000 && !(trims && trims.count > 0)) violations.push(`no memory trim ran after ${cycles} port removals: ${JSON.stringify(trims)}`);

    const judged = judgeSamples(samples, warmupMs, bounds);
    violations.push(...judged.violations);
    const ports = (await d.api.request('GET', '/v1/ports')).body as { ports: Array<{ name: string }> };
    if (ports.ports.length !== 2) violations.push(`ports left at the end: ${ports.ports.map((p) => p.name).join(', ')}`);
    if (liveHeap.baseline === undefined) violations.push('the live JavaScript heap was not measured (no sample after the warm-up)');
    return { samples, baseline: judged.baseline, liveHeapKiB: liveHeap, trims, rssGrowthByMapping, cycles, violations, removedPortDrops, steady, daemonAlive: d.alive() };
  } finally {
    gen?.stop();
    for (const f of frontends) f.close();
    if (d.alive()) await d.stop();
  }
}

/** The steady traffic as it is now, for a failure's message: what each generator sent and met, what s0 and s1 counted. */
async function steadyState(d: DaemonProcess, gen: NativeGenerator): Promise<string> {
  const [ga, gb] = gen.stats();
  const g = (x: typeof ga) => `tx ${x!.txPackets} rx ${x!.rxPackets} ring full ${x!.txRingFull}`;
  const p = async (name: string) => {
    const s = await portStats(d, name);
    const drops = Object.entries(s.drops).filter(([, v]) => v !== 0).map(([k, v]) => `${k} ${v}`).join(', ');
    return `${name} rx ${s.rxPackets} tx ${s.txPackets}${drops ? ` drops ${drops}` : ''}`;
  };
  return `generator A ${g(ga)}; generator B ${g(gb)}; ${await p('s0')}; ${await p('s1')}`;
}

/** One churn port's life: add, attach, exchange frames, remove. Returns what it sent and the drops it counted. */
async function churnCycle(
  d: DaemonProcess,
  dir: string,
  k: number,
  cycleMs: number,
  steady: () => Promise<string>,
): Promise<{ unicasts: number; broadcasts: number; drops: Record<string, number> }> {
  const name = `churn-${k}`;
  const mode: 'server' | 'client' = k % 2 ? 'server' : 'client';
  const socket = path.join(dir, `${name}.sock`);
  const mac = churnMac(k);
  let fe: VirtioUserPort | undefined;
  let listening: Promise<VirtioUserPort> | undefined;
  try {
    if (mode === 'client') {
      listening = VirtioUserPort.listen(socket, { acceptTimeoutMs: 10_000 });
      listening.catch(() => {});
    }
    const r = await d.api.request('POST', '/v1/ports', { name, mode, socket });
    if (r.status !== 201) throw new Error(`POST ${name}: HTTP ${r.status} ${r.text}`);
    fe = listening ? await listening : await VirtioUserPort.connect(socket);
    listening = undefined;
    await waitState(d, name, (s) => s === 'ready', 10_000);

    // Flooding reaches the new port: a broadcast from generator B arrives.
    const got = await fe.recvSome(1, 3000);
    if (got.length < 1) {
      const st = await portStats(d, name);
      const port = (await d.api.request('GET', `/v1/ports/${name}`)).body;
      throw new Error(`${name}: no broadcast from the steady traffic arrived (${name}: ${JSON.stringify({ ...st, port })}; ${await steady()})`);
    }
    const frames = Array.from({ length: CHURN_UNICASTS }, () => ethFrame(MAC_A, mac, 128));
    let unicasts = 0;
    for (let tries = 0; unicasts < frames.length && tries < 100; tries++) {
      unicasts += fe.send(frames.slice(unicasts));
      if (unicasts < frames.length) await sleep(5);
    }
    const broadcasts = fe.send([ethFrame(BCAST, mac, 64)]);
    const sent = unicasts + broadcasts;
    // Wait until the switch took them all from the ring: what it has taken is what the accounting counts.
    const end = Date.now() + 5000;
    let st = await portStats(d, name);
    while (st.rxPackets < sent && Date.now() < end) {
      await sleep(10);
      st = await portStats(d, name);
    }
    if (st.rxPackets !== sent) throw new Error(`${name}: sent ${sent}, the switch took ${st.rxPackets}`);
    await sleep(Math.max(0, cycleMs / 3));

    // Removal: alternately under an attached frontend (the port is pulled from under it) and after it left.
    st = await portStats(d, name);
    if (k % 4 >= 2) {
      fe.close();
      fe = undefined;
      await waitState(d, name, (s) => s !== 'ready', 5000);
    }
    const del = await d.api.request('DELETE', `/v1/ports/${name}`);
    if (del.status !== 204) throw new Error(`DELETE ${name}: HTTP ${del.status} ${del.text}`);
    const fdb = (await d.api.request('GET', '/v1/fdb')).body as { entries: Array<{ mac: string; port: string }> };
    const stale = fdb.entries.filter((e) => e.port === name || e.mac === mac);
    if (stale.length) throw new Error(`${name}: FDB entries left after its removal: ${JSON.stringify(stale)}`);
    return { unicasts, broadcasts, drops: st.drops };
  } finally {
    fe?.close();
    // The port was refused before the switch connected: stop listening.
    if (listening) await listening.then((f) => f.close(), () => {});
    fs.rmSync(socket, { force: true });
  }
}
