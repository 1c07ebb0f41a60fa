// A real libvirtd for e2e tests, private to the test, and libvirt domains whose serial console the test drives.
//
// The daemon. `libvirtd` (the monolithic daemon of libvirt 9.0, running as root, QEMU driver in system mode) is
// started by the test in its own mount namespace (`unshare -m`), where the test's directories are bind-mounted
// over /etc/libvirt, /run/libvirt, /var/lib/libvirt, /var/log/libvirt and /var/cache/libvirt. So it reads the
// test's libvirtd.conf and qemu.conf, keeps its domains and sockets in the test's run directory, never sees the
// host's libvirt configuration (no default network, no other domains) and cannot collide with another libvirtd on
// the machine. virsh reaches it from outside the namespace through the socket's path in the run directory
// (`qemu+unix:///system?socket=RUN/libvirt/run/libvirt-sock`). It runs in the foreground as a child of the test
// (SIGKILLed if the test process dies), with the QEMU processes it starts in the same namespace.
//
// qemu.conf keeps libvirt's defaults where it matters for vhost-user: QEMU runs as the distribution's
// unprivileged user (libvirt-qemu:kvm on Debian) with dynamic ownership, so the socket directory's permissions
// are tested as docs/attach.md prescribes. It only turns off what a container without systemd lacks:
//   namespaces = [ ]          (no private /dev per QEMU)
//   cgroup_controllers = [ ]  (no cgroup placement)
//   stdio_handler = "file"    (QEMU logs go to files; no virtlogd to start)
//
// The domains. Each has a serial console on a Unix socket that QEMU listens on (<serial type='unix'> with
// <source mode='bind'>, also the <console>); the test connects right after `virsh start` and types commands as
// test/support/qemu.ts does on a guest's stdio. A <log file> beside it records everything the console printed,
// even while nobody was connected; it is kept in .cache/logs.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import {
  assertLinkLocal,
  currentRunDir,
  deathSigPrefix,
  logFilePath,
  onCleanup,
  requireRoot,
  requireTool,
  requireTools,
  sleep,
  trackChild,
  uniqueId,
  waitUntil,
} from '../../harness/env.js';
import { READY_MARKER, type RunResult } from '../support/qemu.js';

const execFileP = promisify(execFile);

export const LIBVIRT_QEMU_NS = 'http://libvirt.org/schemas/domain/qemu/1.0';

/** The qemu.conf the test's libvirtd reads (see the header). */
export const TEST_QEMU_CONF = `# vhost-switch e2e: libvirt defaults (QEMU as libvirt-qemu:kvm, dynamic ownership) minus what a container lacks
namespaces = [ ]
cgroup_controllers = [ ]
stdio_handler = "file"
`;

const TEST_LIBVIRTD_CONF = `# vhost-switch e2e: only root can reach the sockets (mode 0700), so no authentication
unix_sock_rw_perms = "0700"
unix_sock_ro_perms = "0700"
unix_sock_admin_perms = "0700"
auth_unix_rw = "none"
auth_unix_ro = "none"
log_outputs = "3:stderr"
`;

const BIND_MOUNTS: Array<[string, string]> = [
  ['etc', '/etc/libvirt'],
  ['run', '/run/libvirt'],
  ['lib', '/var/lib/libvirt'],
  ['log', '/var/log/libvirt'],
  ['cache', '/var/cache/libvirt'],
];

export class Libvirtd {
  readonly uri: string;
  readonly logFile: string;
  private output = '';
  private exitInfo: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  readonly exited: Promise<void>;
  private readonly domains = new Set<string>();

  private constructor(
    readonly dir: string,
    private readonly child: ChildProcess,
  ) {
    this.uri = `qemu+unix:///system?socket=${path.join(dir, 'run', 'libvirt-sock')}`;
    this.logFile = logFilePath('libvirtd');
    const log = fs.createWriteStream(this.logFile);
    const take = (b: Buffer) => {
      log.write(b);
      this.output = (this.output + b.toString()).slice(-20_000);
    };
    child.stdout!.on('data', take);
    child.stderr!.on('data', take);
    this.exited = new Promise((resolve) =>
      child.once('exit', (code, signal) => {
        this.exitInfo = { code, signal };
        log.end(`\n# libvirtd exited code=${code} signal=${signal}\n`);
        resolve();
      }),
    );
  }

