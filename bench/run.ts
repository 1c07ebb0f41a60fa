// `npm run bench`: vhost-switch against raw DPDK vhost (testpmd) and OVS-DPDK on this machine, with two generators
// (testpmd virtio-user and our own), in the reference topology: generator on one CPU with two virtio ports in an io
// loop, DUT on another CPU with two vhost-user ports. DUTs alternate within the run (every sample visits every DUT),
// so slow drifts of the machine spread over all of them. See docs/bench.md.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { cleanupAll, hugepageStatus } from '../harness/env.js';
import { GenSession, latencyOf, parseSize, rateBetween } from '../src/gen/bench-session.js';
import { OvsDut, findOvsDpdk } from './anchors/ovs.js';
import { TestpmdDut } from './anchors/testpmd.js';
import { VhostSwitchDut } from './duts/vhost-switch.js';
import { runFdbBench, type FdbResult } from './fdb.js';
import { makeGen } from './generators.js';
import { c2cRoundTripNs } from './lib/c2c.js';
import { frameBytes, runNicBench, type NicResult } from './nic.js';
import { pinSelf, repoRoot, run, sleep, spread, cpuShare, type Spread } from './lib/util.js';
import { machine, type Machine } from './lib/versions.js';
import { writeReports } from './report.js';
import type { Dut, DutName, GenName, LatencySample, ThroughputSample } from './types.js';

export interface BenchOptions {
  sizes: string[];
  durationS: number;
  warmupS: number;
  samples: number;
  duts: DutName[];
  generators: GenName[];
  idleS: number;
  latency: boolean;
  /** Offered rates of the latency runs, Mpps, the same for every DUT; "slowest" is half the slowest DUT's median
   * best at that size in this run. */
  latencyRates: Array<number | 'slowest'>;
  scalePorts: number[];
  fdbMacs: number;
  /** Frame sizes of the NIC-port figures (bench/nic.ts); empty skips them. */
  nicSizes: string[];
  genCpu: number;
  dutCpu: number;
  outDir: string;
  quick: boolean;
  /** Bursts of 32 frames the testpmd generator primes per port (its rings grow to 1024 entries above 1). */
  inFlight: number;
  /** false: the testpmd generator does not ask for VIRTIO_F_IN_ORDER (of any DUT). */
  inOrder: boolean;
  /** The generators drive packed virtqueues (every DUT's rings are packed). */
  packed: boolean;
}

export interface ThroughputResult {
  dut: DutName;
  gen: GenName;
  size: string;
  samples: ThroughputSample[];
  mpps?: Spread;
  gbps?: Spread;
  cyclesPerPacket?: Spread;
  busy?: Spread;
  framesPerPass?: Spread;
}

export interface LatencyResult {
  dut: DutName;
  size: string;
  /** The rate offered to every DUT for this row. */
  ratePps: number;
  samples: LatencySample[];
  rxMpps?: Spread;
  p50Us?: Spread;
  p99Us?: Spread;
  p999Us?: Spread;
  loss?: Spread;
}

export interface IdleResult {
  dut: DutName;
  /** Share of one core per sample (1 = 100%). */
  samples: number[];
  cpu?: Spread;
}

export interface ScaleResult {
  ports: number;
  gen: GenName;
  samples: ThroughputSample[];
  mpps?: Spread;
  cyclesPerPacket?: Spread;
}

export interface BenchResults {
  version: 1;
  machine: Machine;
  options: BenchOptions;
  versions: Partial<Record<DutName, string>>;
  throughput: ThroughputResult[];
  latency: LatencyResult[];
  idle: IdleResult[];
  scale: ScaleResult[];
  fdb?: FdbResult;
  nic?: NicResult;
  errors: Array<{ what: string; message: string }>;
  /** Core-to-core round trips (bench/native/c2c.cc) taken before each DUT instance of the throughput samples. */
  c2c: Array<{ at: string; sample: number; before: DutName; ns: number }>;
  elapsedS: number;
  /** Load average when the run ended (the machine's at the start is in machine.loadAvg). */
  loadAvgEnd?: number[];
}

