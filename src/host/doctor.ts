// `vhost-switch doctor`: does this host have what vhost-user guests need, and if not, how to fix it.
//
// What the host is (QEMU, KVM, libvirt, memory, users, the socket directory) is read once, through a HostProbe
// (probe.ts; tests pass a fake), by doctor-facts.ts with the parsers of doctor-parse.ts; then each check of CHECKS
// judges one concern from those facts. The checks run in the table's order, which is the order of the report.
import path from 'node:path';
import { versionAtLeast } from '../attach/vif-port.js';
import { apparmorAllowsRw, canAccess, parseGetenforce, parseNovaFileBackedMemory, selinuxType, type Version } from './doctor-parse.js';
import { probeHost, type Facts, type ProbeOptions } from './doctor-facts.js';
import type { FileStat } from './probe.js';

export interface DoctorCheck {
  name: string;
  ok: boolean;
  detail: string;
  /** How to fix it, when not ok. */
  fix?: string;
  /** Only an 'error' that is not ok makes the whole result not ok. */
  severity: 'error' | 'warning';
}

export interface DoctorResult {
  ok: boolean;
  checks: DoctorCheck[];
  report: string;
}

export type DoctorOptions = ProbeOptions;

/**
 * What a check found. 'fail' fails the doctor (an error), 'warn' does not (a warning); 'skip' passes because what
 * the check looks at is not in force on this host (not installed, disabled).
 */
export interface Verdict {
  status: 'ok' | 'warn' | 'fail' | 'skip';
  detail: string;
  fix?: string;
}

const ok = (detail: string): Verdict => ({ status: 'ok', detail });
const skip = (detail: string): Verdict => ({ status: 'skip', detail });
const warn = (detail: string, fix: string): Verdict => ({ status: 'warn', detail, fix });
const fail = (detail: string, fix: string): Verdict => ({ status: 'fail', detail, fix });

function modeString(st: FileStat): string {
  return (st.mode & 0o7777).toString(8).padStart(4, '0');
}

// ---------------------------------------------------------------------------------------------
// The checks

interface Check {
  name: string;
  /** What it checks. */
  what: string;
  /** How --json labels a pass ('ok'); a failure is labelled by its verdict: 'fail' an error, 'warn' and 'skip' a warning. */
  severity: DoctorCheck['severity'];
  /** undefined: the check does not apply to this host. */
  run(f: Facts): Verdict | undefined | Promise<Verdict | undefined>;
}

const versionText = (v: Version) => `${v.major}.${v.minor}.${v.micro}`;

