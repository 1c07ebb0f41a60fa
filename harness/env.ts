// Test environment helpers: required tools, run directories, socket paths and
// the bookkeeping that makes sure no child process (QEMU, testpmd, ...) outlives
// the test file that started it.
//
// Rule: a missing tool makes the test FAIL with a message saying what to
// install; tests never skip because the host is incomplete.
import { spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Repository root: the nearest directory above this file with binding.gyp (harness/ from source, dist/harness/
 * when the bench runs compiled). */
export const repoRoot = (() => {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!fs.existsSync(path.join(dir, 'binding.gyp')) && path.dirname(dir) !== dir) dir = path.dirname(dir);
  return dir;
})();
/** Build caches (guest images, ...), git-ignored. */
export const cacheDir = path.join(repoRoot, '.cache');
/** Console logs of guests and testpmd runs, kept for debugging. */
export const logsDir = path.join(cacheDir, 'logs');

/** Debian package that provides each tool the tests use. */
const TOOL_PACKAGES: Record<string, string> = {
  'qemu-system-x86_64': 'qemu-system-x86',
  'dpdk-testpmd': 'dpdk',
  'dpdk-devbind.py': 'dpdk',
  'ovs-vswitchd': 'openvswitch-switch-dpdk',
  'ovs-vsctl': 'openvswitch-switch',
  'ovsdb-server': 'openvswitch-switch',
  'ovsdb-tool': 'openvswitch-switch',
  libvirtd: 'libvirt-daemon-system',
  virsh: 'libvirt-clients',
  busybox: 'busybox-static',
  iperf3: 'iperf3',
  ip: 'iproute2',
  cpio: 'cpio',
  insmod: 'kmod',
  stdbuf: 'coreutils',
  setpriv: 'util-linux',
};

const SEARCH_PATH = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];

/** Absolute path of `name` or undefined (searches PATH plus the sbin dirs). */
export function findTool(name: string): string | undefined {
  if (name.includes('/')) return isExecutable(name) ? name : undefined;
  const dirs = [...(process.env.PATH ?? '').split(':').filter(Boolean), ...SEARCH_PATH];
  for (const dir of dirs) {
    const p = path.join(dir, name);
    if (isExecutable(p)) return p;
  }
  return undefined;
}

function isExecutable(p: string): boolean {
  try {
    const st = fs.statSync(p);
    if (!st.isFile()) return false;
    fs.accessSync(p, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Error thrown when the host lacks something the test needs. */
export class MissingToolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MissingToolError';
  }
}

/**
 * Absolute path of a required tool. Throws MissingToolError (so the test fails,
 * it does not skip) naming the Debian package to install.
 */
export function requireTool(name: string, debianPackage?: string): string {
  const found = findTool(name);
  if (found) return found;
  const pkg = debianPackage ?? TOOL_PACKAGES[name];
  throw new MissingToolError(
    `required tool '${name}' was not found in PATH or the sbin directories` +
      (pkg ? `; install it with: apt-get install --no-install-recommends ${pkg}` : '') +
      ` (.ci/run installs everything the tests need)`,
  );
}

/** Requires several tools at once; the error lists all missing ones. */
export function requireTools(...names: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  const errors: string[] = [];
  for (const n of names) {
    try {
      out[n] = requireTool(n);
    } catch (e) {
      errors.push((e as Error).message);
    }
  }
  if (errors.length) throw new MissingToolError(errors.join('\n'));
  return out;
}

/** Fails unless running as root (vhost-user tests need hugepages, netns, ...). */
export function requireRoot(): void {
  if (process.getuid && process.getuid() !== 0) {
    throw new MissingToolError('this test must run as root (hugepages, network namespaces)');
  }
}

/** Hugepage state from /proc/meminfo (2 MiB pages) and whether hugetlbfs is mounted. */
export function hugepageStatus(): { total: number; free: number; mounted: boolean; mountPoint?: string } {
  const mem = fs.readFileSync('/proc/meminfo', 'utf8');
  const num = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(mem)?.[1] ?? 0);
  const mounts = fs.readFileSync('/proc/mounts', 'utf8').split('\n');
  const mountLine = mounts.find((l) => l.split(' ')[2] === 'hugetlbfs');
  return { total: num('HugePages_Total'), free: num('HugePages_Free'), mounted: !!mountLine, mountPoint: mountLine?.split(' ')[1] };
}

/**
 * Makes sure at least `minFreePages` 2 MiB hugepages are free and hugetlbfs is
 * mounted: runs scripts/setup-host.sh when not, and throws a clear error if that
 * does not help.
 */
