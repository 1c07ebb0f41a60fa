// Small helpers of the benchmark harness: time, statistics, processes and /proc.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { deathSigPrefix, trackChild } from '../../harness/env.js';

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** The repository root: the nearest directory above this file holding binding.gyp (works from bench/ and dist/bench/). */
export const repoRoot = (() => {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (fs.existsSync(path.join(dir, 'binding.gyp'))) return dir;
    dir = path.dirname(dir);
  }
  throw new Error('bench: cannot find the repository root (binding.gyp)');
})();

export interface Spread {
  median: number;
  min: number;
  max: number;
  n: number;
}

/** Median with min and max; undefined when there are no finite values. */
export function spread(values: Array<number | undefined>): Spread | undefined {
  const v = values.filter((x): x is number => x !== undefined && Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return undefined;
  const mid = v.length >> 1;
  const median = v.length % 2 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
  return { median, min: v[0]!, max: v[v.length - 1]!, n: v.length };
}

let clkTck: number | undefined;
/** USER_HZ: the unit of utime/stime in /proc/PID/stat. */
export function clockTicks(): number {
  if (clkTck === undefined) {
    const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
    clkTck = Number(r.stdout.trim()) || 100;
  }
  return clkTck;
}

/** utime + stime of a process (all its threads), in seconds. */
export function cpuSeconds(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields 14 and 15 (utime, stime) are the 12th and 13th after the command name
  return (Number(f[11]) + Number(f[12])) / clockTicks();
}

/** Share of one core a process used over `seconds` (0.05 = 5%). */
export async function cpuShare(pid: number, seconds: number): Promise<number> {
  const c0 = cpuSeconds(pid);
  const t0 = process.hrtime.bigint();
  await sleep(seconds * 1000);
  const c1 = cpuSeconds(pid);
  const dt = Number(process.hrtime.bigint() - t0) / 1e9;
  return (c1 - c0) / dt;
}

/** Absolute path of a program or undefined. */
export function which(name: string): string | undefined {
  const r = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
  const p = r.stdout.trim();
  return r.status === 0 && p ? p : undefined;
}

/** Runs a command to completion; throws with its output on a non-zero exit. */
export function run(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: opts.env ?? process.env, timeout: opts.timeoutMs ?? 30_000 });
  if (r.error) throw new Error(`${cmd} ${args.join(' ')}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}: ${(r.stderr || r.stdout).trim()}`);
  return r.stdout;
}

/**
 * Starts a long-running child that the kernel kills if this process dies (setpriv --pdeathsig) and that the
 * test-support bookkeeping kills on exit; its output goes to logFile.
 */
export function startDaemon(name: string, argv: string[], opts: { env?: NodeJS.ProcessEnv; logFile: string }): ChildProcess {
  const full = [...deathSigPrefix(), ...argv];
  const log = fs.openSync(opts.logFile, 'a');
  const child = spawn(full[0]!, full.slice(1), { stdio: ['ignore', log, log], env: opts.env ?? process.env });
  fs.closeSync(log);
  trackChild(child, name);
  return child;
}

/** SIGTERM, then SIGKILL after graceMs; resolves when the child has exited. */
export async function stopChild(child: ChildProcess, graceMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(t);
}

/** Polls until fn() is truthy; throws `what` after timeoutMs. */
export async function waitFor<T>(fn: () => T | Promise<T>, timeoutMs: number, what: string, everyMs = 50): Promise<NonNullable<T>> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    let v: T | undefined;
    try {
      v = await fn();
    } catch {
      v = undefined;
    }
    if (v) return v as NonNullable<T>;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** Pins every thread of this process to `cpus` (taskset -a -p); false when taskset is missing or refuses. */
export function pinSelf(cpus: string): boolean {
  const r = spawnSync('taskset', ['-a', '-c', '-p', cpus, String(process.pid)], { encoding: 'utf8' });
  return r.status === 0;
}
