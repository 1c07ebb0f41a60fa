// QEMU test guests: a TCG-only x86_64 VM booting the busybox initramfs built by
// test/guest/build-initramfs.sh, with vhost-user virtio-net NICs, driven over
// its serial console (ttyS0 on QEMU's stdio).
//
//   const g = await startGuest({ name: 'a', netdevs: [{ socket, mode: 'client', mac }], ip: '169.254.1.1/16' });
//   await g.waitReady();
//   const { output, exitCode } = await g.run('ping -c1 169.254.1.2', 10_000);
//   await g.stop();
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import {
  assertLinkLocal,
  deathSigPrefix,
  logFilePath,
  repoRoot,
  requireTool,
  trackChild,
  uniqueId,
} from '../../harness/env.js';

const execFileP = promisify(execFile);

export interface NetdevSpec {
  /** vhost-user socket path. */
  socket: string;
  /**
   * Who listens on the socket: 'server' = QEMU listens (chardev server=on,wait=off)
   * and the switch connects; 'client' = the switch listens and QEMU connects.
   */
  mode: 'client' | 'server';
  /** Guest MAC, e.g. 52:54:00:00:00:01. */
  mac: string;
  /** Queue pairs (> 1 adds mq=on). The guest kernel uses min(queues, vCPUs) pairs. */
  queues?: number;
  /** Client mode only: seconds between reconnect attempts (chardev reconnect=N). */
  reconnect?: number;
  /** Packed virtqueues (virtio-net-pci packed=on) instead of split ones. */
  packed?: boolean;
}

export interface GuestOptions {
  name: string;
  netdevs?: NetdevSpec[];
  /**
   * Link-local address(es) with prefix: ip[i] goes to eth<i>
   * (kernel cmdline vs.ip= for eth0, vs.ip<i>= for eth<i>).
   */
  ip?: string | string[];
  memMiB?: number;
  /** Memory hot-plug: DIMM slots and the most memory with them (-m SIZE,slots=N,maxmem=M). */
  memSlots?: { slots: number; maxMiB: number };
  /** -cpu model (TCG default qemu64 when unset), e.g. 'max'. */
  cpu?: string;
  /** vCPUs (-smp), default 1. */
  smp?: number;
  /** Guest MTU for every NIC (vs.mtu=). */
  mtu?: number;
  /** Disable IPv6 in the guest. */
  noIpv6?: boolean;
  /** Extra kernel command line words. */
  append?: string[];
  /** Extra QEMU arguments appended at the end. */
  extraArgs?: string[];
  /** Kernel and initramfs; default: built by test/guest/build-initramfs.sh. */
  kernel?: string;
  initrd?: string;
}

export interface GuestImage {
  kernel: string;
  initrd: string;
}

export interface RunResult {
  output: string;
  exitCode: number;
}

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export const READY_MARKER = 'VS-GUEST-READY';

let imagePromise: Promise<GuestImage> | undefined;

/** Builds (or reuses the cached) guest kernel + initramfs. */
export function guestImage(): Promise<GuestImage> {
  imagePromise ??= (async () => {
    const script = path.join(repoRoot, 'test/guest/build-initramfs.sh');
    const { stdout } = await execFileP('bash', [script], { maxBuffer: 1 << 20 }).catch((e: Error & { stderr?: string }) => {
      throw new Error(`building the guest initramfs failed: ${e.stderr ?? e.message}`);
    });
    const kernel = /^KERNEL=(.*)$/m.exec(stdout)?.[1];
    const initrd = /^INITRD=(.*)$/m.exec(stdout)?.[1];
    if (!kernel || !initrd) throw new Error(`build-initramfs.sh printed no KERNEL=/INITRD=: ${stdout}`);
    return { kernel, initrd };
  })();
  imagePromise.catch(() => (imagePromise = undefined));
  return imagePromise;
}

const MAC_RE = /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i;

/**
 * The QEMU argument vector (without the binary) for a guest. Exported so the
 * same command line can be documented and reused outside the tests.
 */
