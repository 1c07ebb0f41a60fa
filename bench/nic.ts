// NIC ports (issue 6): frames between a guest's port and a veth bound as a `nic` port, on each backend, beside
// the kernel's own forwarding between veths with the same sender.
//
//   wire → guest   dpdk-testpmd (net_af_packet, txonly, in a namespace, generator CPU) → nbB ═veth═ nbA →
//                  vhost-switch nic port (AF_XDP or AF_PACKET, DUT CPU) → our virtio port (sink, generator CPU).
//                  Rate: what the sink received.
//   guest → wire   our virtio port (source, as fast as its ring takes frames) → vhost-switch → nic port nbA ═veth═
//                  nbB. Rate: nbB's rx counter (what the switch put on the veth).
//   kernel         the same testpmd sender → nbB ═veth═ nbA → Linux bridge → kbA ═veth═ kbB. Rate: kbB's rx counter.
//                  The kernel's own veth-to-veth forwarding: no switch process at all.
//
// The same CPU budget on both: the sender has the generator CPU, the forwarding the DUT CPU. The switch's poll thread
// runs on the DUT CPU; for the kernel figure, RPS on nbA hands every frame to the DUT CPU's backlog, so the bridge
// runs there (the veth's own receive step stays on the sender's CPU in both, as it does for the nic port). Frames carry link-local addresses only
// (testpmd --tx-ip) and never leave the veths and the namespace made here.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { DEFAULT_SRC_MAC, GenSession, parseSize, rateBetween } from '../src/gen/bench-session.js';
import { VhostSwitchDut } from './duts/vhost-switch.js';
import { run, sleep, spread, stopChild, which, type Spread } from './lib/util.js';
import { deathSigPrefix, trackChild } from '../harness/env.js';

export type NicPath = 'kernel' | 'af_xdp' | 'af_packet';
export type NicDirection = 'wire-to-guest' | 'guest-to-wire' | 'wire-to-wire';

export interface NicFigure {
  path: NicPath;
  direction: NicDirection;
  size: string;
  samples: Array<{ mpps: number; gbps: number; cyclesPerPacket?: number }>;
  mpps?: Spread;
  gbps?: Spread;
  cyclesPerPacket?: Spread;
}

export interface NicResult {
  sender: string;
  figures: NicFigure[];
}

export interface NicBenchOptions {
  samples: number;
  durationS: number;
  warmupS: number;
  sizes: string[];
  genCpu: number;
  dutCpu: number;
  logDir: string;
  log: (s: string) => void;
}

const tag = String(process.pid % 10000);
const NS = `vsb-nic-${tag}`;
// Interface names: nb = the nic port's veth, kb = the kernel anchor's second veth, br = its bridge.
const NB_A = `vsbnA${tag}`, NB_B = `vsbnB${tag}`, KB_A = `vsbkA${tag}`, KB_B = `vsbkB${tag}`, BR = `vsbbr${tag}`;

const ip = (...a: string[]) => run('ip', a);
const debug = (s: string) => void (process.env.VSB_DEBUG && process.stderr.write(`[nic ${new Date().toISOString().slice(11, 23)}] ${s}\n`));

/**
 * Sizes here are Ethernet frame sizes as on a wire, FCS included (RFC 2544: 64 to 1518), since a veth has an MTU:
 * the frame the host handles is 4 bytes shorter (1514 at MTU 1500). Gbit/s counts those bytes.
 */
export function frameBytes(size: string): number {
  const n = parseSize(size);
  if (n.length !== 1 || n[0]! < 64 || n[0]! > 1518) throw new Error(`NIC figure size "${size}": one frame size, 64-1518`);
  return n[0]! - 4;
}

interface IfCounters {
  packets: number;
  bytes: number;
  tNs: bigint;
}

/** rx counters of an interface in the bench namespace. */
function rxOf(dev: string): IfCounters {
  const j = JSON.parse(ip('-n', NS, '-s', '-j', 'link', 'show', 'dev', dev)) as Array<{ stats64: { rx: { packets: number; bytes: number } } }>;
  return { packets: j[0]!.stats64.rx.packets, bytes: j[0]!.stats64.rx.bytes, tNs: process.hrtime.bigint() };
}

function rateOf(a: IfCounters, b: IfCounters): { mpps: number; gbps: number } {
  const dt = Number(b.tNs - a.tNs) / 1e9;
  return { mpps: (b.packets - a.packets) / dt / 1e6, gbps: ((b.bytes - a.bytes) * 8) / dt / 1e9 };
}

