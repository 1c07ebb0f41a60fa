// Anchor DUT: OVS-DPDK 3.1 (Debian's openvswitch-switch-dpdk), bridge br0 with datapath_type=netdev, two
// dpdkvhostuser ports (OVS is the vhost-user server) and port-to-port OpenFlow rules. Everything runs from a
// private directory; nothing touches the system's OVS (/etc/openvswitch, /var/run/openvswitch, the service).
//
// The recipe, as this file runs it (DIR is a fresh /tmp/vsb-ovs-XXXXXX, CPU the DUT CPU, here 1 → mask 0x2):
//
//   export OVS_RUNDIR=DIR OVS_DBDIR=DIR OVS_LOGDIR=DIR        # sockets, pid files, logs, vhost-user sockets
//   ovsdb-tool create DIR/conf.db /usr/share/openvswitch/vswitch.ovsschema
//   ovsdb-server DIR/conf.db --remote=punix:DIR/db.sock --unixctl=DIR/ovsdb.ctl \
//       --pidfile=DIR/ovsdb.pid --log-file=DIR/ovsdb.log -vconsole:off            # foreground, our child
//   ovs-vsctl --db=unix:DIR/db.sock --no-wait init
//   ovs-vsctl --db=unix:DIR/db.sock --no-wait set Open_vSwitch . \
//       other_config:dpdk-init=true \
//       other_config:dpdk-lcore-mask=0x2 \            # DPDK main lcore (non-PMD threads) on the DUT CPU
//       other_config:pmd-cpu-mask=0x2 \               # one PMD thread, on the DUT CPU
//       other_config:dpdk-socket-mem=512 \            # 256 × 2 MiB hugepages (scripts/setup-host.sh reserves them)
//       other_config:n-handler-threads=1 other_config:n-revalidator-threads=1 \
//       'other_config:dpdk-extra=--no-pci --file-prefix=vsb-ovs-ID --no-telemetry'
//   unshare --net -- taskset -c 1 /usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk unix:DIR/db.sock \
//       --unixctl=DIR/vswitchd.ctl --pidfile=DIR/vswitchd.pid --log-file=DIR/vswitchd.log -vconsole:off
//   ovs-vsctl --db=unix:DIR/db.sock --timeout=60 add-br br0 -- set bridge br0 datapath_type=netdev \
//       -- add-port br0 vhu0 -- set Interface vhu0 type=dpdkvhostuser ofport_request=1 \
//       -- add-port br0 vhu1 -- set Interface vhu1 type=dpdkvhostuser ofport_request=2
//   ovs-ofctl del-flows unix:DIR/br0.mgmt
//   ovs-ofctl add-flow unix:DIR/br0.mgmt in_port=1,actions=output:2
//   ovs-ofctl add-flow unix:DIR/br0.mgmt in_port=2,actions=output:1
//   # generators connect to DIR/vhu0 and DIR/vhu1
//   ovs-appctl -t DIR/vswitchd.ctl dpif-netdev/pmd-stats-clear     # window start
//   ovs-appctl -t DIR/vswitchd.ctl dpif-netdev/pmd-stats-show      # window end: "avg processing cycles per packet"
//   ovs-appctl -t DIR/vswitchd.ctl exit --cleanup; kill ovsdb-server
//
// Notes from getting it to work here:
//  - The Debian alternative `ovs-vswitchd` points at the non-DPDK build by default; rather than switching the
//    system-wide alternative (update-alternatives --set ovs-vswitchd /usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk)
//    the harness runs the DPDK binary by its path. Its default pid file is named after the program
//    (ovs-vswitchd-dpdk.pid), so `ovs-appctl -t ovs-vswitchd` would not find it: we name the control socket.
//  - other_config:vhost-sock-dir is taken relative to OVS_RUNDIR ("DIR//tmp/…" does not exist); leaving it unset
//    puts the vhost-user sockets straight into OVS_RUNDIR.
//  - OVS adds --in-memory to the EAL arguments itself (no files under /var/run/dpdk); --file-prefix only keeps the
//    hugepage file names apart from other DPDK processes. --no-pci: no NIC is probed (and none is needed).
//  - The netdev datapath creates tap devices (ovs-netdev, br0) for the bridge's internal port. unshare --net keeps
//    them in a private network namespace that disappears with the process: nothing appears on the host network,
//    even if ovs-vswitchd is SIGKILLed. vhost-user sockets are files, so the namespace does not get in their way.
//  - dpdkvhostuser ports are deprecated in favour of dpdkvhostuserclient (OVS logs a warning); the server type is
//    used so that every DUT in the benchmark listens and the generators connect the same way.
//  - OVS's "avg processing cycles per packet" divides the PMD's busy cycles (iterations that got packets) by the
//    packets it received: the same definition as vhost-switch's busyCycles / packets.
import { type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Dut, WindowStats } from '../types.js';
import { run, sleep, startDaemon, stopChild, waitFor, which } from '../lib/util.js';
import { ovsVersion } from '../lib/versions.js';

