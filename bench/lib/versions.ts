// Versions of the anchors and facts about the machine, for the results table.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';

function out(cmd: string, args: string[]): string | undefined {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 10_000 });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

/** The installed DPDK (Debian package version, else pkg-config). */
export function dpdkVersion(): string {
  return out('dpkg-query', ['-W', '-f', '${Version}', 'dpdk']) ?? out('pkg-config', ['--modversion', 'libdpdk']) ?? 'unknown';
}

/** "3.1.0 (DPDK 22.11.11)" from `ovs-vswitchd-dpdk --version`. */
export function ovsVersion(binary: string): string {
  const v = out(binary, ['--version']);
  if (!v) return 'unknown';
  const ovs = /\(Open vSwitch\)\s+(\S+)/.exec(v)?.[1] ?? v.split('\n')[0]!;
  const dpdk = /DPDK\s+(\S+)/.exec(v)?.[1];
  return dpdk ? `${ovs} (DPDK ${dpdk})` : ovs;
}

export interface Machine {
  cpuModel: string;
  cpus: number;
  /** CPUs this process may use (the benchmark needs two: generator and DUT). */
  allowedCpus: string;
  memGiB: number;
  kernel: string;
  os: string;
  node: string;
  dpdk: string;
  ovs: string;
  hugepages: string;
  date: string;
  loadAvg: number[];
}

export function machine(ovsBinary: string | undefined): Machine {
  const cpuinfo = fs.readFileSync('/proc/cpuinfo', 'utf8');
  const model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim() ?? os.cpus()[0]?.model ?? 'unknown';
  const mhz = /^cpu MHz\s*:\s*([\d.]+)$/m.exec(cpuinfo)?.[1];
  const osRelease = (() => {
    try {
      return /^PRETTY_NAME="?([^"\n]+)"?$/m.exec(fs.readFileSync('/etc/os-release', 'utf8'))?.[1] ?? 'unknown';
    } catch {
      return 'unknown';
    }
  })();
  const meminfo = fs.readFileSync('/proc/meminfo', 'utf8');
  const hp = (k: string) => new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(meminfo)?.[1];
  return {
    cpuModel: mhz ? `${model} (${Math.round(Number(mhz))} MHz)` : model,
    cpus: os.cpus().length,
    allowedCpus: out('sh', ['-c', `grep Cpus_allowed_list /proc/${process.pid}/status | cut -f2`]) ?? '?',
    memGiB: Math.round(os.totalmem() / 2 ** 30),
    kernel: os.release(),
    os: osRelease,
    node: process.version,
    dpdk: dpdkVersion(),
    ovs: ovsBinary ? ovsVersion(ovsBinary) : 'not installed',
    hugepages: `${hp('HugePages_Total') ?? '?'} × ${hp('Hugepagesize') ?? '?'} kB`,
    date: new Date().toISOString(),
    loadAvg: os.loadavg().map((x) => Math.round(x * 100) / 100),
  };
}