  /**
   * Starts libvirtd in a private mount namespace with its state under `dir` (created; must be empty or missing)
   * and waits until virsh can talk to it. Fails (does not skip) when libvirtd, virsh, unshare or QEMU is missing.
   */
  static async start(dir: string): Promise<Libvirtd> {
    requireRoot();
    const tools = requireTools('libvirtd', 'virsh', 'qemu-system-x86_64');
    const unshare = requireTool('unshare', 'util-linux');
    for (const [sub] of BIND_MOUNTS) fs.mkdirSync(path.join(dir, sub), { recursive: true, mode: 0o755 });
    fs.writeFileSync(path.join(dir, 'etc', 'qemu.conf'), TEST_QEMU_CONF);
    fs.writeFileSync(path.join(dir, 'etc', 'libvirtd.conf'), TEST_LIBVIRTD_CONF);
    // /run/libvirt is made by libvirtd or virtlogd on their first start (the package ships no tmpfiles entry),
    // so a machine where neither has run yet lacks it: make it, as they would. The others come with the package.
    fs.mkdirSync('/run/libvirt', { recursive: true, mode: 0o755 });
    for (const [, target] of BIND_MOUNTS) {
      if (!fs.existsSync(target)) throw new Error(`${target} does not exist: is libvirt-daemon-system installed?`);
    }
    const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
    const script = [
      'set -e',
      ...BIND_MOUNTS.map(([sub, target]) => `mount --bind ${q(path.join(dir, sub))} ${target}`),
      `exec ${q(tools.libvirtd!)} --pid-file ${q(path.join(dir, 'libvirtd.pid'))}`,
    ].join('\n');
    const argv = [...deathSigPrefix(), unshare, '--mount', '--propagation', 'private', '--', '/bin/sh', '-c', script];
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    trackChild(child, 'libvirtd');
    const lv = new Libvirtd(dir, child);
    onCleanup(() => lv.stop());
    await waitUntil(
      async () => {
        if (lv.exitInfo) throw new Error(`libvirtd exited (${JSON.stringify(lv.exitInfo)}) before it answered:\n${lv.output}`);
        return (await lv.virshRaw(['version'])).code === 0;
      },
      60_000,
      'libvirtd to answer virsh',
      200,
    );
    return lv;
  }

  /** What libvirtd printed (its log), for failure messages. */
  get log(): string {
    return this.output;
  }

  alive(): boolean {
    return this.exitInfo === undefined;
  }

  async virshRaw(args: string[], timeoutMs = 120_000): Promise<{ code: number; stdout: string; stderr: string }> {
    const virsh = requireTool('virsh');
    try {
      const { stdout, stderr } = await execFileP(virsh, ['-q', '-c', this.uri, ...args], { timeout: timeoutMs, maxBuffer: 16 << 20 });
      return { code: 0, stdout, stderr };
    } catch (e) {
      const err = e as Error & { code?: number | string; stdout?: string; stderr?: string };
      return { code: typeof err.code === 'number' ? err.code : 1, stdout: err.stdout ?? '', stderr: err.stderr ?? err.message };
    }
  }

  /** virsh ARGS; throws with virsh's message (and libvirtd's log tail) unless it exits 0. */
  async virsh(args: string[], timeoutMs = 120_000): Promise<string> {
    const r = await this.virshRaw(args, timeoutMs);
    if (r.code !== 0) {
      throw new Error(`virsh ${args.join(' ')} failed (${r.code}): ${r.stderr.trim()}\n--- libvirtd log tail ---\n${this.output.slice(-2000)}`);
    }
    return r.stdout;
  }

  /** The QEMU log libvirt keeps for a domain (its command line, QEMU's stderr). */
  qemuLog(name: string): string {
    try {
      return fs.readFileSync(path.join(this.dir, 'log', 'qemu', `${name}.log`), 'utf8');
    } catch {
      return '';
    }
  }

  /** pid of a running domain's QEMU (from libvirt's pid file). */
  qemuPid(name: string): number | undefined {
    try {
      const pid = Number(fs.readFileSync(path.join(this.dir, 'run', 'qemu', `${name}.pid`), 'utf8').trim());
      return pid > 0 ? pid : undefined;
    } catch {
      return undefined;
    }
  }

