// vhost-switch as the DUT: the real daemon (`node bin/vhost-switch.js run`), pinned with all its threads to the DUT
// CPU, one poll thread, N server-mode ports (a learning switch; no static FDB entries). Its cycles per packet come
// from its own poll-thread counters (GET /v1/stats → threads[].busyCycles / packets), taken as deltas over the window.
import { spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ApiClient } from '../../src/cli/client.js';
import type { Dut, WindowStats } from '../types.js';
import { repoRoot, startDaemon, stopChild, waitFor } from '../lib/util.js';

interface ThreadStatsJson {
  thread: number;
  busyCycles: number | string;
  idleCycles: number | string;
  packets: number | string;
  busyPasses: number | string;
}

export interface VhostSwitchDutOptions {
  cpu: number;
  ports?: number;
  /** Where the run directory goes (a fresh one is made inside). */
  baseDir?: string;
  logDir: string;
}

export class VhostSwitchDut implements Dut {
  readonly name = 'vhost-switch' as const;
  readonly sockets: string[];
  private child: ChildProcess | undefined;
  private readonly dir: string;
  private readonly api: ApiClient;
  private before: ThreadStatsJson[] = [];

  constructor(private readonly o: VhostSwitchDutOptions) {
    this.dir = fs.mkdtempSync(path.join(o.baseDir ?? os.tmpdir(), 'vsb-vs-'));
    const n = o.ports ?? 2;
    this.sockets = Array.from({ length: n }, (_, i) => path.join(this.dir, `p${i}.sock`));
    this.api = new ApiClient(path.join(this.dir, 'control.sock'), 5000);
  }

  get pid(): number {
    if (!this.child?.pid) throw new Error('vhost-switch is not running');
    return this.child.pid;
  }

  async start(): Promise<void> {
    const config = {
      switch: { threads: 1, cpus: [this.o.cpu] },
      ports: this.sockets.map((s, i) => ({ name: `p${i}`, mode: 'server', socket: s, queues: 1, mtu: 1500 })),
    };
    const cfgFile = path.join(this.dir, 'config.json');
    fs.writeFileSync(cfgFile, JSON.stringify(config, null, 2));
    const bin = path.join(repoRoot, 'bin', 'vhost-switch.js');
    // taskset: the node main thread and libuv's pool share the DUT CPU with the poll thread, as OVS's and testpmd's
    // control threads do.
    const argv = ['taskset', '-c', String(this.o.cpu), process.execPath, bin, 'run', '--run-dir', this.dir,
      '--state-dir', path.join(this.dir, 'state'), '--config', cfgFile, '--log-level', process.env.VSB_SWITCH_LOG_LEVEL ?? 'warn'];
    this.child = startDaemon('vhost-switch', argv, { logFile: path.join(this.o.logDir, `vhost-switch-${path.basename(this.dir)}.log`) });
    const child = this.child;
    await waitFor(
      async () => {
        if (child.exitCode !== null) throw new Error('exited');
        await this.api.call('GET', '/v1/stats');
        return this.sockets.every((s) => fs.existsSync(s));
      },
      20_000,
      'vhost-switch to listen on its sockets',
    ).catch((e: Error) => {
      throw new Error(`vhost-switch did not start: ${e.message}${child.exitCode !== null ? ` (exit ${child.exitCode})` : ''}`);
    });
  }

  /** Adds a port through the control API (the NIC bench adds a nic port beside the vhost-user ones). */
  async addPort(spec: Record<string, unknown>): Promise<{ activeBackend?: string; backendNote?: string }> {
    return this.api.call('POST', '/v1/ports', spec);
  }

  private async threads(): Promise<ThreadStatsJson[]> {
    const s = await this.api.call<{ threads: ThreadStatsJson[] }>('GET', '/v1/stats');
    return s.threads;
  }

  async windowStart(): Promise<void> {
    this.before = await this.threads();
  }

  async windowEnd(): Promise<WindowStats> {
    const after = await this.threads();
    let busy = 0, idle = 0, packets = 0, passes = 0;
    for (const t of after) {
      const b = this.before.find((x) => x.thread === t.thread);
      busy += Number(t.busyCycles) - Number(b?.busyCycles ?? 0);
      idle += Number(t.idleCycles) - Number(b?.idleCycles ?? 0);
      packets += Number(t.packets) - Number(b?.packets ?? 0);
      passes += Number(t.busyPasses) - Number(b?.busyPasses ?? 0);
    }
    return {
      cyclesPerPacket: packets > 0 ? busy / packets : undefined,
      busy: busy + idle > 0 ? busy / (busy + idle) : undefined,
      framesPerPass: passes > 0 ? packets / passes : undefined,
    };
  }

  async stop(): Promise<void> {
    if (this.child) await stopChild(this.child);
    this.child = undefined;
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  version(): string {
    let v = 'unknown';
    try {
      v = (JSON.parse(fs.readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version;
    } catch {
      /* keep unknown */
    }
    const g = spawnSync('git', ['-C', repoRoot, 'describe', '--always', '--dirty'], { encoding: 'utf8' });
    return g.status === 0 ? `${v} (${g.stdout.trim()})` : v;
  }
}
