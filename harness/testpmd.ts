// DPDK testpmd as a test peer: interactive (-i) testpmd driven over stdin,
// with virtio-user ports (a DPDK "guest" connecting to a vhost-user switch) or
// vhost ports (a DPDK vhost-user backend, used as a reference switch).
//
//   const a = await startTestpmd({ name: 'a', cpu: 0, ports: [{ type: 'vhost', iface: s0, client: false }] });
//   await a.cmd('set fwd io'); await a.start({ txFirst: true }); ...; const fwd = await a.stop();
//   const stats = await a.portStats(); await a.quit();
//
// testpmd busy-polls its forwarding lcore at 100%: every instance is tracked
// by env.ts and killed when the test file ends, and the kernel SIGKILLs it if
// the test process dies (setpriv --pdeathsig).
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import {
  deathSigPrefix,
  findTool,
  hugepageStatus,
  logFilePath,
  reapStaleRuns,
  recordLeftovers,
  requireHugepages,
  requireTool,
  trackChild,
  uniqueId,
} from './env.js';

export interface VirtioUserPort {
  type: 'virtio_user';
  /** vhost-user socket of the backend (the switch). */
  path: string;
  queues?: number;
  mac?: string;
  /** true: testpmd listens on `path` (server=1) and the backend connects. */
  server?: boolean;
  /** Ring size (queue_size=), default DPDK's 256. */
  queueSize?: number;
  /** Packed virtqueues (packed_vq=1) instead of split ones. */
  packed?: boolean;
  /** false: in_order=0, so VIRTIO_F_IN_ORDER is not asked for (DPDK's default asks for it). */
  inOrder?: boolean;
}

export interface VhostPort {
  type: 'vhost';
  /** Socket path. */
  iface: string;
  queues?: number;
  /** false (default): testpmd listens (client=0); true: testpmd connects (client=1). */
  client?: boolean;
}

export type TestpmdPort = VirtioUserPort | VhostPort;

export interface TestpmdOptions {
  name: string;
  /**
   * Host CPU to pin to. testpmd needs a main lcore plus at least one forwarding
   * lcore; both are mapped onto this one CPU: --lcores=0@CPU,1@CPU. (A plain
   * `-l 0` fails with "No cores defined for forwarding".) The main lcore only
   * reads the command line, so the forwarding lcore has the CPU.
   */
  cpu?: number;
  /** Raw EAL --lcores value, overrides `cpu`. */
  lcores?: string;
  ports: TestpmdPort[];
  /** Hugepage memory preallocated (-m), MiB. Default 256. */
  memMiB?: number;
  /** --total-num-mbufs, default 8192 (small: short functional runs). */
  mbufs?: number;
  /** Forwarding mode passed as --forward-mode, default io. */
  fwd?: string;
  /** Extra EAL arguments (before --). */
  extraEal?: string[];
  /** Extra testpmd arguments (after --). */
  extraApp?: string[];
  /** Startup timeout (ports configured, prompt shown). Default 60 s. */
  startTimeoutMs?: number;
}

export interface NicStats {
  port: number;
  rxPackets: number;
  rxMissed: number;
  rxBytes: number;
  rxErrors: number;
  rxNombuf: number;
  txPackets: number;
  txErrors: number;
  txBytes: number;
}

export interface FwdPortStats {
  port: number;
  rxPackets: number;
  rxDropped: number;
  rxTotal: number;
  txPackets: number;
  txDropped: number;
  txTotal: number;
}

export interface FwdStats {
  ports: FwdPortStats[];
  /** The "Accumulated forward statistics for all ports" block. */
  total?: Omit<FwdPortStats, 'port'>;
}

const PROMPT = 'testpmd> ';