export function qemuCommandLine(opts: GuestOptions & GuestImage): string[] {
  const mem = opts.memMiB ?? 256;
  const ips = opts.ip === undefined ? [] : Array.isArray(opts.ip) ? opts.ip : [opts.ip];
  for (const a of ips) assertLinkLocal(a);
  const append = ['console=ttyS0', 'quiet', 'panic=-1'];
  ips.forEach((a, i) => append.push(i === 0 ? `vs.ip=${a}` : `vs.ip${i}=${a}`));
  if (opts.mtu) append.push(`vs.mtu=${opts.mtu}`);
  if (opts.noIpv6) append.push('vs.noipv6=1');
  append.push(...(opts.append ?? []));

  const args = [
    '-name', opts.name,
    '-machine', 'pc',
    '-accel', 'tcg',
    ...(opts.cpu ? ['-cpu', opts.cpu] : []),
    '-smp', String(opts.smp ?? 1),
    '-m', opts.memSlots ? `${mem}M,slots=${opts.memSlots.slots},maxmem=${opts.memSlots.maxMiB}M` : `${mem}M`,
    // vhost-user backends map guest RAM: it must be a shareable fd.
    '-object', `memory-backend-memfd,id=mem,size=${mem}M,share=on`,
    '-numa', 'node,memdev=mem',
    '-nodefaults',
    '-no-user-config',
    '-no-reboot',
    '-display', 'none',
    // serial console on stdio; signal=off so a ^C we type reaches the guest
    '-chardev', 'stdio,id=con0,signal=off',
    '-serial', 'chardev:con0',
    '-kernel', opts.kernel,
    '-initrd', opts.initrd,
    '-append', append.join(' '),
  ];
  (opts.netdevs ?? []).forEach((nd, i) => {
    if (!MAC_RE.test(nd.mac)) throw new Error(`bad MAC ${nd.mac}`);
    if (nd.socket.includes(',')) throw new Error(`socket path must not contain ',': ${nd.socket}`);
    const q = nd.queues ?? 1;
    let chr = `socket,id=chr${i},path=${nd.socket}`;
    if (nd.mode === 'server') chr += ',server=on,wait=off';
    else if (nd.reconnect) chr += `,reconnect=${nd.reconnect}`;
    args.push('-chardev', chr);
    args.push('-netdev', `vhost-user,id=net${i},chardev=chr${i}${q > 1 ? `,queues=${q}` : ''}`);
    // vectors=0 (no MSI-X, legacy INTx) is REQUIRED: QEMU 7.2 under TCG segfaults
    // when a vhost-user virtio-net-pci device starts with MSI-X vectors
    // (found while building this harness; no KVM on the test machines).
    // romfile= skips loading the iPXE option ROM we never use (faster boot).
    args.push('-device', `virtio-net-pci,netdev=net${i},mac=${nd.mac},vectors=0,romfile=${q > 1 ? ',mq=on' : ''}${nd.packed ? ',packed=on' : ''}`);
  });
  args.push(...(opts.extraArgs ?? []));
  return args;
}

/** Shell-quotes a QEMU argv for documentation / copy-paste. */
export function formatCommandLine(binary: string, args: string[]): string {
  return [binary, ...args].map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}

export class Guest {
  readonly name: string;
  readonly args: string[];
  readonly binary: string;
  readonly logFile: string;
  /** Resolves when QEMU exits (never rejects). */
  readonly exited: Promise<ExitInfo>;
  /** Wall-clock ms from spawn to the ready marker (set by waitReady). */
  bootMs: number | undefined;

  private readonly child: ChildProcess;
  private readonly startedAt = Date.now();
  private text = ''; // console output with \r removed
  private stderr = '';
  private exitInfo: ExitInfo | undefined;
  private readonly log: fs.WriteStream;
  private waiters = new Set<() => void>();
  private queue: Promise<unknown> = Promise.resolve();
  private seq = 0;