function setUp(): void {
  tearDown();
  ip('netns', 'add', NS);
  for (const [a, b] of [[NB_A, NB_B], [KB_A, KB_B]] as const) {
    ip('link', 'add', a, 'type', 'veth', 'peer', 'name', b);
    ip('link', 'set', b, 'netns', NS);
    ip('-n', NS, 'link', 'set', b, 'up');
    ip('link', 'set', a, 'up');
  }
}

function tearDown(): void {
  for (const dev of [BR, NB_A, KB_A]) {
    try {
      ip('link', 'del', dev);
    } catch {
      /* not there */
    }
  }
  try {
    ip('netns', 'del', NS);
  } catch {
    /* not there */
  }
}

/** testpmd sending `size`-byte frames to dstMac out of nbB, as fast as AF_PACKET takes them, on the generator CPU. */
async function startSender(size: string, dstMac: string, o: NicBenchOptions): Promise<ChildProcess> {
  const len = frameBytes(size);
  const argv = [...deathSigPrefix(), 'ip', 'netns', 'exec', NS, 'taskset', '-c', String(o.genCpu), 'stdbuf', '-oL', 'dpdk-testpmd',
    `--lcores=0@${o.genCpu},1@${o.genCpu}`, '--no-pci', '--no-huge', '-m', '256', `--file-prefix=vsbnic${tag}`, '--no-telemetry',
    `--vdev=net_af_packet0,iface=${NB_B},qdisc_bypass=1`, '--',
    '--forward-mode=txonly', `--txpkts=${len}`, '--tx-ip=169.254.70.1,169.254.70.2', `--eth-peer=0,${dstMac}`,
    '--total-num-mbufs=8192', '--auto-start', '--stats-period=0'];
  const logFile = path.join(o.logDir, `nic-sender-${tag}.log`);
  const fd = fs.openSync(logFile, 'w');
  // stdin stays an open pipe: testpmd without -i runs until a line arrives on it (EOF would stop it at once).
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', fd, fd] });
  fs.closeSync(fd);
  trackChild(child, 'nic bench sender');
  // Started once it prints its exit prompt (its port is up and the forwarding lcore runs; stdbuf -oL: the
  // prompt is not stuck in a pipe buffer).
  for (let i = 0; i < 100; i++) {
    await sleep(100);
    if (child.exitCode !== null) throw new Error(`the testpmd sender exited ${child.exitCode} (log: ${logFile})`);
    if (fs.readFileSync(logFile, 'utf8').includes('Press enter to exit')) return child;
  }
  await stopSender(child);
  throw new Error(`the testpmd sender did not start in 10 s (log: ${logFile})`);
}

/**
 * SIGKILL: a testpmd without hugepages or devices leaves nothing to tear down, and its own shutdown was seen to
 * take minutes on a loaded machine (VSB_DEBUG=1 shows the steps and their times).
 */
async function stopSender(child: ChildProcess): Promise<void> {
  debug('stopping the sender');
  await stopChild(child, 0);
  debug('sender stopped');
}

/** RPS on iface's receive queue: the CPUs (a list) that process what it receives, or none ('0'). */
function setRps(iface: string, mask: string): void {
  fs.writeFileSync(`/sys/class/net/${iface}/queues/rx-0/rps_cpus`, mask);
}

async function kernelWindow(size: string, o: NicBenchOptions): Promise<{ mpps: number; gbps: number }> {
  ip('link', 'add', BR, 'type', 'bridge', 'stp_state', '0');
  setRps(NB_A, (1 << o.dutCpu).toString(16));
  try {
    ip('link', 'set', NB_A, 'master', BR);
    ip('link', 'set', KB_A, 'master', BR);
    ip('link', 'set', BR, 'up');
    const sender = await startSender(size, '02:00:00:00:00:02', o);
    try {
      await sleep(o.warmupS * 1000);
      const a = rxOf(KB_B);
      await sleep(o.durationS * 1000);
      return rateOf(a, rxOf(KB_B));
    } finally {
      await stopSender(sender);
    }
  } finally {
    setRps(NB_A, '0');
    ip('link', 'del', BR);
  }
}

