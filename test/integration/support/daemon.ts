// Runs the real daemon (`node bin/vhost-switch.js run`) on the real data plane and the real CLI as child processes;
// a missing addon fails the test with the fix (no stand-in data plane: these tests claim the real daemon).
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { ApiClient } from '../../../src/cli/client.js';
import { repoRoot, trackChild, waitUntil } from '../../../harness/env.js';

export const BIN = path.join(repoRoot, 'bin', 'vhost-switch.js');

/** Fails with the fix when the CLI has not been compiled (npm test compiles first). */
export function requireBuild(): void {
  const entry = path.join(repoRoot, 'dist', 'src', 'cli', 'main.js');
  if (!fs.existsSync(entry)) throw new Error(`${entry} is missing: run \`npm run build:ts\` before these tests`);
}

export function nativeSwitchAvailable(): boolean {
  try {
    const addon = createRequire(import.meta.url)(path.join(repoRoot, 'build', 'Release', 'vhost_switch.node')) as { Switch?: unknown };
    return typeof addon.Switch === 'function';
  } catch {
    return false;
  }
}

function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  delete env.VHOST_SWITCH_RUN_DIR;
  delete env.VHOST_SWITCH_CONTROL;
  return env;
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export class DaemonProcess {
  stdout = '';
  stderr = '';
  readonly exited: Promise<Exit>;
  readonly api: ApiClient;

  private constructor(
    readonly child: ChildProcess,
    readonly runDir: string,
  ) {
    child.stdout!.on('data', (d: Buffer) => (this.stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    this.api = new ApiClient(path.join(runDir, 'control.sock'));
  }

  /** Spawns `run --run-dir RUN_DIR ...args`; does not wait. */
  static spawn(runDir: string, args: string[] = [], env: Record<string, string> = {}): DaemonProcess {
    requireBuild();
    if (!nativeSwitchAvailable()) throw new Error('the native addon is not built (npm run build:native): the daemon needs its data plane');
    const child = spawn(process.execPath, [BIN, 'run', '--run-dir', runDir, ...args], {
      cwd: runDir,
      env: childEnv(env),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    trackChild(child, 'vhost-switch');
    return new DaemonProcess(child, runDir);
  }

  /** Spawns and waits until the control API answers; throws with the daemon's stderr if it exits first. */
  static async start(runDir: string, args: string[] = [], env: Record<string, string> = {}): Promise<DaemonProcess> {
    const d = DaemonProcess.spawn(runDir, args, env);
    let exit: Exit | undefined;
    void d.exited.then((e) => (exit = e));
    await waitUntil(
      async () => {
        if (exit) throw new Error(`daemon exited (${exit.code ?? exit.signal}) before its API came up:\n${d.stderr}`);
        return d.api.request('GET', '/v1/health').then(
          (r) => r.status === 200,
          () => false,
        );
      },
      20_000,
      'the daemon control API',
      50,
    );
    return d;
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<Exit> {
    this.child.kill(signal);
    return this.exited;
  }

  alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** One CLI invocation against the daemon of `runDir` (via --run-dir unless args carry --control). */
export function cli(runDir: string | undefined, args: string[], timeoutMs = 20_000): Promise<CliResult> {
  requireBuild();
  const full = runDir === undefined ? args : ['--run-dir', runDir, ...args];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...full], { env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    trackChild(child, `vhost-switch ${args[0] ?? ''}`);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}