  /**
   * `virsh define FILE` + `virsh start NAME`, with the domain's console connected before the guest's init runs.
   * The domain is destroyed and undefined by stop() (and by the file's cleanup).
   */
  async defineAndStart(name: string, xml: string, consoleSocket: string, consoleLog: string): Promise<Domain> {
    const file = path.join(this.dir, `${name}.xml`);
    fs.writeFileSync(file, xml);
    fs.writeFileSync(logFilePath(`libvirt-${name}-domain`).replace(/\.log$/, '.xml'), xml);
    await this.virsh(['define', file]);
    this.domains.add(name);
    await this.virsh(['start', name]);
    const pid = this.qemuPid(name);
    if (pid) recordForeignPid(pid, `qemu:${name}`);
    const con = await DomainConsole.connect(name, consoleSocket, consoleLog, () => this.domainGone(name));
    return new Domain(this, name, con);
  }

  private async domainGone(name: string): Promise<string | undefined> {
    const r = await this.virshRaw(['domstate', name, '--reason']);
    if (r.code === 0 && /^running/.test(r.stdout.trim())) return undefined;
    return `domain ${name} is ${r.stdout.trim() || r.stderr.trim()}\n--- QEMU log tail ---\n${this.qemuLog(name).slice(-2500)}`;
  }

  async destroyAndUndefine(name: string): Promise<void> {
    await this.virshRaw(['destroy', name]);
    await this.virshRaw(['undefine', name]);
    this.domains.delete(name);
  }

  /** Destroys every domain it defined, then stops libvirtd (SIGTERM; SIGKILL after 10 s) and any QEMU left. */
  async stop(): Promise<void> {
    if (this.alive()) for (const d of [...this.domains]) await this.destroyAndUndefine(d);
    // QEMU processes of domains that could not be destroyed through libvirt.
    for (const f of safeReaddir(path.join(this.dir, 'run', 'qemu')).filter((n) => n.endsWith('.pid'))) {
      const pid = Number(fs.readFileSync(path.join(this.dir, 'run', 'qemu', f), 'utf8').trim());
      if (pid > 0 && isQemu(pid)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
    }
    if (this.alive()) {
      this.child.kill('SIGTERM');
      const t = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
      await this.exited;
      clearTimeout(t);
    }
  }
}

function safeReaddir(d: string): string[] {
  try {
    return fs.readdirSync(d);
  } catch {
    return [];
  }
}

function isQemu(pid: number): boolean {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('qemu-system');
  } catch {
    return false;
  }
}

/**
 * Records a process the test did not spawn itself (a QEMU that libvirtd started) the way env.ts's trackChild
 * records children, so that reapStaleRuns() kills it if this test process dies without cleaning up.
 */
function recordForeignPid(pid: number, name: string): void {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const start = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
    fs.writeFileSync(path.join(currentRunDir(), `child-${pid}.pid`), `${pid}\n${start}\n${name}\n`);
  } catch {
    /* best effort */
  }
}

export class Domain {
  constructor(
    readonly libvirt: Libvirtd,
    readonly name: string,
    readonly console: DomainConsole,
  ) {}

  waitReady(timeoutMs = 240_000): Promise<void> {
    return this.console.waitReady(timeoutMs);
  }
  run(cmd: string, timeoutMs = 30_000): Promise<RunResult> {
    return this.console.run(cmd, timeoutMs);
  }
  runOk(cmd: string, timeoutMs = 30_000): Promise<string> {
    return this.console.runOk(cmd, timeoutMs);
  }
  waitLink(dev = 'eth0', timeoutMs = 60_000): Promise<void> {
    return this.console.waitLink(dev, timeoutMs);
  }
  /** `virsh domiflist`: one row per NIC (type, source socket, MAC). */
  async interfaces(): Promise<Array<{ type: string; source: string; mac: string }>> {
    const out = await this.libvirt.virsh(['domiflist', this.name]);
    return out
      .split('\n')
      .map((l) => l.trim().split(/\s+/))
      .filter((f) => f.length >= 5)
      .map((f) => ({ type: f[1]!, source: f[2]!, mac: f[4]! }));
  }
}

/**
 * A domain's serial console over the Unix socket QEMU listens on: typed commands with begin/end markers
 * (printf-assembled, so the echo of the typed line never matches), as test/support/qemu.ts does over stdio.
 */
export class DomainConsole {
  private text = '';
  private closed = false;
  private waiters = new Set<() => void>();
  private queue: Promise<unknown> = Promise.resolve();
  private seq = 0;