export const OVS_DPDK_BINARY_CANDIDATES = ['/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk', '/usr/sbin/ovs-vswitchd-dpdk'];
const SCHEMA_CANDIDATES = ['/usr/share/openvswitch/vswitch.ovsschema', '/usr/local/share/openvswitch/vswitch.ovsschema'];

/** The ovs-vswitchd built with DPDK, or undefined (with the reason) when it is not installed. */
export function findOvsDpdk(): { binary?: string; missing?: string } {
  for (const c of OVS_DPDK_BINARY_CANDIDATES) if (fs.existsSync(c)) return { binary: c };
  const plain = which('ovs-vswitchd');
  if (plain && /DPDK/.test(run(plain, ['--version']))) return { binary: plain };
  return { missing: 'ovs-vswitchd with DPDK not found: apt-get install openvswitch-switch-dpdk' };
}

/** Parses `dpif-netdev/pmd-stats-show` for the PMD threads (not the main thread). */
export function parsePmdStats(text: string): { packets: number; cyclesPerPacket?: number; busy?: number } {
  let packets = 0, procCycles = 0, idleCycles = 0;
  const sections = text.split(/^(?=pmd thread|main thread)/m).filter((s) => s.startsWith('pmd thread'));
  for (const s of sections) {
    const num = (re: RegExp) => Number(re.exec(s)?.[1] ?? 0);
    packets += num(/packets received:\s*(\d+)/);
    procCycles += num(/processing cycles:\s*(\d+)/);
    idleCycles += num(/idle cycles:\s*(\d+)/);
  }
  return {
    packets,
    cyclesPerPacket: packets > 0 ? procCycles / packets : undefined,
    busy: procCycles + idleCycles > 0 ? procCycles / (procCycles + idleCycles) : undefined,
  };
}

export class OvsDut implements Dut {
  readonly name = 'ovs' as const;
  readonly sockets: string[];
  private readonly dir: string;
  private readonly env: NodeJS.ProcessEnv;
  private ovsdb: ChildProcess | undefined;
  private vswitchd: ChildProcess | undefined;
  private readonly binary: string;

  private readonly ports: string[];

  /**
   * `ports` names the dpdkvhostuser ports (default vhu0, vhu1); `learning` replaces the port-to-port rules of the
   * two-port benchmark by one NORMAL flow (an L2 learning switch, as a migration needs: the RARP that DPDK's vhost
   * library sends for a migrated guest moves its MAC to the new port).
   */
  constructor(private readonly o: { cpu: number; baseDir?: string; logDir: string; socketMemMiB?: number; ports?: string[]; learning?: boolean }) {
    const found = findOvsDpdk();
    if (!found.binary) throw new Error(found.missing);
    this.binary = found.binary;
    this.dir = fs.mkdtempSync(path.join(o.baseDir ?? os.tmpdir(), 'vsb-ovs-'));
    this.ports = o.ports ?? ['vhu0', 'vhu1'];
    this.sockets = this.ports.map((p) => path.join(this.dir, p));
    this.env = { ...process.env, OVS_RUNDIR: this.dir, OVS_DBDIR: this.dir, OVS_LOGDIR: this.dir };
  }

  get pid(): number {
    if (!this.vswitchd?.pid) throw new Error('ovs-vswitchd is not running');
    return this.vswitchd.pid;
  }

  private vsctl(...args: string[]): string {
    return run('ovs-vsctl', [`--db=unix:${path.join(this.dir, 'db.sock')}`, ...args], { env: this.env, timeoutMs: 90_000 });
  }

  private appctl(...args: string[]): string {
    return run('ovs-appctl', ['-t', path.join(this.dir, 'vswitchd.ctl'), ...args], { env: this.env });
  }

  private ofctl(...args: string[]): string {
    const [cmd, ...rest] = args;
    return run('ovs-ofctl', [cmd!, `unix:${path.join(this.dir, 'br0.mgmt')}`, ...rest], { env: this.env });
  }

