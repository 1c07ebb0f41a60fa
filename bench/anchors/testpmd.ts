// Anchor DUT: DPDK's testpmd with two net_vhost ports (vhost-user server sockets, client=0) in io forwarding,
// port 0 ↔ port 1: raw DPDK vhost with no switching logic, the upper bound of what a vhost-user switch can do
// on one core. Main and forwarding lcores both on the DUT CPU (--lcores=0@CPU,1@CPU).
//
// testpmd does not report processing cycles per packet: its --record-core-cycles figure counts the cycles of
// empty polls too, so it measures the load, not the cost; the harness leaves the column empty for testpmd.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startTestpmd, type Testpmd } from '../../harness/testpmd.js';
import type { Dut, WindowStats } from '../types.js';
import { dpdkVersion } from '../lib/versions.js';

export class TestpmdDut implements Dut {
  readonly name = 'testpmd' as const;
  readonly sockets: string[];
  private t: Testpmd | undefined;
  private readonly dir: string;

  constructor(private readonly o: { cpu: number; baseDir?: string }) {
    this.dir = fs.mkdtempSync(path.join(o.baseDir ?? os.tmpdir(), 'vsb-tp-'));
    this.sockets = [path.join(this.dir, 'v0.sock'), path.join(this.dir, 'v1.sock')];
  }

  get pid(): number {
    const pid = this.t?.pid;
    if (!pid) throw new Error('testpmd DUT is not running');
    return pid;
  }

  async start(): Promise<void> {
    this.t = await startTestpmd({
      name: 'dut',
      cpu: this.o.cpu,
      ports: this.sockets.map((s) => ({ type: 'vhost' as const, iface: s, client: false })),
      memMiB: 256,
      mbufs: 16384,
      fwd: 'io',
    });
    await this.t.cmd('start');
  }

  async windowStart(): Promise<void> {}

  async windowEnd(): Promise<WindowStats> {
    return {};
  }

  async stop(): Promise<void> {
    if (this.t) await this.t.quit(5000).catch(() => this.t?.kill('SIGKILL'));
    this.t = undefined;
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  version(): string {
    return `DPDK ${dpdkVersion()}`;
  }
}