  private constructor(
    readonly name: string,
    private readonly sock: net.Socket,
    readonly logFile: string,
    private readonly whyGone: () => Promise<string | undefined>,
  ) {
    sock.on('data', (b: Buffer) => {
      this.text += b.toString('latin1').replace(/\r/g, '');
      this.wake();
    });
    sock.on('close', () => {
      this.closed = true;
      this.wake();
    });
    sock.on('error', () => undefined);
    onCleanup(() => void sock.destroy());
  }

  static async connect(name: string, socketPath: string, logFile: string, whyGone: () => Promise<string | undefined>): Promise<DomainConsole> {
    let lastErr: unknown;
    for (let i = 0; i < 100; i++) {
      try {
        const s = await new Promise<net.Socket>((resolve, reject) => {
          const c = net.createConnection(socketPath);
          c.once('connect', () => resolve(c));
          c.once('error', reject);
        });
        return new DomainConsole(name, s, logFile, whyGone);
      } catch (e) {
        lastErr = e;
        await sleep(100);
      }
    }
    throw new Error(`console of ${name} at ${socketPath}: ${(lastErr as Error).message}`);
  }

  get output(): string {
    return this.text;
  }

  /** Everything the console printed since the domain started (the <log file>). */
  get fullLog(): string {
    try {
      return fs.readFileSync(this.logFile, 'latin1').replace(/\r/g, '');
    } catch {
      return '';
    }
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }

  waitFor(pattern: RegExp, timeoutMs: number, from = 0): Promise<RegExpExecArray> {
    const re = new RegExp(pattern.source, pattern.flags.includes('g') ? pattern.flags : pattern.flags + 'g');
    return new Promise((resolve, reject) => {
      let poll: NodeJS.Timeout | undefined;
      const done = (f: () => void) => {
        clearTimeout(timer);
        clearInterval(poll);
        this.waiters.delete(check);
        f();
      };
      const check = () => {
        re.lastIndex = from;
        const m = re.exec(this.text);
        if (m) return done(() => resolve(m));
        if (this.closed) return done(() => reject(new Error(`console of ${this.name} closed while waiting for ${re}${this.diag()}`)));
      };
      const timer = setTimeout(() => {
        void this.whyGone().then((gone) =>
          done(() => reject(new Error(`${this.name}: timed out after ${timeoutMs} ms waiting for ${re}${gone ? `\n${gone}` : ''}${this.diag()}`))),
        );
      }, timeoutMs);
      // The domain may die without closing our end for a while: look every few seconds.
      poll = setInterval(() => {
        void this.whyGone().then((gone) => {
          if (gone) done(() => reject(new Error(`${this.name}: ${gone}${this.diag()}`)));
        });
      }, 10_000);
      this.waiters.add(check);
      check();
    });
  }

  private diag(): string {
    return `\n--- console tail ---\n${this.fullLog.slice(-1500)}\n--- full console log: ${this.logFile}`;
  }

  /**
   * Waits for the guest init's ready marker. The console is connected within moments of `virsh start`, long
   * before the kernel's init runs, but the <log file> is checked too in case it was not.
   */
  async waitReady(timeoutMs: number): Promise<void> {
    const marker = new RegExp(`^${READY_MARKER}`, 'm');
    const deadline = Date.now() + timeoutMs;
    let lastLook = Date.now();
    while (!marker.test(this.text) && !marker.test(this.fullLog)) {
      if (this.closed) throw new Error(`console of ${this.name} closed before the guest was ready${this.diag()}`);
      if (Date.now() - lastLook > 10_000) {
        lastLook = Date.now();
        const gone = await this.whyGone();
        if (gone) throw new Error(`${this.name}: ${gone}${this.diag()}`);
      }
      if (Date.now() > deadline) throw new Error(`${this.name}: no ${READY_MARKER} after ${timeoutMs} ms${this.diag()}`);
      await sleep(500);
    }
    if (/VS-GUEST-ERROR/.test(this.fullLog)) throw new Error(`${this.name}: the guest reported an error during init${this.diag()}`);
  }

  run(cmd: string, timeoutMs = 30_000): Promise<RunResult> {
    const p = this.queue.then(() => this.runNow(cmd, timeoutMs));
    this.queue = p.catch(() => undefined);
    return p;
  }