/** EAL device argument for one port (index i among ports of its type). */
export function vdevArg(p: TestpmdPort, i: number): string {
  for (const s of [p.type === 'vhost' ? p.iface : p.path]) {
    if (s.includes(',')) throw new Error(`socket path must not contain ',': ${s}`);
  }
  if (p.type === 'vhost') {
    return `net_vhost${i},iface=${p.iface},queues=${p.queues ?? 1},client=${p.client ? 1 : 0}`;
  }
  let a = `net_virtio_user${i},path=${p.path},queues=${p.queues ?? 1}`;
  if (p.mac) a += `,mac=${p.mac}`;
  if (p.server) a += ',server=1';
  if (p.queueSize) a += `,queue_size=${p.queueSize}`;
  if (p.packed) a += ',packed_vq=1';
  if (p.inOrder === false) a += ',in_order=0';
  return a;
}

/** The full testpmd argument vector (without the binary). */
export function testpmdCommandLine(opts: TestpmdOptions & { filePrefix: string }): string[] {
  const cpu = opts.cpu ?? 0;
  const counters = { vhost: 0, virtio_user: 0 };
  const vdevs = opts.ports.map((p) => `--vdev=${vdevArg(p, counters[p.type]++)}`);
  const maxQ = Math.max(1, ...opts.ports.map((p) => p.queues ?? 1));
  return [
    `--lcores=${opts.lcores ?? `0@${cpu},1@${cpu}`}`,
    '--no-pci',
    '--single-file-segments',
    `--file-prefix=${opts.filePrefix}`,
    '-m', String(opts.memMiB ?? 256),
    '--no-telemetry',
    ...vdevs,
    ...(opts.extraEal ?? []),
    '--',
    '-i',
    `--total-num-mbufs=${opts.mbufs ?? 8192}`,
    `--forward-mode=${opts.fwd ?? 'io'}`,
    `--rxq=${maxQ}`,
    `--txq=${maxQ}`,
    ...(opts.extraApp ?? []),
  ];
}

const num = (s: string | undefined) => (s === undefined ? 0 : Number(s));