const CHECKS: readonly Check[] = [
  {
    name: 'qemu',
    what: 'a QEMU binary that runs and is 2.12 or newer',
    severity: 'error',
    run({ qemu }) {
      if (!qemu.path) return fail(`no ${qemu.name} (or qemu-kvm) on PATH`, 'install QEMU: apt-get install qemu-system-x86 (Debian/Ubuntu) or dnf install qemu-kvm (Fedora/RHEL); or pass the binary with --qemu PATH');
      if (!qemu.version) return fail(`${qemu.path} did not report a version${qemu.ran ? '' : ' (cannot run it)'}`, `check that ${qemu.path} runs: ${qemu.path} --version`);
      if (!versionAtLeast(qemu.version, 2, 12)) return fail(`QEMU ${qemu.version.text} at ${qemu.path} is too old`, 'vhost-user with reconnect and memfd guest memory needs QEMU 2.12 or newer: upgrade QEMU');
      return ok(`QEMU ${versionText(qemu.version)} at ${qemu.path}`);
    },
  },
  {
    name: 'qemu-vhost-user',
    what: "QEMU's vhost-user netdev (and which memory backends it has)",
    severity: 'error',
    run({ qemu }) {
      if (!qemu.version) return undefined;
      if (!qemu.backends.includes('vhost-user')) return fail(`${qemu.path} lacks the vhost-user netdev`, 'use a QEMU built with vhost-user support (the distribution qemu-system packages have it)');
      return ok(`netdev vhost-user; memory backends ${qemu.objects.filter((o) => o.startsWith('memory-backend-')).join(', ') || 'unknown'}`);
    },
  },
  {
    name: 'kvm',
    what: '/dev/kvm, openable read-write (else guests run under TCG)',
    severity: 'error',
    run({ kvm }) {
      if (!kvm.st) return warn('/dev/kvm is missing: guests run under TCG (emulation, much slower)', 'enable virtualization in the firmware (or nested virtualization for a VM host) and load kvm_intel or kvm_amd (modprobe kvm_intel)');
      if (!kvm.usable) return warn(`/dev/kvm (mode ${modeString(kvm.st)}) cannot be opened read-write by this user`, 'add the user that runs QEMU to the group owning /dev/kvm (usermod -aG kvm USER)');
      return ok('/dev/kvm usable');
    },
  },
  {
    name: 'qemu-7.2-tcg-msix',
    what: 'QEMU 7.2 without KVM, whose vhost-user NICs need vectors=0',
    severity: 'warning',
    run({ qemu, kvm }) {
      if (!(qemu.version && qemu.version.major === 7 && qemu.version.minor === 2)) return undefined;
      if (kvm.usable) return ok('QEMU 7.2: guests started without KVM (TCG) need vectors=0 on vhost-user NICs; KVM is usable here');
      return warn(
        'QEMU 7.2 without KVM: a vhost-user virtio-net-pci NIC with MSI-X crashes QEMU under TCG',
        "give each vhost-user NIC vectors=0: QEMU -device virtio-net-pci,...,vectors=0; libvirt <qemu:override> with <qemu:property name='vectors' type='unsigned' value='0'/>, and for NICs hot-plugged with virsh attach-device (which get no override) <qemu:commandline> -global virtio-net-pci.vectors=0 in the domain (vhost-switch vif PORT --accel tcg prints all three)",
      );
    },
  },
  {
    name: 'libvirt',
    what: 'libvirt, new enough for <reconnect>, its daemon running',
    severity: 'error',
    run({ libvirt }) {
      if (!libvirt.present) return skip('not installed (only needed to attach guests through libvirt or OpenStack Nova)');
      const lv = libvirt.version;
      const v = lv ? versionText(lv) : 'unknown version';
      if (lv && !versionAtLeast(lv, 4, 1)) return warn(`libvirt ${v}: no <reconnect> for vhostuser sources (needs 4.1), so a restarted switch is not reconnected`, 'upgrade libvirt to 4.1 or newer, or run ports in client mode (QEMU listens)');
      if (!libvirt.running) return warn(`libvirt ${v} installed, daemon not running`, 'systemctl start libvirtd (or virtqemud.socket); without systemd: libvirtd -d');
      const extras = [lv && !versionAtLeast(lv, 4, 10) ? 'no memfd memoryBacking before 4.10: use hugepages' : '', lv && !versionAtLeast(lv, 8, 2) ? 'no <qemu:override> before 8.2' : ''].filter(Boolean).join('; ');
      return ok(`libvirt ${v}, daemon running${extras ? ` (${extras})` : ''}`);
    },
  },
  {
    name: 'shared-memory',
    what: 'a way to give guests shared, fd-backed memory (memfd or hugepages)',
    severity: 'error',
    run({ host, qemu, memory }) {
      if (memory.memfd) return ok(`memfd guest memory available (kernel ${host.kernelRelease()}${qemu.objects.includes('memory-backend-memfd') ? ', QEMU memory-backend-memfd' : ''})`);
      if (memory.hugeUsable) return ok('no memfd, but hugepages are usable for shared guest memory');
      return fail('neither memfd nor hugepages: vhost-user cannot map guest memory', 'use a kernel >= 3.17 and QEMU >= 2.12 for memfd, or reserve hugepages (see the hugepages check)');
    },
  },
  {
    name: 'hugepages',
    what: 'hugepages reserved and hugetlbfs mounted',
    severity: 'warning',
    run({ memory: { mem, hugeMounts, memfd, hugeUsable } }) {
      const detail = `HugePages_Total ${mem.hugePagesTotal}, free ${mem.hugePagesFree}, size ${mem.hugepageSizeKiB} kB; hugetlbfs ${hugeMounts.length ? hugeMounts.map((m) => m.mountPoint).join(', ') : 'not mounted'}`;
      if (hugeUsable) return ok(detail);
      return warn(
        `${detail}${memfd ? ' (optional: memfd works)' : ''}`,
        mem.hugePagesTotal === 0 ? 'reserve pages: sysctl vm.nr_hugepages=512 (persist in /etc/sysctl.d/); Nova flavors need them for hw:mem_page_size' : 'mount hugetlbfs: mount -t hugetlbfs hugetlbfs /dev/hugepages',
      );
    },
  },
  {
    // A Nova compute host: a guest without shared memory gets a vhost-user NIC that never passes a frame.
    name: 'nova-memory',
    what: "on a Nova compute host, whether Nova gives every guest shared memory",
    severity: 'warning',
    run({ host }) {
      const novaConf = host.readFile('/etc/nova/nova.conf');
      if (novaConf === null) return undefined;
      const fbm = parseNovaFileBackedMemory(novaConf);
      if (fbm > 0) return ok(`nova.conf [libvirt] file_backed_memory = ${fbm} MiB: every guest gets shared, file-backed memory`);
      return warn(
        'nova.conf has no [libvirt] file_backed_memory: only guests whose flavor has hw:mem_page_size get shared memory; any other guest gets a vhost-user NIC that never passes traffic',
        'give the flavors hw:mem_page_size=large (and reserve hugepages), or set [libvirt] file_backed_memory (with ram_allocation_ratio = 1.0); docs/openstack.md',
      );
    },
  },
  {
    name: 'run-dir',
    what: 'the run directory, writable by this user (or creatable)',
    severity: 'error',
    run({ host, runDir, me }) {
      const st = host.stat(runDir);
      if (st) {
        const detail = `${runDir}: ${st.isDirectory ? 'directory' : 'not a directory'}, mode ${modeString(st)}, owner ${st.uid}:${st.gid}`;
        return st.isDirectory && canAccess(st, me, 'wx') ? ok(detail) : fail(detail, `make ${runDir} a directory this user can write (mkdir -p ${runDir})`);
      }
      const parent = host.stat(path.dirname(path.resolve(runDir)));
      if (parent && parent.isDirectory && canAccess(parent, me, 'wx')) return ok(`${runDir} does not exist; the switch will create it`);
      return fail(`${runDir} does not exist and cannot be created by this user`, `mkdir -p ${runDir} as root and give it to the user running the switch`);
    },
  },
  {
    name: 'socket-dir',
    what: 'the socket directory, which the QEMU user can enter and whose sockets it can connect to',
    severity: 'error',
    run({ runDir, socketDir, conf, qemuUser, sockets }) {
      if (!qemuUser || !sockets) return fail(`qemu.conf names user ${JSON.stringify(conf.user)}, which does not exist`, 'fix user = in /etc/libvirt/qemu.conf');
      const { who, st, blocked, problems, fixes } = sockets;
      if (!st) {
        const runIsSocketDir = socketDir === path.resolve(runDir);
        const detail = `${socketDir} does not exist${runIsSocketDir ? ' yet (it is the run directory; the switch creates it)' : ''}${blocked.length ? `; ${who} cannot enter ${blocked.join(', ')}` : ''}`;
        if (blocked.length === 0 && runIsSocketDir) return ok(detail);
        return fail(detail, `mkdir -p ${socketDir}; chgrp ${qemuUser.group} ${socketDir}; chmod 0770 ${socketDir}${blocked.length ? `; chmod o+x ${blocked.join(' ')}` : ''}`);
      }
      if (!st.isDirectory) return fail(`${socketDir} is not a directory`, `remove it or choose another socket directory`);
      const base = `${socketDir}: mode ${modeString(st)}, owner ${st.uid}:${st.gid}; QEMU runs as ${who}`;
      if (problems.length) return fail(`${base}; ${problems.join('; ')}`, fixes.join('; '));
      return ok(`${base}; it can connect to sockets there`);
    },
  },
  {
    name: 'socket-dir-client-ports',
    what: 'whether the QEMU user can create sockets there too (ports in client mode, where QEMU listens)',
    severity: 'warning',
    run({ socketDir, qemuUser, sockets }) {
      if (!qemuUser || !sockets?.st?.isDirectory || sockets.problems.length || sockets.create) return undefined;
      return warn(`${qemuUser.user} cannot create sockets in ${socketDir}: ports in client mode (QEMU listens) will fail`, sockets.fixes.join('; '));
    },
  },
  {
    name: 'apparmor',
    what: "AppArmor: whether libvirt's QEMU profile allows the socket directory",
    severity: 'warning',
    run({ host, socketDir, conf, libvirt }) {
      const aa = (host.readFile('/sys/module/apparmor/parameters/enabled') ?? '').trim();
      if (aa !== 'Y') return skip(aa ? `AppArmor disabled (${aa})` : 'AppArmor not present');
      if (!libvirt.present || (conf.securityDriver && !conf.securityDriver.includes('apparmor'))) {
        return skip(`AppArmor enabled; ${libvirt.present ? `libvirt security_driver is ${conf.securityDriver?.join(',')}` : 'libvirt not installed, QEMU runs unconfined'}`);
      }
      const profiles = ['/etc/apparmor.d/abstractions/libvirt-qemu', '/etc/apparmor.d/local/abstractions/libvirt-qemu'].map((p) => host.readFile(p) ?? '');
      if (apparmorAllowsRw(profiles, socketDir)) return ok(`AppArmor enabled; libvirt's QEMU profile allows ${socketDir}`);
      return warn(
        `AppArmor enabled and libvirt confines QEMU; its libvirt-qemu abstraction has no rw rule for ${socketDir}`,
        `echo '  "${socketDir}/**" rw,' >> /etc/apparmor.d/local/abstractions/libvirt-qemu, then restart the domains (libvirt regenerates their profiles); check denials with journalctl -k | grep apparmor`,
      );
    },
  },
  {
    name: 'selinux',
    what: 'SELinux: the label of the socket directory, for confined QEMU',
    severity: 'warning',
    async run({ host, socketDir }) {
      const ge = host.which('getenforce') ? await host.exec('getenforce', []) : null;
      const mode = ge ? parseGetenforce(ge.stdout) : null;
      if (mode !== 'Enforcing') return skip(mode ? `SELinux ${mode}` : 'SELinux not present');
      const ctx = await host.exec('stat', ['-c', '%C', socketDir]);
      const t = ctx && ctx.code === 0 ? selinuxType(ctx.stdout) : null;
      const detail = `SELinux Enforcing; ${socketDir} has type ${t ?? 'unknown'}`;
      if (t !== null && ['svirt_image_t', 'svirt_tmp_t', 'virt_var_run_t', 'qemu_var_run_t', 'openvswitch_var_run_t'].includes(t)) return ok(detail);
      return warn(
        detail,
        `label the socket directory for confined QEMU: semanage fcontext -a -t svirt_image_t '${socketDir}(/.*)?' && restorecon -Rv ${socketDir}; if QEMU still cannot connect, ausearch -m avc -c qemu-kvm | audit2allow -M vhost-switch && semodule -i vhost-switch.pp`,
      );
    },
  },
];