  async runOk(cmd: string, timeoutMs = 30_000): Promise<string> {
    const r = await this.run(cmd, timeoutMs);
    if (r.exitCode !== 0) throw new Error(`${this.name}: '${cmd}' exited ${r.exitCode}:\n${r.output}`);
    return r.output;
  }

  private async runNow(cmd: string, timeoutMs: number): Promise<RunResult> {
    const id = `${uniqueId()}x${++this.seq}`;
    const body = /^[\x20-\x7e]*$/.test(cmd) ? `eval '${cmd.replace(/'/g, `'\\''`)}'` : `eval "$(echo ${Buffer.from(cmd).toString('base64')} | base64 -d)"`;
    const line = `printf 'VS-%s-B\\n' ${id}; ${body}; printf '\\nVS-%s-E-%d\\n' ${id} $?\n`;
    if (line.length > 4000) throw new Error(`command too long for the console line (${line.length} > 4000 bytes)`);
    const from = this.text.length;
    this.sock.write(line);
    const begin = await this.waitFor(new RegExp(`^VS-${id}-B\\n`, 'm'), timeoutMs, from);
    const start = begin.index + begin[0].length;
    try {
      const end = await this.waitFor(new RegExp(`\\nVS-${id}-E-(\\d+)\\n`), timeoutMs, start - 1);
      return { output: this.text.slice(start, end.index), exitCode: Number(end[1]) };
    } catch (e) {
      if (!this.closed) this.sock.write('\x03');
      throw e;
    }
  }

  /** Waits until `dev` exists and has carrier in the guest (the vhost-user backend finished its handshake). */
  async waitLink(dev = 'eth0', timeoutMs = 60_000): Promise<void> {
    const tries = Math.max(1, Math.ceil(timeoutMs / 200));
    const state = `cat /sys/class/net/${dev}/operstate 2>/dev/null`;
    const r = await this.run(
      `i=0; while [ "$(${state})" != up ] && [ $i -lt ${tries} ]; do i=$((i+1)); sleep 0.2; done; ${state}; [ "$(${state})" = up ]`,
      timeoutMs + 30_000,
    );
    if (r.exitCode !== 0) throw new Error(`${this.name}: ${dev} has no carrier after ${timeoutMs} ms (operstate ${r.output.trim() || 'missing'})`);
  }
}

// ---------------------------------------------------------------------------------------------
// What `vhost-switch vif PORT --format libvirt` prints, taken apart.

export interface VifLibvirt {
  /** The <interface type='vhostuser'> element, as printed. */
  interface: string;
  /** The first <memoryBacking> block of the notes (memfd). */
  memoryBacking?: string;
  /** The <qemu:override> block of the notes (QEMU 7.2 TCG: vectors=0; MTU != 1500: host_mtu). */
  override?: string;
  /** The <qemu:commandline> of the notes (-global virtio-net-pci.vectors=0, for hot-plugged NICs on 7.2 TCG). */
  commandline?: string;
  /** The whole output (a document virsh attach-device takes as it is). */
  text: string;
}

export function splitVifLibvirt(text: string): VifLibvirt {
  const iface = /^<interface type='vhostuser'>[\s\S]*?^<\/interface>/m.exec(text)?.[0];
  if (!iface) throw new Error(`no <interface type='vhostuser'> in vif output:\n${text}`);
  const comments = [...text.matchAll(/<!--([\s\S]*?)-->/g)].map((m) => m[1]!);
  const find = (re: RegExp) => {
    for (const c of comments) {
      const m = re.exec(c);
      if (m) return dedent(m[0]);
    }
    return undefined;
  };
  return {
    interface: iface,
    memoryBacking: find(/<memoryBacking>[\s\S]*?<\/memoryBacking>/),
    override: find(/<qemu:override>[\s\S]*?<\/qemu:override>/),
    commandline: find(/<qemu:commandline>[\s\S]*?<\/qemu:commandline>/),
    text,
  };
}

/** Re-indents a block cut out of an indented comment: the closing line's indentation becomes none. */
function dedent(block: string): string {
  const lines = block.split('\n');
  const cut = /^ */.exec(lines[lines.length - 1]!)![0].length;
  return [lines[0], ...lines.slice(1).map((l) => l.slice(Math.min(cut, /^ */.exec(l)![0].length)))].join('\n');
}

function indent(block: string, by: string): string {
  return block
    .split('\n')
    .map((l) => (l ? by + l : l))
    .join('\n');
}

export interface TestDomainSpec {
  name: string;
  memoryMiB?: number;
  kernel: string;
  initrd: string;
  /** Link-local address of eth0 (vs.ip=). */
  ip: string;
  /** The vif outputs of the domain's NICs at start. */
  nics: VifLibvirt[];
  /** Add the <qemu:commandline> the vif notes print (needed to hot-plug NICs on QEMU 7.2 TCG). */
  hotplugReady?: boolean;
  emulator: string;
  consoleSocket: string;
  consoleLog: string;
}

/**
 * The domain the e2e tests define: direct kernel boot of the test guest, TCG (type='qemu'), ACPI (i440fx PCI
 * hot-plug needs it), and everything else from the vif output: the <interface>s, the <memoryBacking> and the
 * <qemu:override>/<qemu:commandline> blocks of its notes.
 */
export function testDomainXml(spec: TestDomainSpec): string {
  assertLinkLocal(spec.ip);
  const mem = spec.memoryMiB ?? 256;
  const first = spec.nics[0];
  const memoryBacking = first?.memoryBacking;
  if (spec.nics.length && !memoryBacking) throw new Error('the vif output printed no <memoryBacking>');
  const overrides = spec.nics.map((n) => n.override).filter((o): o is string => !!o);
  // Several NICs: one <qemu:override> with every NIC's <qemu:device>.
  const override = overrides.length
    ? ['<qemu:override>', ...overrides.map((o) => o.replace(/^<qemu:override>\n?|\n?<\/qemu:override>$/g, '')), '</qemu:override>'].join('\n')
    : undefined;
  const commandline = spec.hotplugReady ? spec.nics.find((n) => n.commandline)?.commandline : undefined;
  if (spec.hotplugReady && !commandline) throw new Error('the vif output printed no <qemu:commandline> for hot-plugged NICs');
  const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
  const parts = [
    `<domain type='qemu' xmlns:qemu='${LIBVIRT_QEMU_NS}'>`,
    `  <name>${spec.name}</name>`,
    `  <memory unit='MiB'>${mem}</memory>`,
    `  <vcpu>1</vcpu>`,
    ...(memoryBacking ? [indent(memoryBacking, '  ')] : []),
    `  <os>`,
    `    <type arch='x86_64' machine='pc'>hvm</type>`,
    `    <kernel>${esc(spec.kernel)}</kernel>`,
    `    <initrd>${esc(spec.initrd)}</initrd>`,
    `    <cmdline>console=ttyS0 quiet panic=-1 vs.ip=${spec.ip}</cmdline>`,
    `  </os>`,
    `  <features>`,
    `    <acpi/>`,
    `  </features>`,
    `  <on_poweroff>destroy</on_poweroff>`,
    `  <on_reboot>destroy</on_reboot>`,
    `  <on_crash>destroy</on_crash>`,
    `  <devices>`,
    `    <emulator>${esc(spec.emulator)}</emulator>`,
    ...spec.nics.map((n) => indent(n.interface, '    ')),
    `    <serial type='unix'>`,
    `      <source mode='bind' path='${esc(spec.consoleSocket)}'/>`,
    `      <log file='${esc(spec.consoleLog)}'/>`,
    `      <target port='0'/>`,
    `    </serial>`,
    `    <console type='unix'>`,
    `      <source mode='bind' path='${esc(spec.consoleSocket)}'/>`,
    `      <target type='serial' port='0'/>`,
    `    </console>`,
    `    <memballoon model='none'/>`,
    `  </devices>`,
    ...(override ? [indent(override, '  ')] : []),
    ...(commandline ? [indent(commandline, '  ')] : []),
    `</domain>`,
  ];
  return parts.join('\n') + '\n';
}

/** QEMU's version ('7.2.22') from `qemu-system-x86_64 --version`. */
export async function qemuVersion(binary: string): Promise<string> {
  const { stdout } = await execFileP(binary, ['--version']);
  const m = /version (\d+\.\d+\.\d+)/.exec(stdout);
  if (!m) throw new Error(`cannot read the QEMU version from: ${stdout}`);
  return m[1]!;
}

/** Busybox ping's summary line. */
export function pingReceived(output: string): { sent: number; received: number } {
  const m = /(\d+) packets transmitted, (\d+) packets received/.exec(output);
  if (!m) throw new Error(`no ping summary in:\n${output}`);
  return { sent: Number(m[1]), received: Number(m[2]) };
}