const USAGE = `usage: npm run bench -- [options]     (node dist/bench/run.js after \`npx tsc -p .\`)

  --sizes LIST          frame sizes: 64,512,1518,imix (default all four)
  --duration S          measurement window per figure (default 10)
  --warmup S            traffic before each window (default 2)
  --samples N           samples per figure; the table shows the median and min–max (default 5)
  --duts LIST           vhost-switch,testpmd,ovs (default all three)
  --generators LIST     testpmd,gen (default both; the first is the reference for cycles/packet)
  --idle S              idle-CPU window per DUT and sample (default 10; 0 skips)
  --no-latency          skip the latency runs (our generator, source → sink at fixed offered rates)
  --latency-rates LIST  offered rates in Mpps, the same for every DUT; "slowest" is half the slowest DUT's median
                        best at that size (default 0.5,1,slowest)
  --scale LIST          vhost-switch port counts for the scale runs (default 2,8,32; "none" skips)
  --fdb-macs N          MACs learned for the FDB run (default 1000000; 0 skips)
  --nic-sizes LIST      frame sizes of the NIC-port figures: guest <-> veth on AF_XDP and AF_PACKET, beside
                        the kernel bridge between veths (default 64,1518; "none" skips)
  --in-flight N         bursts of 32 frames testpmd primes per port (default 1; above 1 its rings get 1024
                        entries): with 1, two clumps of 32 circulate and the rate depends on their phase
  --no-in-order         the testpmd generator does not ask for VIRTIO_F_IN_ORDER (in_order=0), from any DUT
  --packed              the throughput, latency and idle runs drive packed virtqueues (testpmd packed_vq=1)
  --gen-cpu N           generator CPU (default 0)
  --dut-cpu N           DUT CPU (default 1)
  --out DIR             results directory (default bench/results)
  --quick               1 sample, 2 s windows, 1 s warm-up, 3 s idle, scale 2,8,32 at 64 B, FDB 1M: a smoke run
                        of every figure in a few minutes (explicit options still win)
`;

function list(v: string | undefined, def: string[]): string[] {
  return v === undefined ? def : v.split(',').map((s) => s.trim()).filter(Boolean);
}

function num(v: string | undefined, name: string, def: number, min = 0): number {
  if (v === undefined) return def;
  const n = Number(v);
  if (!Number.isFinite(n) || n < min) throw new Error(`${name} must be a number ≥ ${min}`);
  return n;
}