  async start(): Promise<void> {
    const d = this.dir;
    const schema = SCHEMA_CANDIDATES.find((s) => fs.existsSync(s));
    if (!schema) throw new Error('vswitch.ovsschema not found: apt-get install openvswitch-common');
    run('ovsdb-tool', ['create', path.join(d, 'conf.db'), schema], { env: this.env });
    const log = path.join(this.o.logDir, `ovs-${path.basename(d)}.log`);
    this.ovsdb = startDaemon(
      'ovsdb-server',
      ['ovsdb-server', path.join(d, 'conf.db'), `--remote=punix:${path.join(d, 'db.sock')}`, `--unixctl=${path.join(d, 'ovsdb.ctl')}`,
        `--pidfile=${path.join(d, 'ovsdb.pid')}`, `--log-file=${path.join(d, 'ovsdb.log')}`, '-vconsole:off'],
      { env: this.env, logFile: log },
    );
    await waitFor(() => fs.existsSync(path.join(d, 'db.sock')), 10_000, 'ovsdb-server');
    const mask = `0x${(1n << BigInt(this.o.cpu)).toString(16)}`;
    this.vsctl('--no-wait', 'init');
    this.vsctl(
      '--no-wait', 'set', 'Open_vSwitch', '.',
      'other_config:dpdk-init=true',
      `other_config:dpdk-lcore-mask=${mask}`,
      `other_config:pmd-cpu-mask=${mask}`,
      `other_config:dpdk-socket-mem=${this.o.socketMemMiB ?? 512}`,
      'other_config:n-handler-threads=1',
      'other_config:n-revalidator-threads=1',
      `other_config:dpdk-extra=--no-pci --file-prefix=vsb-ovs-${process.pid}-${path.basename(d).slice(-6)} --no-telemetry`,
    );
    this.vswitchd = startDaemon(
      'ovs-vswitchd',
      ['unshare', '--net', '--', 'taskset', '-c', String(this.o.cpu), this.binary, `unix:${path.join(d, 'db.sock')}`,
        `--unixctl=${path.join(d, 'vswitchd.ctl')}`, `--pidfile=${path.join(d, 'vswitchd.pid')}`,
        `--log-file=${path.join(d, 'vswitchd.log')}`, '-vconsole:off'],
      { env: this.env, logFile: log },
    );
    const vs = this.vswitchd;
    try {
      await waitFor(() => {
        if (vs.exitCode !== null) throw new Error('exited');
        return fs.existsSync(path.join(d, 'vswitchd.ctl'));
      }, 30_000, 'ovs-vswitchd');
      this.vsctl(
        '--timeout=60', 'add-br', 'br0', '--', 'set', 'bridge', 'br0', 'datapath_type=netdev',
        ...this.ports.flatMap((p, i) => ['--', 'add-port', 'br0', p, '--', 'set', 'Interface', p, 'type=dpdkvhostuser', `ofport_request=${i + 1}`]),
      );
      await waitFor(() => fs.existsSync(path.join(d, 'br0.mgmt')) && this.sockets.every((s) => fs.existsSync(s)), 30_000, 'OVS vhost-user sockets');
      this.ofctl('del-flows');
      if (this.o.learning) {
        this.ofctl('add-flow', 'actions=NORMAL');
      } else {
        this.ofctl('add-flow', 'in_port=1,actions=output:2');
        this.ofctl('add-flow', 'in_port=2,actions=output:1');
      }
    } catch (e) {
      const tail = this.logTail();
      await this.stop();
      throw new Error(`OVS-DPDK did not start: ${(e as Error).message}\n${tail}`);
    }
  }

  private logTail(): string {
    try {
      return fs.readFileSync(path.join(this.dir, 'vswitchd.log'), 'utf8').split('\n').slice(-25).join('\n');
    } catch {
      return '';
    }
  }

  async windowStart(): Promise<void> {
    this.appctl('dpif-netdev/pmd-stats-clear');
  }

  async windowEnd(): Promise<WindowStats> {
    const s = parsePmdStats(this.appctl('dpif-netdev/pmd-stats-show'));
    return { cyclesPerPacket: s.cyclesPerPacket, busy: s.busy };
  }

  async stop(): Promise<void> {
    if (this.vswitchd && this.vswitchd.exitCode === null && this.vswitchd.signalCode === null) {
      const exited = new Promise<void>((r) => this.vswitchd!.once('exit', () => r()));
      try {
        this.appctl('exit', '--cleanup');
      } catch {
        /* fall through to signals */
      }
      await Promise.race([exited, sleep(5000)]);
      await stopChild(this.vswitchd, 3000);
    }
    if (this.ovsdb) await stopChild(this.ovsdb, 3000);
    this.vswitchd = this.ovsdb = undefined;
    try {
      fs.copyFileSync(path.join(this.dir, 'vswitchd.log'), path.join(this.o.logDir, `ovs-vswitchd-${path.basename(this.dir)}.log`));
    } catch {
      /* never started */
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  version(): string {
    return `OVS ${ovsVersion(this.binary)}`;
  }
}