  constructor(name: string, binary: string, args: string[], readonly options: GuestOptions = { name }) {
    this.name = name;
    this.binary = binary;
    this.args = args;
    this.logFile = logFilePath(`guest-${name}`);
    this.log = fs.createWriteStream(this.logFile);
    this.log.write(`# ${formatCommandLine(binary, args)}\n`);
    const prefix = deathSigPrefix();
    const argv = [...prefix, binary, ...args];
    this.child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
    trackChild(this.child, `qemu:${name}`);
    this.child.stdout!.on('data', (b: Buffer) => {
      this.log.write(b);
      this.text += b.toString('latin1').replace(/\r/g, '');
      this.wake();
    });
    this.child.stderr!.on('data', (b: Buffer) => {
      this.log.write(b);
      this.stderr += b.toString();
    });
    this.child.stdin!.on('error', () => {
      /* EPIPE after exit */
    });
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        this.exitInfo = { code, signal };
        this.log.end(`\n# qemu exited code=${code} signal=${signal}\n`);
        this.wake();
        resolve(this.exitInfo);
      });
      this.child.once('error', (err) => {
        this.stderr += String(err);
        this.exitInfo = { code: -1, signal: null };
        this.wake();
        resolve(this.exitInfo);
      });
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Everything the guest printed on its console so far (\r stripped). */
  get console(): string {
    return this.text;
  }

  /** What QEMU printed on stderr. */
  get qemuStderr(): string {
    return this.stderr;
  }

  get hasExited(): boolean {
    return this.exitInfo !== undefined;
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }

  /**
   * Waits until `pattern` appears in the console output at or after `from`
   * (an offset in `console`). Returns the match. Rejects on timeout or QEMU exit.
   */
  waitFor(pattern: RegExp | string, timeoutMs = 30_000, from = 0): Promise<RegExpExecArray> {
    const re =
      typeof pattern === 'string'
        ? new RegExp(pattern.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'), 'g')
        : new RegExp(pattern.source, pattern.flags.includes('g') ? pattern.flags : pattern.flags + 'g');
    return new Promise((resolve, reject) => {
      const check = () => {
        re.lastIndex = from;
        const m = re.exec(this.text);
        if (m) return done(() => resolve(m));
        if (this.exitInfo) {
          return done(() =>
            reject(new Error(`guest ${this.name}: QEMU exited (${JSON.stringify(this.exitInfo)}) while waiting for ${re}${this.diag()}`)),
          );
        }
      };
      const timer = setTimeout(
        () => done(() => reject(new Error(`guest ${this.name}: timed out after ${timeoutMs} ms waiting for ${re}${this.diag()}`))),
        timeoutMs,
      );
      const done = (f: () => void) => {
        clearTimeout(timer);
        this.waiters.delete(check);
        f();
      };
      this.waiters.add(check);
      check();
    });
  }

  private diag(): string {
    const tail = this.text.slice(-1500);
    return `\n--- qemu stderr ---\n${this.stderr.slice(-1500)}\n--- console tail ---\n${tail}\n--- full log: ${this.logFile}`;
  }

  /** Waits for the init's ready marker; returns the boot time in ms. */
  async waitReady(timeoutMs = 180_000): Promise<number> {
    await this.waitFor(new RegExp(`^${READY_MARKER}`, 'm'), timeoutMs);
    this.bootMs ??= Date.now() - this.startedAt;
    if (/VS-GUEST-ERROR/.test(this.text)) {
      throw new Error(`guest ${this.name} reported an error during init${this.diag()}`);
    }
    return this.bootMs;
  }

  /** Types raw text on the serial console. */
  write(text: string): void {
    this.child.stdin!.write(text);
  }

  /**
   * Runs a shell command in the guest and returns its output (stdout+stderr,
   * \r removed, without the echo of the command) and exit status. Commands are
   * serialized. On timeout a ^C is typed and the promise rejects.
   */
  run(cmd: string, timeoutMs = 30_000): Promise<RunResult> {
    const p = this.queue.then(() => this.runNow(cmd, timeoutMs));
    this.queue = p.catch(() => undefined);
    return p;
  }

  /** run() that throws unless the exit code is 0; returns the output. */
  async runOk(cmd: string, timeoutMs = 30_000): Promise<string> {
    const r = await this.run(cmd, timeoutMs);
    if (r.exitCode !== 0) throw new Error(`guest ${this.name}: '${cmd}' exited ${r.exitCode}:\n${r.output}`);
    return r.output;
  }

  private async runNow(cmd: string, timeoutMs: number): Promise<RunResult> {
    const id = `${uniqueId()}x${++this.seq}`;
    // The markers are assembled by printf, so the console's echo of the typed
    // line never contains them literally. The whole command is one line: the
    // tty echoes it completely before the shell runs it.
    let body: string;
    if (/^[\x20-\x7e]*$/.test(cmd)) body = `eval '${cmd.replace(/'/g, `'\\''`)}'`;
    else body = `eval "$(echo ${Buffer.from(cmd).toString('base64')} | base64 -d)"`;
    const line = `printf 'VS-%s-B\\n' ${id}; ${body}; printf '\\nVS-%s-E-%d\\n' ${id} $?\n`;
    if (line.length > 4000) throw new Error(`command too long for the console line (${line.length} > 4000 bytes)`);
    const from = this.text.length;
    this.write(line);
    const begin = await this.waitFor(new RegExp(`^VS-${id}-B\\n`, 'm'), timeoutMs, from);
    const start = begin.index + begin[0].length;
    try {
      const end = await this.waitFor(new RegExp(`\\nVS-${id}-E-(\\d+)\\n`), timeoutMs, start - 1);
      return { output: this.text.slice(start, end.index), exitCode: Number(end[1]) };
    } catch (e) {
      if (!this.exitInfo) this.write('\x03');
      throw e;
    }
  }

  /**
   * Waits until `dev` has carrier (operstate up) in the guest: the backend has
   * finished the vhost-user handshake and the driver set DRIVER_OK. The ready
   * marker does not wait for this (a NIC whose backend is not there yet stays
   * down). Throws after timeoutMs.
   */
  async waitLink(dev = 'eth0', timeoutMs = 30_000): Promise<void> {
    const tries = Math.max(1, Math.ceil(timeoutMs / 200));
    const state = `cat /sys/class/net/${dev}/operstate 2>/dev/null`;
    const r = await this.run(
      `i=0; while [ "$(${state})" != up ] && [ $i -lt ${tries} ]; do i=$((i+1)); sleep 0.2; done; ${state}; [ "$(${state})" = up ]`,
      timeoutMs + 30_000,
    );
    if (r.exitCode !== 0) throw new Error(`guest ${this.name}: ${dev} has no carrier after ${timeoutMs} ms (operstate ${r.output.trim() || 'missing'})`);
  }

  /**
   * Waits until QEMU listens on the sockets of its 'server' mode NICs. Note:
   * even with wait=off, QEMU 7.2 blocks at startup in the vhost-user netdev
   * until a backend connects (stderr: "QEMU waiting for connection on: ..."),
   * so the guest does not boot before the switch has connected to every
   * server-mode socket.
   */
  async waitServerSockets(timeoutMs = 30_000): Promise<void> {
    const socks = (this.options.netdevs ?? []).filter((n) => n.mode === 'server').map((n) => n.socket);
    const deadline = Date.now() + timeoutMs;
    while (!socks.every((s) => fs.existsSync(s))) {
      if (this.exitInfo) throw new Error(`guest ${this.name}: QEMU exited before listening${this.diag()}`);
      if (Date.now() > deadline) throw new Error(`guest ${this.name}: no vhost-user socket after ${timeoutMs} ms: ${socks.join(' ')}${this.diag()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Sends a signal to QEMU. */
  kill(signal: NodeJS.Signals = 'SIGTERM'): void {
    if (!this.exitInfo) this.child.kill(signal);
  }

  /** SIGTERM (QEMU shuts down cleanly), SIGKILL after graceMs. */
  async stop(graceMs = 5000): Promise<ExitInfo> {
    if (!this.exitInfo) {
      this.kill('SIGTERM');
      const t = setTimeout(() => this.kill('SIGKILL'), graceMs);
      await this.exited;
      clearTimeout(t);
    }
    return this.exited;
  }
}

/**
 * Starts a guest (does not wait for boot: QEMU in 'server' mode must be running
 * before the switch can connect). Call waitReady() next.
 */
export async function startGuest(opts: GuestOptions): Promise<Guest> {
  const binary = requireTool('qemu-system-x86_64');
  const image = opts.kernel && opts.initrd ? { kernel: opts.kernel, initrd: opts.initrd } : await guestImage();
  const args = qemuCommandLine({ ...image, ...opts });
  return new Guest(opts.name, binary, args, opts);
}