export function parseBenchArgs(argv: string[]): BenchOptions | 'help' {
  const { values: v } = parseArgs({
    args: argv,
    options: {
      sizes: { type: 'string' },
      duration: { type: 'string' },
      warmup: { type: 'string' },
      samples: { type: 'string' },
      duts: { type: 'string' },
      generators: { type: 'string' },
      idle: { type: 'string' },
      'no-latency': { type: 'boolean' },
      'latency-rates': { type: 'string' },
      scale: { type: 'string' },
      'fdb-macs': { type: 'string' },
      'nic-sizes': { type: 'string' },
      'in-flight': { type: 'string' },
      'no-in-order': { type: 'boolean' },
      packed: { type: 'boolean' },
      'gen-cpu': { type: 'string' },
      'dut-cpu': { type: 'string' },
      out: { type: 'string' },
      quick: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (v.help) return 'help';
  const quick = v.quick ?? false;
  const sizes = list(v.sizes, ['64', '512', '1518', 'imix']).map((s) => s.toLowerCase());
  for (const s of sizes) parseSize(s);
  const duts = list(v.duts, ['vhost-switch', 'testpmd', 'ovs']) as DutName[];
  for (const d of duts) if (!['vhost-switch', 'testpmd', 'ovs'].includes(d)) throw new Error(`unknown DUT "${d}"`);
  const generators = list(v.generators, ['testpmd', 'gen']) as GenName[];
  for (const g of generators) if (!['testpmd', 'gen'].includes(g)) throw new Error(`unknown generator "${g}"`);
  const scale = list(v.scale, ['2', '8', '32']);
  const nicSizes = list(v['nic-sizes'], ['64', '1518']).map((x) => x.toLowerCase());
  if (!nicSizes.includes('none')) for (const x of nicSizes) frameBytes(x);
  const genCpu = num(v['gen-cpu'], '--gen-cpu', 0);
  const dutCpu = num(v['dut-cpu'], '--dut-cpu', 1);
  if (genCpu === dutCpu) throw new Error('--gen-cpu and --dut-cpu must differ');
  return {
    sizes,
    durationS: num(v.duration, '--duration', quick ? 2 : 10, 0.5),
    warmupS: num(v.warmup, '--warmup', quick ? 1 : 2),
    samples: Math.round(num(v.samples, '--samples', quick ? 1 : 5, 1)),
    duts,
    generators,
    idleS: num(v.idle, '--idle', quick ? 3 : 10),
    latency: !v['no-latency'],
    latencyRates: list(v['latency-rates'], ['0.5', '1', 'slowest']).map((x) => (x === 'slowest' ? 'slowest' : num(x, '--latency-rates', 1, 0.001))),
    scalePorts: scale.includes('none') ? [] : scale.map((s) => Math.round(num(s, '--scale', 2, 2))),
    fdbMacs: Math.round(num(v['fdb-macs'], '--fdb-macs', 1_000_000)),
    nicSizes: nicSizes.includes('none') ? [] : nicSizes,
    genCpu,
    dutCpu,
    outDir: path.resolve(v.out ?? path.join(repoRoot, 'bench', 'results')),
    quick,
    inFlight: Math.round(num(v['in-flight'], '--in-flight', 1, 1)),
    inOrder: !v['no-in-order'],
    packed: !!v.packed,
  };
}

const log = (s: string) => void process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${s}\n`);
const f2 = (x: number | undefined) => (x === undefined ? 'n/a' : x.toFixed(2));

/** Logs of the DUTs this harness starts (testpmd's go to harness/env.ts's log directory). */
const logsDir = path.join(repoRoot, '.cache', 'logs');

function makeDut(name: DutName, o: BenchOptions, ports = 2): Dut {
  fs.mkdirSync(logsDir, { recursive: true });
  if (name === 'vhost-switch') return new VhostSwitchDut({ cpu: o.dutCpu, ports, logDir: logsDir });
  if (name === 'testpmd') return new TestpmdDut({ cpu: o.dutCpu });
  return new OvsDut({ cpu: o.dutCpu, logDir: logsDir });
}

/** One throughput window: the generator loops frames through the DUT; rates from the generator's receive counters. */
async function throughput(dut: Dut, genName: GenName, size: string, o: BenchOptions, c2cNs?: number): Promise<ThroughputSample> {
  const gen = makeGen(genName, { cpu: o.genCpu, inFlight: o.inFlight, inOrder: o.inOrder, packed: o.packed });
  try {
    await gen.start([dut.sockets[0]!, dut.sockets[1]!], size);
    await sleep(o.warmupS * 1000);
    await dut.windowStart();
    const a = await gen.counters();
    await sleep(o.durationS * 1000);
    const b = await gen.counters();
    const w = await dut.windowEnd();
    const dt = Number(b.tNs - a.tNs) / 1e9;
    const sample = { mpps: (b.rxPackets - a.rxPackets) / dt / 1e6, gbps: ((b.rxBytes - a.rxBytes) * 8) / dt / 1e9, ...w, c2cNs };
    if (sample.mpps === 0) throw new Error('no frames came back: the io loop died (frames dropped or never forwarded)');
    return sample;
  } finally {
    await gen.stop();
  }
}

/** Latency at a fixed rate: our generator sends on port 0 and receives on port 1 (which announced its MAC first). */
async function latency(dut: Dut, size: string, ratePps: number, o: BenchOptions): Promise<LatencySample> {
  const s = await GenSession.attach([dut.sockets[0]!, dut.sockets[1]!], { timeoutMs: 10_000, packed: o.packed });
  try {
    const run = { role: 'source' as const, sizes: parseSize(size), ratePps, cpu: o.genCpu };
    s.start(run);
    await sleep(o.warmupS * 1000);
    // A fresh generator for the window: its latency histogram starts empty. Frames still in flight are dropped.
    s.stop();
    await sleep(50);
    s.drain();
    s.start(run, { announce: false });
    const a = s.snapshot();
    await sleep(o.durationS * 1000);
    const b = s.stop()!;
    const lat = latencyOf(b, s.roles);
    const sent = rateBetween(a, b, [0]).txMpps;
    const got = rateBetween(a, b, [1]).rxMpps;
    if (!lat) throw new Error('no stamped frames received');
    return { ratePps, rxMpps: got, loss: sent > 0 ? Math.max(0, 1 - got / sent) : 1, p50Us: lat.p50Us, p99Us: lat.p99Us, p999Us: lat.p999Us };
  } finally {
    s.close();
  }
}

/** DUT CPU use with two of our virtio ports attached but no traffic. */
async function idleCpu(dut: Dut, o: BenchOptions): Promise<number> {
  const s = await GenSession.attach([dut.sockets[0]!, dut.sockets[1]!], { timeoutMs: 10_000, packed: o.packed });
  try {
    await sleep(1000); // let the DUT notice there is nothing to do (vhost-switch parks its thread after 200 µs)
    return await cpuShare(dut.pid, o.idleS);
  } finally {
    s.close();
  }
}

function ensureHugepages(o: BenchOptions): void {
  const needDpdk = o.duts.some((d) => d !== 'vhost-switch') || o.generators.includes('testpmd');
  if (!needDpdk) return;
  const need = 512; // a 256 MiB generator testpmd and a 512 MiB OVS (or 256 MiB testpmd DUT), in 2 MiB pages
  let st = hugepageStatus();
  if (st.mounted && st.free >= need) return;
  try {
    run('bash', [path.join(repoRoot, 'scripts', 'setup-host.sh')], { timeoutMs: 60_000 });
  } catch (e) {
    log(`scripts/setup-host.sh: ${(e as Error).message}`);
  }
  st = hugepageStatus();
  if (!st.mounted || st.free < need) {
    throw new Error(`DPDK needs ${need} free 2 MiB hugepages, ${st.free} are free (hugetlbfs ${st.mounted ? 'mounted' : 'not mounted'}); run scripts/setup-host.sh as root`);
  }
}

export async function runBench(o: BenchOptions): Promise<BenchResults> {
  const t0 = Date.now();
  if (!pinSelf(String(o.genCpu))) log(`could not pin the harness to CPU ${o.genCpu} (taskset); continuing unpinned`);
  const ovs = findOvsDpdk();
  const res: BenchResults = {
    version: 1,
    machine: machine(ovs.binary),
    options: o,
    versions: {},
    throughput: [],
    latency: [],
    idle: [],
    scale: [],
    errors: [],
    c2c: [],
    elapsedS: 0,
  };
  if (os.cpus().length < 2) res.errors.push({ what: 'machine', message: 'fewer than 2 CPUs: generator and DUT share one' });
  ensureHugepages(o);
  const fail = (what: string, e: unknown) => {
    const message = (e as Error).message?.split('\n')[0] ?? String(e);
    log(`FAILED ${what}: ${message}`);
    res.errors.push({ what, message });
  };
  const tp = (dut: DutName, gen: GenName, size: string) => {
    let r = res.throughput.find((x) => x.dut === dut && x.gen === gen && x.size === size);
    if (!r) res.throughput.push((r = { dut, gen, size, samples: [] }));
    return r;
  };
  const lt = (dut: DutName, size: string, ratePps: number) => {
    let r = res.latency.find((x) => x.dut === dut && x.size === size && x.ratePps === ratePps);
    if (!r) res.latency.push((r = { dut, size, ratePps, samples: [] }));
    return r;
  };
  const idle = (dut: DutName) => {
    let r = res.idle.find((x) => x.dut === dut);
    if (!r) res.idle.push((r = { dut, samples: [] }));
    return r;
  };

  for (let s = 0; s < o.samples; s++) {
    // Rotate the order every sample so no DUT always runs first (or right after the busiest one).
    const order = o.duts.map((_, i) => o.duts[(i + s) % o.duts.length]!);
    for (const name of order) {
      let dut: Dut;
      // With both CPUs free (no DUT, no generator): what a cache line costs between them right now.
      const c2cNs = c2cRoundTripNs(o.genCpu, o.dutCpu);
      if (c2cNs !== undefined) {
        res.c2c.push({ at: new Date().toISOString(), sample: s + 1, before: name, ns: c2cNs });
        log(`sample ${s + 1} core-to-core round trip CPU ${o.genCpu} <-> ${o.dutCpu}: ${c2cNs} ns`);
      }
      try {
        dut = makeDut(name, o);
        await dut.start();
        res.versions[name] ??= dut.version();
      } catch (e) {
        fail(`${name} start (sample ${s + 1})`, e);
        continue;
      }
      try {
        if (o.idleS > 0) {
          try {
            const share = await idleCpu(dut, o);
            idle(name).samples.push(share);
            log(`sample ${s + 1} ${name} idle CPU ${(share * 100).toFixed(1)}%`);
          } catch (e) {
            fail(`${name} idle`, e);
          }
        }
        for (const g of o.generators) {
          for (const size of o.sizes) {
            try {
              const r = await throughput(dut, g, size, o, c2cNs);
              tp(name, g, size).samples.push(r);
              log(`sample ${s + 1} ${name} gen=${g} ${size}: ${r.mpps.toFixed(3)} Mpps ${r.gbps.toFixed(2)} Gbit/s cycles/pkt ${f2(r.cyclesPerPacket)} busy ${r.busy === undefined ? 'n/a' : `${(r.busy * 100).toFixed(0)}%`}${r.framesPerPass === undefined ? '' : ` frames/pass ${r.framesPerPass.toFixed(1)}`}${r.c2cNs === undefined ? '' : ` c2c ${r.c2cNs} ns`}`);
            } catch (e) {
              fail(`${name} gen=${g} ${size} (sample ${s + 1})`, e);
            }
          }
        }
      } finally {
        await dut.stop().catch((e: unknown) => fail(`${name} stop`, e));
      }
    }
  }

  // Latency at equal load: every DUT at the same offered rates, after all throughput samples so that "slowest" (half
  // the slowest DUT's median best at that size) is known. Rate, loss and received rate are kept beside p50/p99/p99.9.
  if (o.latency) {
    const rates = (size: string): number[] => {
      const best = o.duts.map((d) => {
        const mpps = o.generators.map((g) => spread(tp(d, g, size).samples.map((x) => x.mpps))?.median ?? 0);
        return Math.max(...mpps);
      });
      const slowest = Math.min(...best.filter((x) => x > 0));
      const out = o.latencyRates.map((r) => (r === 'slowest' ? (Number.isFinite(slowest) ? slowest / 2 : undefined) : r));
      return [...new Set(out.filter((x): x is number => x !== undefined).map((x) => Math.max(1000, Math.round(x * 1e6))))].sort((a, b) => a - b);
    };
    for (let s = 0; s < o.samples; s++) {
      const order = o.duts.map((_, i) => o.duts[(i + s) % o.duts.length]!);
      for (const name of order) {
        let dut: Dut;
        try {
          dut = makeDut(name, o);
          await dut.start();
        } catch (e) {
          fail(`${name} start for latency (sample ${s + 1})`, e);
          continue;
        }
        try {
          for (const size of o.sizes) {
            for (const rate of rates(size)) {
              try {
                const r = await latency(dut, size, rate, o);
                lt(name, size, rate).samples.push(r);
                log(`sample ${s + 1} ${name} latency ${size} at ${(rate / 1e6).toFixed(3)} Mpps: p50 ${r.p50Us.toFixed(1)} us p99 ${r.p99Us.toFixed(1)} us p99.9 ${r.p999Us.toFixed(1)} us (rx ${r.rxMpps.toFixed(3)} Mpps, loss ${(r.loss * 100).toFixed(2)}%)`);
              } catch (e) {
                fail(`${name} latency ${size} at ${rate} pps (sample ${s + 1})`, e);
              }
            }
          }
        } finally {
          await dut.stop().catch((e: unknown) => fail(`${name} stop`, e));
        }
      }
    }
  }

  // Scale: vhost-switch with N ports attached (our idle virtio ports on all but two), traffic on two, 64 B.
  if (o.duts.includes('vhost-switch')) {
    for (let s = 0; s < o.samples; s++) {
      for (const n of o.scalePorts) {
        const dut = makeDut('vhost-switch', o, n);
        let idlePorts: GenSession | undefined;
        try {
          await dut.start();
          if (n > 2) idlePorts = await GenSession.attach(dut.sockets.slice(2), { timeoutMs: 20_000 });
          for (const g of o.generators) {
            try {
              const r = await throughput(dut, g, '64', o);
              let e = res.scale.find((x) => x.ports === n && x.gen === g);
              if (!e) res.scale.push((e = { ports: n, gen: g, samples: [] }));
              e.samples.push(r);
              log(`sample ${s + 1} scale ${n} ports gen=${g} 64: ${r.mpps.toFixed(3)} Mpps cycles/pkt ${f2(r.cyclesPerPacket)}`);
            } catch (e) {
              fail(`scale ${n} ports gen=${g} (sample ${s + 1})`, e);
            }
          }
        } catch (e) {
          fail(`scale ${n} ports (sample ${s + 1})`, e);
        } finally {
          idlePorts?.close();
          await dut.stop().catch(() => undefined);
        }
      }
    }
  }

  if (o.fdbMacs > 0 && o.duts.includes('vhost-switch')) {
    try {
      res.fdb = await runFdbBench({ macs: o.fdbMacs, durationS: o.durationS, warmupS: o.warmupS, genCpu: o.genCpu, dutCpu: o.dutCpu, log });
    } catch (e) {
      fail('fdb', e);
    }
  }

  if (o.nicSizes.length > 0 && o.duts.includes('vhost-switch')) {
    try {
      fs.mkdirSync(logsDir, { recursive: true });
      res.nic = await runNicBench({ samples: o.samples, durationS: o.durationS, warmupS: o.warmupS, sizes: o.nicSizes, genCpu: o.genCpu, dutCpu: o.dutCpu, logDir: logsDir, log });
    } catch (e) {
      fail('nic', e);
    }
  }

  for (const r of res.throughput) {
    r.mpps = spread(r.samples.map((x) => x.mpps));
    r.gbps = spread(r.samples.map((x) => x.gbps));
    r.cyclesPerPacket = spread(r.samples.map((x) => x.cyclesPerPacket));
    r.busy = spread(r.samples.map((x) => x.busy));
    r.framesPerPass = spread(r.samples.map((x) => x.framesPerPass));
  }
  for (const r of res.latency) {
    r.rxMpps = spread(r.samples.map((x) => x.rxMpps));
    r.p50Us = spread(r.samples.map((x) => x.p50Us));
    r.p99Us = spread(r.samples.map((x) => x.p99Us));
    r.p999Us = spread(r.samples.map((x) => x.p999Us));
    r.loss = spread(r.samples.map((x) => x.loss));
  }
  for (const r of res.idle) r.cpu = spread(r.samples);
  for (const r of res.scale) {
    r.mpps = spread(r.samples.map((x) => x.mpps));
    r.cyclesPerPacket = spread(r.samples.map((x) => x.cyclesPerPacket));
  }
  res.elapsedS = Math.round((Date.now() - t0) / 1000);
  res.loadAvgEnd = os.loadavg().map((x) => Math.round(x * 100) / 100);
  if (!ovs.binary && o.duts.includes('ovs')) res.errors.push({ what: 'ovs', message: ovs.missing! });
  return res;
}

export async function main(argv: string[]): Promise<number> {
  let o: BenchOptions | 'help';
  try {
    o = parseBenchArgs(argv);
  } catch (e) {
    process.stderr.write(`bench: ${(e as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (o === 'help') {
    process.stdout.write(USAGE);
    return 0;
  }
  log(`sizes ${o.sizes.join(',')} · DUTs ${o.duts.join(',')} · generators ${o.generators.join(',')} · ${o.samples} sample(s) × ${o.durationS} s (+${o.warmupS} s warm-up) · idle ${o.idleS} s · scale ${o.scalePorts.join(',') || 'none'} · FDB ${o.fdbMacs} · NIC ${o.nicSizes.join(',') || 'none'}`);
  try {
    const res = await runBench(o);
    const files = writeReports(res, o.outDir);
    log(`done in ${res.elapsedS} s${res.errors.length ? ` with ${res.errors.length} error(s)` : ''}: ${files.join(', ')}`);
    return res.errors.length ? 1 : 0;
  } finally {
    await cleanupAll();
  }
}

const isMain = process.argv[1] && path.resolve(process.argv[1]) === path.resolve(new URL(import.meta.url).pathname);
if (isMain) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e: unknown) => {
      process.stderr.write(`bench: ${(e as Error).stack ?? e}\n`);
      void cleanupAll().finally(() => process.exit(1));
    },
  );
}