export function requireHugepages(minFreePages = 256): void {
  let st = hugepageStatus();
  if (st.mounted && st.free >= minFreePages) return;
  const script = path.join(repoRoot, 'scripts/setup-host.sh');
  const r = spawnSync('bash', [script], { encoding: 'utf8' });
  st = hugepageStatus();
  if (st.mounted && st.free >= minFreePages) return;
  throw new MissingToolError(
    `DPDK needs hugepages: ${st.free} free 2 MiB pages (need ${minFreePages}), hugetlbfs ` +
      `${st.mounted ? `mounted at ${st.mountPoint}` : 'not mounted'}. Run scripts/setup-host.sh as root` +
      ` (it said: ${(r.stdout + r.stderr).trim() || `exit ${r.status}`}).` +
      ` Leftover DPDK processes may hold pages: check /dev/hugepages.`,
  );
}

let seq = 0;
/** A short id unique within this machine for this run: "<pid36><seq36><rand>". */
export function uniqueId(prefix = ''): string {
  seq += 1;
  return `${prefix}${process.pid.toString(36)}${seq.toString(36)}${randomBytes(2).toString('hex')}`;
}

const RUN_DIR_PREFIX = 'vs-test-';

/**
 * A fresh directory for one test's sockets, pid files and logs, under /tmp so
 * that socket paths stay short (AF_UNIX paths are limited to 107 bytes).
 * Removed by cleanupAll() unless VS_KEEP_RUNDIRS=1.
 */
export function makeRunDir(label = 'run'): string {
  reapStaleRuns();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `${RUN_DIR_PREFIX}${label.replace(/[^\w.-]/g, '_').slice(0, 20)}-`));
  fs.writeFileSync(path.join(dir, 'owner.pid'), String(process.pid));
  runDirs.push(dir);
  return dir;
}

/** A socket path in `dir` that no other test uses; throws if too long for AF_UNIX. */
export function uniqueSocketPath(dir: string, name = 'sock'): string {
  const p = path.join(dir, `${name}-${uniqueId()}.sock`);
  if (Buffer.byteLength(p) > 107) throw new Error(`socket path too long for AF_UNIX (${p.length} > 107): ${p}`);
  return p;
}

// ---------------------------------------------------------------------------
// Child process tracking.

interface Tracked {
  child: ChildProcess;
  name: string;
  pidFile?: string;
  onCleanup?: () => void | Promise<void>;
}
// Kept on globalThis: with vitest's singleFork pool every test file re-imports
// this module in the same process, and there must be one registry and one set
// of exit handlers per process.
interface Registry {
  children: Set<Tracked>;
  cleanups: Array<() => void | Promise<void>>;
  runDirs: string[];
  exitHandlerInstalled: boolean;
}
const registry: Registry = ((globalThis as { __vsTestRegistry?: Registry }).__vsTestRegistry ??= {
  children: new Set(),
  cleanups: [],
  runDirs: [],
  exitHandlerInstalled: false,
});
const { children, cleanups, runDirs } = registry;

/**
 * Registers a child so that cleanupAll() and process exit kill it. Also writes
 * its pid into the newest run dir so that a later run can kill it if this test
 * process dies hard (SIGKILL, timeout) without cleaning up. Returns an untrack
 * function (called automatically when the child exits).
 */
export function trackChild(child: ChildProcess, name: string, onCleanup?: () => void | Promise<void>): () => void {
  installExitHandler();
  const t: Tracked = { child, name, onCleanup };
  const dir = currentRunDir();
  if (dir && child.pid) {
    t.pidFile = path.join(dir, `child-${child.pid}.pid`);
    try {
      fs.writeFileSync(t.pidFile, `${child.pid}\n${procStartTime(child.pid) ?? ''}\n${name}\n`);
    } catch {
      t.pidFile = undefined;
    }
  }
  children.add(t);
  const untrack = () => {
    children.delete(t);
    if (t.pidFile) fs.rmSync(t.pidFile, { force: true });
  };
  child.once('exit', untrack);
  return untrack;
}

/** The newest run dir of this process (one is made if there is none). */
export function currentRunDir(): string {
  return runDirs[runDirs.length - 1] ?? makeRunDir('proc');
}

/**
 * Records files that a child leaves behind if it is SIGKILLed (e.g. DPDK
 * hugepage files `/dev/hugepages/<prefix>map_*`): every entry of `dir` whose
 * name starts with `prefix` is removed by reapStaleRuns() once this test
 * process is gone. Normal cleanup is the caller's job.
 */
export function recordLeftovers(dir: string, prefix: string): void {
  if (!prefix) throw new Error('recordLeftovers: empty prefix');
  const f = path.join(currentRunDir(), `leftovers-${uniqueId()}.json`);
  fs.writeFileSync(f, JSON.stringify({ dir, prefix }));
}

/** Registers a cleanup action run (once, in reverse order) by cleanupAll(). */
export function onCleanup(fn: () => void | Promise<void>): void {
  cleanups.push(fn);
}

/** Currently tracked children (name and pid), e.g. to assert nothing leaked. */
export function trackedChildren(): Array<{ name: string; pid: number | undefined }> {
  return [...children].map((t) => ({ name: t.name, pid: t.child.pid }));
}