async function switchWindows(backend: 'af_xdp' | 'af_packet', sizes: string[], o: NicBenchOptions,
  record: (dir: NicDirection, size: string, r: { mpps: number; gbps: number; cyclesPerPacket?: number }) => void): Promise<void> {
  const dut = new VhostSwitchDut({ cpu: o.dutCpu, ports: 1, logDir: o.logDir });
  let gen: GenSession | undefined;
  try {
    await dut.start();
    const port = await dut.addPort({ name: 'uplink', type: 'nic', iface: NB_A, backend });
    if (port.activeBackend !== backend) throw new Error(`the nic port runs ${String(port.activeBackend)}, not ${backend}`);
    gen = await GenSession.attach([dut.sockets[0]!], { timeoutMs: 10_000 });
    for (const size of sizes) {
      // wire → guest: the sink announces its MAC (DEFAULT_SRC_MAC for port 0) so the switch learns it.
      gen.start({ role: 'sink', sizes: [frameBytes(size)], cpu: o.genCpu, idleSleepMicros: 20 }, { announce: true });
      const sender = await startSender(size, DEFAULT_SRC_MAC, o);
      try {
        await sleep(o.warmupS * 1000);
        await dut.windowStart();
        const a = gen.snapshot();
        await sleep(o.durationS * 1000);
        const b = gen.snapshot();
        const w = await dut.windowEnd();
        const r = rateBetween(a, b);
        record('wire-to-guest', size, { mpps: r.rxMpps, gbps: r.rxGbps, cyclesPerPacket: w.cyclesPerPacket });
      } finally {
        await stopSender(sender);
        gen.stop();
        await sleep(100);
        debug(`drained ${gen.drain()}`);
      }
      // guest → wire: unknown destination, flooded to the only other port.
      gen.start({ role: 'source', sizes: [frameBytes(size)], ratePps: 0, cpu: o.genCpu });
      try {
        debug('source started');
        await sleep(o.warmupS * 1000);
        await dut.windowStart();
        debug('window');
        const a = rxOf(NB_B);
        await sleep(o.durationS * 1000);
        const b = rxOf(NB_B);
        const w = await dut.windowEnd();
        record('guest-to-wire', size, { ...rateOf(a, b), cyclesPerPacket: w.cyclesPerPacket });
      } finally {
        gen.stop();
      }
    }
  } finally {
    gen?.close();
    await dut.stop();
  }
}

export function nicBenchMissing(): string | undefined {
  if (!which('dpdk-testpmd')) return 'dpdk-testpmd is missing (the sender)';
  if (!which('ip')) return 'ip (iproute2) is missing';
  return undefined;
}

export async function runNicBench(o: NicBenchOptions): Promise<NicResult> {
  const missing = nicBenchMissing();
  if (missing) throw new Error(missing);
  const res: NicResult = { sender: 'dpdk-testpmd txonly on net_af_packet (qdisc_bypass), generator CPU', figures: [] };
  const fig = (p: NicPath, direction: NicDirection, size: string) => {
    let f = res.figures.find((x) => x.path === p && x.direction === direction && x.size === size);
    if (!f) res.figures.push((f = { path: p, direction, size, samples: [] }));
    return f;
  };
  const paths: NicPath[] = ['kernel', 'af_xdp', 'af_packet'];
  setUp();
  try {
    for (let s = 0; s < o.samples; s++) {
      // Rotate so no path always runs first.
      for (const p of paths.map((_, i) => paths[(i + s) % paths.length]!)) {
        try {
          if (p === 'kernel') {
            for (const size of o.sizes) {
              const r = await kernelWindow(size, o);
              fig('kernel', 'wire-to-wire', size).samples.push(r);
              o.log(`sample ${s + 1} nic kernel bridge veth→veth ${size}: ${r.mpps.toFixed(3)} Mpps ${r.gbps.toFixed(2)} Gbit/s`);
            }
          } else {
            await switchWindows(p, o.sizes, o, (dir, size, r) => {
              fig(p, dir, size).samples.push(r);
              o.log(`sample ${s + 1} nic ${p} ${dir} ${size}: ${r.mpps.toFixed(3)} Mpps ${r.gbps.toFixed(2)} Gbit/s cycles/pkt ${r.cyclesPerPacket?.toFixed(0) ?? 'n/a'}`);
            });
          }
        } catch (e) {
          o.log(`FAILED nic ${p} (sample ${s + 1}): ${(e as Error).message}`);
          throw e;
        }
      }
    }
  } finally {
    tearDown();
  }
  for (const f of res.figures) {
    f.mpps = spread(f.samples.map((x) => x.mpps));
    f.gbps = spread(f.samples.map((x) => x.gbps));
    f.cyclesPerPacket = spread(f.samples.map((x) => x.cyclesPerPacket));
  }
  return res;
}