/** Parses the output of `show port stats all` / `show port stats N`. */
export function parsePortStats(text: string): NicStats[] {
  const out: NicStats[] = [];
  const blocks = text.split(/#+ NIC statistics for port (\d+)\s+#+/);
  for (let i = 1; i < blocks.length; i += 2) {
    const b = blocks[i + 1]!;
    const f = (k: string) => num(new RegExp(`${k}:\\s+(\\d+)`).exec(b)?.[1]);
    out.push({
      port: Number(blocks[i]),
      rxPackets: f('RX-packets'),
      rxMissed: f('RX-missed'),
      rxBytes: f('RX-bytes'),
      rxErrors: f('RX-errors'),
      rxNombuf: f('RX-nombuf'),
      txPackets: f('TX-packets'),
      txErrors: f('TX-errors'),
      txBytes: f('TX-bytes'),
    });
  }
  return out;
}

/** Parses the forward statistics printed by `stop` (and `show fwd stats all`). */
export function parseFwdStats(text: string): FwdStats {
  const fields = (b: string) => {
    const f = (k: string) => num(new RegExp(`${k}:\\s+(\\d+)`).exec(b)?.[1]);
    return {
      rxPackets: f('RX-packets'),
      rxDropped: f('RX-dropped'),
      rxTotal: f('RX-total'),
      txPackets: f('TX-packets'),
      txDropped: f('TX-dropped'),
      txTotal: f('TX-total'),
    };
  };
  const ports: FwdPortStats[] = [];
  const re = /-+ Forward statistics for port (\d+)\s+-+\n([\s\S]*?)\n\s*-{20,}/g;
  for (let m; (m = re.exec(text)); ) ports.push({ port: Number(m[1]), ...fields(m[2]!) });
  const acc = /\++ Accumulated forward statistics for all ports\s*\++\n([\s\S]*?)\n\s*\+{20,}/.exec(text);
  return { ports, total: acc ? fields(acc[1]!) : undefined };
}

export class Testpmd {
  readonly name: string;
  readonly binary: string;
  readonly args: string[];
  readonly filePrefix: string;
  readonly logFile: string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  private readonly child: ChildProcess;
  private text = '';
  // stdout alone: a stderr line written while the prompt was half out would split it in `text`.
  private stdoutText = '';
  private exitInfo: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  private readonly log: fs.WriteStream;
  private waiters = new Set<() => void>();
  private queue: Promise<unknown> = Promise.resolve();

  constructor(name: string, binary: string, args: string[], filePrefix: string) {
    this.name = name;
    this.binary = binary;
    this.args = args;
    this.filePrefix = filePrefix;
    this.logFile = logFilePath(`testpmd-${name}`);
    this.log = fs.createWriteStream(this.logFile);
    this.log.write(`# ${[binary, ...args].join(' ')}\n`);
    // stdbuf -oL: testpmd's printf output would otherwise be block-buffered on
    // a pipe and arrive after the prompt that follows it.
    const stdbuf = findTool('stdbuf');
    const argv = [...deathSigPrefix(), ...(stdbuf ? [stdbuf, '-oL', '-eL'] : []), binary, ...args];
    this.child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
    trackChild(this.child, `testpmd:${name}`, () => this.removeRuntimeFiles());
    const onData = (b: Buffer, fromStdout: boolean) => {
      this.log.write(b);
      const t = b.toString('latin1').replace(/\r/g, '');
      this.text += t;
      if (fromStdout) this.stdoutText += t;
      this.wake();
    };
    this.child.stdout!.on('data', (b: Buffer) => onData(b, true));
    this.child.stderr!.on('data', (b: Buffer) => onData(b, false));
    this.child.stdin!.on('error', () => {
      /* EPIPE after exit */
    });
    this.exited = new Promise((resolve) => {
      const done = (info: { code: number | null; signal: NodeJS.Signals | null }) => {
        if (this.exitInfo) return;
        this.exitInfo = info;
        this.log.end(`\n# testpmd exited code=${info.code} signal=${info.signal}\n`);
        this.removeRuntimeFiles();
        this.wake();
        resolve(info);
      };
      this.child.once('exit', (code, signal) => done({ code, signal }));
      this.child.once('error', (err) => {
        this.text += `\nspawn error: ${err}\n`;
        done({ code: -1, signal: null });
      });
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** All output so far (stdout and stderr, \r removed). */
  get output(): string {
    return this.text;
  }

  get hasExited(): boolean {
    return this.exitInfo !== undefined;
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }

  /** Resolves with the index of `needle` at or after `from`. */
  /** Resolves with the needle's index in the output (in stdout alone when stdoutOnly). */
  private waitText(needle: string, from: number, timeoutMs: number, what: string, stdoutOnly = false): Promise<number> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const i = (stdoutOnly ? this.stdoutText : this.text).indexOf(needle, from);
        if (i >= 0) return done(() => resolve(i));
        if (this.exitInfo) return done(() => reject(this.error(`exited (${JSON.stringify(this.exitInfo)}) while waiting for ${what}`)));
      };
      const timer = setTimeout(() => done(() => reject(this.error(`timed out after ${timeoutMs} ms waiting for ${what}`))), timeoutMs);
      const done = (f: () => void) => {
        clearTimeout(timer);
        this.waiters.delete(check);
        f();
      };
      this.waiters.add(check);
      check();
    });
  }

  private error(msg: string): Error {
    return new Error(`testpmd ${this.name}: ${msg}\n--- output tail ---\n${this.text.slice(-3000)}\n--- full log: ${this.logFile}`);
  }

  /** Waits for the first prompt: EAL up, ports configured (vhost sockets bound, virtio-user connected). */
  async ready(timeoutMs = 60_000): Promise<void> {
    await this.waitText(PROMPT, 0, timeoutMs, 'the testpmd> prompt', true);
  }

  /**
   * Types one command and returns what it printed up to the next prompt.
   * Asynchronous event lines ("Port 0: link state change event") may be mixed in.
   */
  cmd(line: string, timeoutMs = 30_000): Promise<string> {
    const p = this.queue.then(async () => {
      await this.ready(timeoutMs);
      const from = this.text.length;
      this.child.stdin!.write(`${line}\n`);
      // the command line library echoes the line; output starts after it
      const echoEnd = await this.waitText('\n', from, timeoutMs, `the echo of '${line}'`);
      const prompt = await this.waitText(PROMPT, echoEnd + 1, timeoutMs, `the prompt after '${line}'`);
      return this.text.slice(echoEnd + 1, prompt);
    });
    this.queue = p.catch(() => undefined);
    return p;
  }

  /** `start` or `start tx_first [bursts]`. */
  async start(opts: { txFirst?: boolean | number } = {}): Promise<string> {
    const tf = opts.txFirst;
    return this.cmd(tf === undefined || tf === false ? 'start' : tf === true ? 'start tx_first' : `start tx_first ${tf}`);
  }

  /** `stop`: stops forwarding and returns the forward statistics it prints. */
  async stop(): Promise<FwdStats> {
    return parseFwdStats(await this.cmd('stop'));
  }

  /** `show port stats all`, parsed. */
  async portStats(): Promise<NicStats[]> {
    return parsePortStats(await this.cmd('show port stats all'));
  }

  /** `clear port stats all`. */
  async clearStats(): Promise<void> {
    await this.cmd('clear port stats all');
  }

  /** Link status of each port from `show port summary all` (true = up). */
  async links(): Promise<boolean[]> {
    const out = await this.cmd('show port summary all');
    return out
      .split('\n')
      .filter((l) => /^\s*\d+\s+[0-9A-Fa-f:]{17}/.test(l))
      .map((l) => /\bup\b/i.test(l));
  }

  /** Types `quit` and waits for exit; SIGKILL after timeoutMs. */
  async quit(timeoutMs = 15_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (!this.exitInfo) {
      this.child.stdin!.write('quit\n');
      const t = setTimeout(() => this.kill('SIGKILL'), timeoutMs);
      await this.exited;
      clearTimeout(t);
    }
    return this.exited;
  }

  kill(signal: NodeJS.Signals = 'SIGTERM'): void {
    if (!this.exitInfo) this.child.kill(signal);
  }

  /** SIGTERM (testpmd exits cleanly on it), SIGKILL after graceMs. */
  async stopProcess(graceMs = 5000): Promise<void> {
    if (this.exitInfo) return;
    this.kill('SIGTERM');
    const t = setTimeout(() => this.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(t);
  }

  /** Hugepage files and the EAL runtime dir of this instance (left behind on SIGKILL). */
  private removeRuntimeFiles(): void {
    const mp = hugepageStatus().mountPoint ?? '/dev/hugepages';
    try {
      for (const f of fs.readdirSync(mp)) {
        if (f.startsWith(`${this.filePrefix}map_`)) fs.rmSync(path.join(mp, f), { force: true });
      }
    } catch {
      /* not mounted */
    }
    fs.rmSync(path.join('/var/run/dpdk', this.filePrefix), { recursive: true, force: true });
  }
}

/**
 * Starts testpmd and waits until its prompt appears (ports configured). For
 * virtio_user ports in client mode the vhost-user backend must already listen.
 */
export async function startTestpmd(opts: TestpmdOptions): Promise<Testpmd> {
  const binary = requireTool('dpdk-testpmd');
  reapStaleRuns(); // frees hugepages held by runs that were SIGKILLed
  const memMiB = opts.memMiB ?? 256;
  requireHugepages(Math.ceil(memMiB / 2));
  const filePrefix = `vs-${opts.name.replace(/[^\w]/g, '')}-${uniqueId()}`;
  const args = testpmdCommandLine({ ...opts, filePrefix });
  // if this process is SIGKILLed, the next run removes what testpmd left behind
  recordLeftovers(hugepageStatus().mountPoint ?? '/dev/hugepages', `${filePrefix}map_`);
  recordLeftovers('/var/run/dpdk', filePrefix);
  const t = new Testpmd(opts.name, binary, args, filePrefix);
  try {
    await t.ready(opts.startTimeoutMs ?? 60_000);
  } catch (e) {
    await t.stopProcess();
    throw e;
  }
  return t;
}