/**
 * Kills every tracked child (SIGTERM, then SIGKILL after graceMs), runs the
 * registered cleanups and removes run dirs. Called from the vitest setup file
 * after each test file; tests may call it too.
 */
export async function cleanupAll(graceMs = 3000): Promise<void> {
  const list = [...children];
  await Promise.all(list.map((t) => killChild(t.child, graceMs)));
  for (const t of list) {
    try {
      await t.onCleanup?.();
    } catch {
      /* best effort */
    }
  }
  while (cleanups.length) {
    const fn = cleanups.pop()!;
    try {
      await fn();
    } catch {
      /* best effort */
    }
  }
  if (process.env.VS_KEEP_RUNDIRS !== '1') {
    while (runDirs.length) fs.rmSync(runDirs.pop()!, { recursive: true, force: true });
  }
}

/** SIGTERM, wait up to graceMs, then SIGKILL; resolves when the child is gone. */
export function killChild(child: ChildProcess, graceMs = 3000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      try {
        child.kill('SIGKILL');
      } catch {
        /* gone */
      }
    }, graceMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    try {
      child.kill('SIGTERM');
    } catch {
      clearTimeout(timer);
      resolve();
    }
  });
}

function installExitHandler(): void {
  if (registry.exitHandlerInstalled) return;
  registry.exitHandlerInstalled = true;
  // Last resort, synchronous: the test process is going away.
  process.on('exit', () => {
    for (const t of children) {
      try {
        t.child.kill('SIGKILL');
      } catch {
        /* gone */
      }
    }
  });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      for (const t of children) {
        try {
          t.child.kill('SIGKILL');
        } catch {
          /* gone */
        }
      }
      process.exit(128 + (os.constants.signals[sig] ?? 0));
    });
  }
}

function procStartTime(pid: number): string | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // field 22 (starttime) counted after the ")" that ends the command name
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Kills children left behind by earlier test processes that died without
 * cleaning up: for every /tmp/vs-test-* run dir whose owner pid is gone, each
 * recorded child pid is SIGKILLed if it is still the same process (same start
 * time), and the dir is removed. Only processes this harness started are touched.
 */
export function reapStaleRuns(): void {
  let entries: string[];
  try {
    entries = fs.readdirSync(os.tmpdir()).filter((e) => e.startsWith(RUN_DIR_PREFIX));
  } catch {
    return;
  }
  for (const e of entries) {
    const dir = path.join(os.tmpdir(), e);
    let owner: number;
    try {
      owner = Number(fs.readFileSync(path.join(dir, 'owner.pid'), 'utf8'));
    } catch {
      continue;
    }
    if (!owner || pidAlive(owner)) continue;
    for (const f of safeReaddir(dir).filter((n) => /^child-\d+\.pid$/.test(n))) {
      try {
        const [pidStr, start] = fs.readFileSync(path.join(dir, f), 'utf8').split('\n');
        const pid = Number(pidStr);
        if (pid && start && procStartTime(pid) === start) process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    for (const f of safeReaddir(dir).filter((n) => /^leftovers-.*\.json$/.test(n))) {
      try {
        const { dir: d, prefix } = JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')) as { dir: string; prefix: string };
        if (!prefix) continue;
        for (const e of safeReaddir(d)) if (e.startsWith(prefix)) fs.rmSync(path.join(d, e), { recursive: true, force: true });
      } catch {
        /* best effort */
      }
    }
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function safeReaddir(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}

/**
 * Command prefix that makes the kernel SIGKILL the child when the spawning
 * thread dies (util-linux setpriv --pdeathsig), so a crashed test never leaves
 * a busy-polling testpmd or a QEMU behind. Empty when setpriv is unavailable.
 */
export function deathSigPrefix(): string[] {
  const setpriv = findTool('setpriv');
  return setpriv ? [setpriv, '--pdeathsig', 'SIGKILL', '--'] : [];
}

/** Creates logsDir if needed and returns a log file path for `name`. */
export function logFilePath(name: string): string {
  fs.mkdirSync(logsDir, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  return path.join(logsDir, `${name.replace(/[^\w.-]/g, '_')}-${stamp}.log`);
}

/** Only link-local addresses may be used by guests and test hosts. */
export function assertLinkLocal(addr: string): void {
  const a = addr.split('/')[0]!.toLowerCase();
  const v4 = /^169\.254\.(\d{1,3})\.(\d{1,3})$/.exec(a);
  if (v4 && Number(v4[1]) <= 255 && Number(v4[2]) <= 255) return;
  if (/^fe[89ab][0-9a-f]:/.test(a)) return;
  throw new Error(`address ${addr} is not link-local (169.254.0.0/16 or fe80::/10); tests may only use link-local addresses`);
}

/** Resolves after ms milliseconds. */
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls `fn` until it returns a truthy value or timeoutMs passes (then throws). */
export async function waitUntil<T>(fn: () => T | Promise<T>, timeoutMs: number, what = 'condition', intervalMs = 100): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}