function toCheck(c: Check, v: Verdict): DoctorCheck {
  const severity = v.status === 'ok' ? c.severity : v.status === 'fail' ? 'error' : 'warning';
  return { severity, name: c.name, ok: v.status === 'ok' || v.status === 'skip', detail: v.detail, ...(v.fix === undefined ? {} : { fix: v.fix }) };
}

export async function runDoctor(opts: DoctorOptions): Promise<DoctorResult> {
  const facts = await probeHost(opts);
  const checks: DoctorCheck[] = [];
  for (const c of CHECKS) {
    const v = await c.run(facts);
    if (v) checks.push(toCheck(c, v));
  }
  const ok = checks.every((c) => c.ok || c.severity !== 'error');
  return { ok, checks, report: formatReport(checks, ok) };
}

export function formatReport(checks: DoctorCheck[], ok: boolean): string {
  const lines = ['vhost-switch doctor'];
  for (const c of checks) {
    const tag = c.ok ? '[ok]  ' : c.severity === 'error' ? '[FAIL]' : '[warn]';
    lines.push(`${tag} ${c.name}: ${c.detail}`);
    if (!c.ok && c.fix) lines.push(`       fix: ${c.fix}`);
  }
  const errors = checks.filter((c) => !c.ok && c.severity === 'error').length;
  const warns = checks.filter((c) => !c.ok && c.severity === 'warning').length;
  lines.push(ok ? `ready for vhost-user guests${warns ? ` (${warns} warning${warns > 1 ? 's' : ''})` : ''}` : `${errors} problem${errors > 1 ? 's' : ''} to fix${warns ? `, ${warns} warning${warns > 1 ? 's' : ''}` : ''}`);
  return lines.join('\n') + '\n';
}
