// `vhost-switch doctor`: does this host have what vhost-user guests need, and if not, how to fix it.
//
// Every parser below is a pure function of text so it unit-tests without the host; the host is reached
// only through a HostProbe (real one at the bottom), which tests replace with a fake.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

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

export interface DoctorOptions {
  runDir: string;
  socketDir?: string;
  qemuBinary?: string;
  /** Replace the host (tests). */
  host?: HostProbe;
}

export interface FileStat {
  mode: number;
  uid: number;
  gid: number;
  isDirectory: boolean;
  isSocket: boolean;
  isCharDevice: boolean;
}

export interface ExecResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface HostProbe {
  readFile(p: string): string | null;
  stat(p: string): FileStat | null;
  readdir(p: string): string[] | null;
  /** null when the program is not there. */
  exec(cmd: string, args: string[]): Promise<ExecResult | null>;
  which(cmd: string): string | null;
  /** Can this process open the path read-write? */
  canOpenRw(p: string): boolean;
  kernelRelease(): string;
  arch(): string;
  uid(): number;
  gids(): number[];
}

// ---------------------------------------------------------------------------------------------
// Pure parsers

export interface Version {
  major: number;
  minor: number;
  micro: number;
  text: string;
}

function mkVersion(m: RegExpExecArray | null): Version | null {
  if (!m) return null;
  return { major: Number(m[1]), minor: Number(m[2]), micro: Number(m[3] ?? 0), text: m[0] };
}

export function versionAtLeast(v: Version, major: number, minor: number, micro = 0): boolean {
  if (v.major !== major) return v.major > major;
  if (v.minor !== minor) return v.minor > minor;
  return v.micro >= micro;
}

/** `qemu-system-x86_64 --version`: "QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18)". */
export function parseQemuVersion(text: string): Version | null {
  return mkVersion(/QEMU emulator version (\d+)\.(\d+)(?:\.(\d+))?/.exec(text));
}

/** `virsh --version` prints "9.0.0"; `libvirtd --version` prints "libvirtd (libvirt) 9.0.0". */
export function parseLibvirtVersion(text: string): Version | null {
  return mkVersion(/(?:^|\s|\(libvirt\)\s*)(\d+)\.(\d+)\.(\d+)/.exec(text.trim()));
}

/** Which -netdev backends / -object types a QEMU binary lists in `-netdev help` / `-object help`. */
export function parseQemuHelpList(text: string): string[] {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => /^[a-z][a-z0-9-]*$/.test(l));
}

export interface Meminfo {
  hugePagesTotal: number;
  hugePagesFree: number;
  hugepageSizeKiB: number;
}

export function parseMeminfo(text: string): Meminfo {
  const get = (k: string) => {
    const m = new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(text);
    return m ? Number(m[1]) : 0;
  };
  return { hugePagesTotal: get('HugePages_Total'), hugePagesFree: get('HugePages_Free'), hugepageSizeKiB: get('Hugepagesize') };
}

export interface MountEntry {
  device: string;
  mountPoint: string;
  fsType: string;
  options: string[];
}

/** /proc/mounts (octal escapes like \040 decoded). */
export function parseMounts(text: string): MountEntry[] {
  const unesc = (s: string) => s.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
  return text
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f.length >= 4)
    .map((f) => ({ device: unesc(f[0]!), mountPoint: unesc(f[1]!), fsType: f[2]!, options: f[3]!.split(',') }));
}

export interface QemuConf {
  user?: string;
  group?: string;
  securityDriver?: string[];
  clearEmulatorCapabilities?: boolean;
  dynamicOwnership?: boolean;
  memoryBackingDir?: string;
}

/** The settings of /etc/libvirt/qemu.conf that matter here (comments ignored, lists and strings). */
/**
 * nova.conf's [libvirt] file_backed_memory in MiB (0 when absent: Nova then gives a guest shared memory only when
 * its flavor asks for hugepages, hw:mem_page_size).
 */
export function parseNovaFileBackedMemory(text: string): number {
  let section = '';
  for (const raw of text.split('\n')) {
    const line = raw.replace(/[#;].*$/, '').trim();
    const sec = /^\[([^\]]+)\]$/.exec(line);
    if (sec) section = sec[1]!.trim().toLowerCase();
    const kv = /^file_backed_memory\s*=\s*(\d+)$/.exec(line);
    if (kv && section === 'libvirt') return Number(kv[1]);
  }
  return 0;
}

export function parseQemuConf(text: string): QemuConf {
  const out: QemuConf = {};
  const src = text.replace(/^\s*#.*$/gm, '');
  const str = (k: string) => {
    const m = new RegExp(`^\\s*${k}\\s*=\\s*"([^"]*)"`, 'm').exec(src);
    return m ? m[1] : undefined;
  };
  const num = (k: string) => {
    const m = new RegExp(`^\\s*${k}\\s*=\\s*(\\d+)`, 'm').exec(src);
    return m ? Number(m[1]) : undefined;
  };
  out.user = str('user');
  out.group = str('group');
  out.memoryBackingDir = str('memory_backing_dir');
  const sd = new RegExp('^\\s*security_driver\\s*=\\s*(\\[[^\\]]*\\]|"[^"]*")', 'm').exec(src);
  if (sd) out.securityDriver = [...sd[1]!.matchAll(/"([^"]*)"/g)].map((m) => m[1]!);
  const cec = num('clear_emulator_capabilities');
  if (cec !== undefined) out.clearEmulatorCapabilities = cec !== 0;
  const dyn = num('dynamic_ownership');
  if (dyn !== undefined) out.dynamicOwnership = dyn !== 0;
  for (const k of Object.keys(out) as (keyof QemuConf)[]) if (out[k] === undefined) delete out[k];
  return out;
}

export interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
}
export function parsePasswd(text: string): PasswdEntry[] {
  return text
    .split('\n')
    .map((l) => l.split(':'))
    .filter((f) => f.length >= 4 && /^\d+$/.test(f[2]!) && /^\d+$/.test(f[3]!))
    .map((f) => ({ name: f[0]!, uid: Number(f[2]), gid: Number(f[3]) }));
}

export interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}
export function parseGroup(text: string): GroupEntry[] {
  return text
    .split('\n')
    .map((l) => l.split(':'))
    .filter((f) => f.length >= 3 && /^\d+$/.test(f[2]!))
    .map((f) => ({ name: f[0]!, gid: Number(f[2]), members: (f[3] ?? '').split(',').filter(Boolean) }));
}

export interface Identity {
  user: string;
  /** Primary group name (for chgrp in fixes). */
  group: string;
  uid: number;
  gids: number[];
  /** Root that keeps CAP_DAC_OVERRIDE (so file modes do not stop it). */
  dacOverride: boolean;
  source: string;
}

/** 'libvirt-qemu', '+64055' or '64055' (libvirt's syntax) to a passwd entry. */
function lookupUser(spec: string, passwd: PasswdEntry[]): PasswdEntry | undefined {
  if (spec.startsWith('+')) return passwd.find((p) => p.uid === Number(spec.slice(1))) ?? { name: spec, uid: Number(spec.slice(1)), gid: Number(spec.slice(1)) };
  return passwd.find((p) => p.name === spec) ?? (/^\d+$/.test(spec) ? passwd.find((p) => p.uid === Number(spec)) : undefined);
}
function lookupGroup(spec: string, groups: GroupEntry[]): number | undefined {
  if (spec.startsWith('+') || /^\d+$/.test(spec)) return Number(spec.replace('+', ''));
  return groups.find((g) => g.name === spec)?.gid;
}

/**
 * The user libvirt runs QEMU as: qemu.conf user/group, else the distribution default
 * (libvirt-qemu on Debian/Ubuntu, qemu on Fedora/RHEL), else root. Supplementary groups come from
 * /etc/group, as libvirt sets them. Root keeps DAC override only with clear_emulator_capabilities = 0.
 */
export function resolveQemuIdentity(conf: QemuConf, passwd: PasswdEntry[], groups: GroupEntry[]): Identity | null {
  let source = 'qemu.conf';
  let spec = conf.user;
  if (!spec) {
    source = 'distribution default';
    spec = ['libvirt-qemu', 'qemu'].find((n) => passwd.some((p) => p.name === n)) ?? 'root';
  }
  const pw = lookupUser(spec, passwd) ?? (spec === 'root' ? { name: 'root', uid: 0, gid: 0 } : undefined);
  if (!pw) return null;
  const primary = conf.group ? lookupGroup(conf.group, groups) ?? pw.gid : pw.gid;
  const gids = new Set([primary, ...groups.filter((g) => g.members.includes(pw.name)).map((g) => g.gid)]);
  const dacOverride = pw.uid === 0 && conf.clearEmulatorCapabilities === false;
  const group = groups.find((g) => g.gid === primary)?.name ?? String(primary);
  return { user: pw.name, group, uid: pw.uid, gids: [...gids], dacOverride, source };
}

/** Unix permission check for an identity: want is some of 'r', 'w', 'x'. */
export function canAccess(st: Pick<FileStat, 'mode' | 'uid' | 'gid'>, who: Pick<Identity, 'uid' | 'gids' | 'dacOverride'>, want: string): boolean {
  if (who.dacOverride) return true;
  const bits = st.uid === who.uid ? (st.mode >> 6) & 7 : who.gids.includes(st.gid) ? (st.mode >> 3) & 7 : st.mode & 7;
  const need = (want.includes('r') ? 4 : 0) | (want.includes('w') ? 2 : 0) | (want.includes('x') ? 1 : 0);
  return (bits & need) === need;
}

/** `getenforce` output. */
export function parseGetenforce(text: string): 'Enforcing' | 'Permissive' | 'Disabled' | null {
  const t = text.trim();
  return t === 'Enforcing' || t === 'Permissive' || t === 'Disabled' ? t : null;
}

/** The type of an SELinux context 'user:role:type:level'. */
export function selinuxType(context: string): string | null {
  const f = context.trim().split(':');
  return f.length >= 3 ? f[2]! : null;
}

/** AppArmor path glob to a RegExp: ** any, * any but '/', ? one char but '/', {a,b} alternation, [..] classes. */
export function apparmorGlobToRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*') {
      if (glob[i + 1] === '*') {
        re += '.*';
        i++;
      } else re += '[^/]*';
    } else if (c === '?') re += '[^/]';
    else if (c === '{') re += '(?:';
    else if (c === '}') re += ')';
    else if (c === ',') re += '|';
    else if (c === '[' || c === ']') re += c;
    else re += c.replace(/[.+^$()|\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/**
 * Does a set of AppArmor profile texts allow read-write access to a file in dir? Looks at plain file
 * rules ("/run/vhost-switch/** rw," or quoted '"/run/vhost-switch/**" rw,' and 'owner'); deny rules win.
 */
export function apparmorAllowsRw(profiles: string[], dir: string): boolean {
  const probe = path.join(dir, 'vhu00000000-00');
  let allowed = false;
  for (const text of profiles) {
    for (const line of text.split('\n')) {
      const m = /^\s*(deny\s+|audit\s+)?(owner\s+)?("?)(\/[^"\s]*|@\{[A-Za-z_]+\}[^"\s]*)\3\s+([rwklmixaPUCp]+)\s*,/.exec(line);
      if (!m) continue;
      let glob = m[4]!;
      glob = glob.replace(/@\{run\}/g, '{/var/run,/run}');
      if (glob.startsWith('@{')) continue;
      const matches = apparmorGlobToRegExp(glob).test(probe);
      if (!matches) continue;
      const perms = m[5]!;
      if (m[1]?.startsWith('deny') && /[rw]/.test(perms)) return false;
      if (perms.includes('r') && perms.includes('w')) allowed = true;
    }
  }
  return allowed;
}

// ---------------------------------------------------------------------------------------------
// The checks

const QEMU_BINARY_FOR_ARCH: Record<string, string> = { x64: 'qemu-system-x86_64', arm64: 'qemu-system-aarch64', ppc64: 'qemu-system-ppc64', s390x: 'qemu-system-s390x' };

function kernelAtLeast(release: string, major: number, minor: number): boolean {
  const m = /^(\d+)\.(\d+)/.exec(release);
  if (!m) return true;
  const a = Number(m[1]);
  const b = Number(m[2]);
  return a > major || (a === major && b >= minor);
}

function modeString(st: FileStat): string {
  return (st.mode & 0o7777).toString(8).padStart(4, '0');
}

export async function runDoctor(opts: DoctorOptions): Promise<DoctorResult> {
  const host = opts.host ?? realHost();
  const checks: DoctorCheck[] = [];
  const add = (c: Omit<DoctorCheck, 'severity'> & { severity?: DoctorCheck['severity'] }) => checks.push({ severity: 'error', ...c });
  const socketDir = path.resolve(opts.socketDir ?? opts.runDir);

  // QEMU ------------------------------------------------------------------------------------
  const qemuName = QEMU_BINARY_FOR_ARCH[host.arch()] ?? 'qemu-system-x86_64';
  const qemu = opts.qemuBinary ?? host.which(qemuName) ?? host.which('qemu-kvm') ?? (host.stat('/usr/libexec/qemu-kvm') ? '/usr/libexec/qemu-kvm' : null);
  let qemuVersion: Version | null = null;
  let backends: string[] = [];
  let objects: string[] = [];
  if (!qemu) {
    add({
      name: 'qemu',
      ok: false,
      detail: `no ${qemuName} (or qemu-kvm) on PATH`,
      fix: 'install QEMU: apt-get install qemu-system-x86 (Debian/Ubuntu) or dnf install qemu-kvm (Fedora/RHEL); or pass the binary with --qemu PATH',
    });
  } else {
    const r = await host.exec(qemu, ['--version']);
    qemuVersion = r ? parseQemuVersion(r.stdout + r.stderr) : null;
    if (!qemuVersion) {
      add({ name: 'qemu', ok: false, detail: `${qemu} did not report a version${r ? '' : ' (cannot run it)'}`, fix: `check that ${qemu} runs: ${qemu} --version` });
    } else if (!versionAtLeast(qemuVersion, 2, 12)) {
      add({ name: 'qemu', ok: false, detail: `QEMU ${qemuVersion.text} at ${qemu} is too old`, fix: 'vhost-user with reconnect and memfd guest memory needs QEMU 2.12 or newer: upgrade QEMU' });
    } else {
      add({ name: 'qemu', ok: true, detail: `QEMU ${qemuVersion.major}.${qemuVersion.minor}.${qemuVersion.micro} at ${qemu}` });
    }
    if (qemuVersion) {
      const nh = await host.exec(qemu, ['-netdev', 'help']);
      const oh = await host.exec(qemu, ['-object', 'help']);
      backends = nh ? parseQemuHelpList(nh.stdout) : [];
      objects = oh ? parseQemuHelpList(oh.stdout) : [];
      const missing = [!backends.includes('vhost-user') && 'the vhost-user netdev'].filter(Boolean);
      add({
        name: 'qemu-vhost-user',
        ok: missing.length === 0,
        detail: missing.length === 0 ? `netdev vhost-user; memory backends ${objects.filter((o) => o.startsWith('memory-backend-')).join(', ') || 'unknown'}` : `${qemu} lacks ${missing.join(', ')}`,
        fix: missing.length ? 'use a QEMU built with vhost-user support (the distribution qemu-system packages have it)' : undefined,
      });
    }
  }

  // KVM and the QEMU 7.2 TCG MSI-X problem -------------------------------------------------
  const kvm = host.stat('/dev/kvm');
  const kvmUsable = !!kvm && kvm.isCharDevice && host.canOpenRw('/dev/kvm');
  if (!kvm) {
    add({
      name: 'kvm',
      ok: false,
      severity: 'warning',
      detail: '/dev/kvm is missing: guests run under TCG (emulation, much slower)',
      fix: 'enable virtualization in the firmware (or nested virtualization for a VM host) and load kvm_intel or kvm_amd (modprobe kvm_intel)',
    });
  } else if (!kvmUsable) {
    add({ name: 'kvm', ok: false, severity: 'warning', detail: `/dev/kvm (mode ${modeString(kvm)}) cannot be opened read-write by this user`, fix: 'add the user that runs QEMU to the group owning /dev/kvm (usermod -aG kvm USER)' });
  } else {
    add({ name: 'kvm', ok: true, detail: '/dev/kvm usable' });
  }
  if (qemuVersion && qemuVersion.major === 7 && qemuVersion.minor === 2) {
    add({
      name: 'qemu-7.2-tcg-msix',
      ok: kvmUsable,
      severity: 'warning',
      detail: kvmUsable
        ? 'QEMU 7.2: guests started without KVM (TCG) need vectors=0 on vhost-user NICs; KVM is usable here'
        : 'QEMU 7.2 without KVM: a vhost-user virtio-net-pci NIC with MSI-X crashes QEMU under TCG',
      fix: kvmUsable
        ? undefined
        : "give each vhost-user NIC vectors=0: QEMU -device virtio-net-pci,...,vectors=0; libvirt <qemu:override> with <qemu:property name='vectors' type='unsigned' value='0'/>, and for NICs hot-plugged with virsh attach-device (which get no override) <qemu:commandline> -global virtio-net-pci.vectors=0 in the domain (vhost-switch vif PORT --accel tcg prints all three)",
    });
  }

  // libvirt ---------------------------------------------------------------------------------
  const virsh = host.which('virsh');
  const libvirtd = host.which('libvirtd') ?? host.which('virtqemud');
  let libvirtVersion: Version | null = null;
  if (!virsh && !libvirtd) {
    add({ name: 'libvirt', ok: true, severity: 'warning', detail: 'not installed (only needed to attach guests through libvirt or OpenStack Nova)' });
  } else {
    const r = (virsh && (await host.exec(virsh, ['--version']))) || (libvirtd && (await host.exec(libvirtd, ['--version']))) || null;
    libvirtVersion = r ? parseLibvirtVersion(r.stdout) : null;
    const running = ['/run/libvirt/libvirt-sock', '/run/libvirt/virtqemud-sock', '/var/run/libvirt/libvirt-sock'].some((p) => host.stat(p)?.isSocket);
    const v = libvirtVersion ? `${libvirtVersion.major}.${libvirtVersion.minor}.${libvirtVersion.micro}` : 'unknown version';
    if (libvirtVersion && !versionAtLeast(libvirtVersion, 4, 1)) {
      add({ name: 'libvirt', ok: false, severity: 'warning', detail: `libvirt ${v}: no <reconnect> for vhostuser sources (needs 4.1), so a restarted switch is not reconnected`, fix: 'upgrade libvirt to 4.1 or newer, or run ports in client mode (QEMU listens)' });
    } else if (!running) {
      add({ name: 'libvirt', ok: false, severity: 'warning', detail: `libvirt ${v} installed, daemon not running`, fix: 'systemctl start libvirtd (or virtqemud.socket); without systemd: libvirtd -d' });
    } else {
      const extras = [libvirtVersion && !versionAtLeast(libvirtVersion, 4, 10) ? 'no memfd memoryBacking before 4.10: use hugepages' : '', libvirtVersion && !versionAtLeast(libvirtVersion, 8, 2) ? 'no <qemu:override> before 8.2' : '']
        .filter(Boolean)
        .join('; ');
      add({ name: 'libvirt', ok: true, detail: `libvirt ${v}, daemon running${extras ? ` (${extras})` : ''}` });
    }
  }

  // Guest memory ----------------------------------------------------------------------------
  const mem = parseMeminfo(host.readFile('/proc/meminfo') ?? '');
  const mounts = parseMounts(host.readFile('/proc/mounts') ?? '');
  const hugeMounts = mounts.filter((m) => m.fsType === 'hugetlbfs');
  const memfd = kernelAtLeast(host.kernelRelease(), 3, 17) && (objects.length === 0 || objects.includes('memory-backend-memfd'));
  const hugeUsable = mem.hugePagesTotal > 0 && hugeMounts.length > 0;
  add({
    name: 'shared-memory',
    ok: memfd || hugeUsable,
    detail: memfd
      ? `memfd guest memory available (kernel ${host.kernelRelease()}${objects.includes('memory-backend-memfd') ? ', QEMU memory-backend-memfd' : ''})`
      : hugeUsable
        ? 'no memfd, but hugepages are usable for shared guest memory'
        : 'neither memfd nor hugepages: vhost-user cannot map guest memory',
    fix: memfd || hugeUsable ? undefined : 'use a kernel >= 3.17 and QEMU >= 2.12 for memfd, or reserve hugepages (see the hugepages check)',
  });
  const hpDetail = `HugePages_Total ${mem.hugePagesTotal}, free ${mem.hugePagesFree}, size ${mem.hugepageSizeKiB} kB; hugetlbfs ${hugeMounts.length ? hugeMounts.map((m) => m.mountPoint).join(', ') : 'not mounted'}`;
  add({
    name: 'hugepages',
    ok: hugeUsable,
    severity: 'warning',
    detail: hugeUsable ? hpDetail : `${hpDetail}${memfd ? ' (optional: memfd works)' : ''}`,
    fix: hugeUsable
      ? undefined
      : mem.hugePagesTotal === 0
        ? 'reserve pages: sysctl vm.nr_hugepages=512 (persist in /etc/sysctl.d/); Nova flavors need them for hw:mem_page_size'
        : 'mount hugetlbfs: mount -t hugetlbfs hugetlbfs /dev/hugepages',
  });

  // A Nova compute host: a guest without shared memory gets a vhost-user NIC that never passes a frame.
  const novaConf = host.readFile('/etc/nova/nova.conf');
  if (novaConf !== null) {
    const fbm = parseNovaFileBackedMemory(novaConf);
    add({
      name: 'nova-memory',
      ok: fbm > 0,
      severity: 'warning',
      detail:
        fbm > 0
          ? `nova.conf [libvirt] file_backed_memory = ${fbm} MiB: every guest gets shared, file-backed memory`
          : 'nova.conf has no [libvirt] file_backed_memory: only guests whose flavor has hw:mem_page_size get shared memory; any other guest gets a vhost-user NIC that never passes traffic',
      fix: fbm > 0 ? undefined : 'give the flavors hw:mem_page_size=large (and reserve hugepages), or set [libvirt] file_backed_memory (with ram_allocation_ratio = 1.0); docs/openstack.md',
    });
  }

  // Directories and the QEMU user ----------------------------------------------------------
  const passwd = parsePasswd(host.readFile('/etc/passwd') ?? '');
  const groups = parseGroup(host.readFile('/etc/group') ?? '');
  const confText = host.readFile('/etc/libvirt/qemu.conf');
  const conf = confText ? parseQemuConf(confText) : {};
  const libvirtPresent = !!(virsh || libvirtd);
  const myGroup = host.gids()[0] ?? host.uid();
  const me: Identity = { user: passwd.find((p) => p.uid === host.uid())?.name ?? String(host.uid()), group: groups.find((g) => g.gid === myGroup)?.name ?? String(myGroup), uid: host.uid(), gids: host.gids(), dacOverride: host.uid() === 0, source: 'this user' };
  const qemuUser = libvirtPresent ? resolveQemuIdentity(conf, passwd, groups) : me;
  const runSt = host.stat(opts.runDir);
  if (runSt) {
    const ok = runSt.isDirectory && canAccess(runSt, me, 'wx');
    add({ name: 'run-dir', ok, detail: `${opts.runDir}: ${runSt.isDirectory ? 'directory' : 'not a directory'}, mode ${modeString(runSt)}, owner ${runSt.uid}:${runSt.gid}`, fix: ok ? undefined : `make ${opts.runDir} a directory this user can write (mkdir -p ${opts.runDir})` });
  } else {
    const parent = host.stat(path.dirname(path.resolve(opts.runDir)));
    const ok = !!parent && parent.isDirectory && canAccess(parent, me, 'wx');
    add({ name: 'run-dir', ok, detail: `${opts.runDir} does not exist${ok ? '; the switch will create it' : ' and cannot be created by this user'}`, fix: ok ? undefined : `mkdir -p ${opts.runDir} as root and give it to the user running the switch` });
  }

  if (!qemuUser) {
    add({ name: 'socket-dir', ok: false, detail: `qemu.conf names user ${JSON.stringify(conf.user)}, which does not exist`, fix: 'fix user = in /etc/libvirt/qemu.conf' });
  } else {
    const who = `${qemuUser.user} (uid ${qemuUser.uid}, ${qemuUser.source}${libvirtPresent ? ', from libvirt' : ''})`;
    const dirSt = host.stat(socketDir);
    const blocked: string[] = [];
    for (let d = path.dirname(socketDir); ; d = path.dirname(d)) {
      const st = host.stat(d);
      if (st && !canAccess(st, qemuUser, 'x')) blocked.push(d);
      if (d === '/') break;
    }
    if (!dirSt) {
      const runIsSocketDir = socketDir === path.resolve(opts.runDir);
      add({
        name: 'socket-dir',
        ok: blocked.length === 0 && runIsSocketDir,
        detail: `${socketDir} does not exist${runIsSocketDir ? ' yet (it is the run directory; the switch creates it)' : ''}${blocked.length ? `; ${who} cannot enter ${blocked.join(', ')}` : ''}`,
        fix: blocked.length || !runIsSocketDir ? `mkdir -p ${socketDir}; chgrp ${qemuUser.group} ${socketDir}; chmod 0770 ${socketDir}${blocked.length ? `; chmod o+x ${blocked.join(' ')}` : ''}` : undefined,
      });
    } else if (!dirSt.isDirectory) {
      add({ name: 'socket-dir', ok: false, detail: `${socketDir} is not a directory`, fix: `remove it or choose another socket directory` });
    } else {
      const enter = canAccess(dirSt, qemuUser, 'x');
      const create = canAccess(dirSt, qemuUser, 'wx');
      const badSockets = (host.readdir(socketDir) ?? [])
        .map((f) => ({ f, st: host.stat(path.join(socketDir, f)) }))
        .filter((e) => e.st?.isSocket && !canAccess(e.st, qemuUser, 'w'))
        .map((e) => e.f);
      const problems: string[] = [];
      if (blocked.length) problems.push(`cannot enter ${blocked.join(', ')}`);
      if (!enter) problems.push(`cannot enter ${socketDir}`);
      if (badSockets.length) problems.push(`cannot connect to ${badSockets.join(', ')} (no write permission)`);
      const base = `${socketDir}: mode ${modeString(dirSt)}, owner ${dirSt.uid}:${dirSt.gid}; QEMU runs as ${who}`;
      const fixes: string[] = [];
      if (blocked.length) fixes.push(`chmod o+x ${blocked.join(' ')}`);
      if (!enter || !create) fixes.push(`chgrp ${qemuUser.group} ${socketDir} && chmod 0770 ${socketDir} (or setfacl -m u:${qemuUser.user}:rwx ${socketDir})`);
      if (badSockets.length) fixes.push(`create ports with a socket group/permissions QEMU can use (e.g. group ${qemuUser.group}, mode 0660), or chgrp ${qemuUser.group} + chmod 0660 the sockets`);
      if (problems.length) {
        add({ name: 'socket-dir', ok: false, detail: `${base}; ${problems.join('; ')}`, fix: fixes.join('; ') });
      } else {
        add({ name: 'socket-dir', ok: true, detail: `${base}; it can connect to sockets there` });
        if (!create) {
          add({ name: 'socket-dir-client-ports', ok: false, severity: 'warning', detail: `${qemuUser.user} cannot create sockets in ${socketDir}: ports in client mode (QEMU listens) will fail`, fix: fixes.join('; ') });
        }
      }
    }
  }

  // AppArmor --------------------------------------------------------------------------------
  const aa = (host.readFile('/sys/module/apparmor/parameters/enabled') ?? '').trim();
  if (aa !== 'Y') {
    add({ name: 'apparmor', ok: true, severity: 'warning', detail: aa ? `AppArmor disabled (${aa})` : 'AppArmor not present' });
  } else if (!libvirtPresent || (conf.securityDriver && !conf.securityDriver.includes('apparmor'))) {
    add({ name: 'apparmor', ok: true, severity: 'warning', detail: `AppArmor enabled; ${libvirtPresent ? `libvirt security_driver is ${conf.securityDriver?.join(',')}` : 'libvirt not installed, QEMU runs unconfined'}` });
  } else {
    const profiles = ['/etc/apparmor.d/abstractions/libvirt-qemu', '/etc/apparmor.d/local/abstractions/libvirt-qemu'].map((p) => host.readFile(p) ?? '');
    const ok = apparmorAllowsRw(profiles, socketDir);
    add({
      name: 'apparmor',
      ok,
      severity: 'warning',
      detail: ok ? `AppArmor enabled; libvirt's QEMU profile allows ${socketDir}` : `AppArmor enabled and libvirt confines QEMU; its libvirt-qemu abstraction has no rw rule for ${socketDir}`,
      fix: ok
        ? undefined
        : `echo '  "${socketDir}/**" rw,' >> /etc/apparmor.d/local/abstractions/libvirt-qemu, then restart the domains (libvirt regenerates their profiles); check denials with journalctl -k | grep apparmor`,
    });
  }

  // SELinux ---------------------------------------------------------------------------------
  const ge = host.which('getenforce') ? await host.exec('getenforce', []) : null;
  const mode = ge ? parseGetenforce(ge.stdout) : null;
  if (mode !== 'Enforcing') {
    add({ name: 'selinux', ok: true, severity: 'warning', detail: mode ? `SELinux ${mode}` : 'SELinux not present' });
  } else {
    const ctx = await host.exec('stat', ['-c', '%C', socketDir]);
    const t = ctx && ctx.code === 0 ? selinuxType(ctx.stdout) : null;
    const good = t !== null && ['svirt_image_t', 'svirt_tmp_t', 'virt_var_run_t', 'qemu_var_run_t', 'openvswitch_var_run_t'].includes(t);
    add({
      name: 'selinux',
      ok: good,
      severity: 'warning',
      detail: `SELinux Enforcing; ${socketDir} has type ${t ?? 'unknown'}`,
      fix: good
        ? undefined
        : `label the socket directory for confined QEMU: semanage fcontext -a -t svirt_image_t '${socketDir}(/.*)?' && restorecon -Rv ${socketDir}; if QEMU still cannot connect, ausearch -m avc -c qemu-kvm | audit2allow -M vhost-switch && semodule -i vhost-switch.pp`,
    });
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

// ---------------------------------------------------------------------------------------------
// The real host

export function realHost(): HostProbe {
  return {
    readFile(p) {
      try {
        return fs.readFileSync(p, 'utf8');
      } catch {
        return null;
      }
    },
    stat(p) {
      try {
        const s = fs.statSync(p);
        return { mode: s.mode, uid: s.uid, gid: s.gid, isDirectory: s.isDirectory(), isSocket: s.isSocket(), isCharDevice: s.isCharacterDevice() };
      } catch {
        return null;
      }
    },
    readdir(p) {
      try {
        return fs.readdirSync(p);
      } catch {
        return null;
      }
    },
    exec(cmd, args) {
      return new Promise((resolve) => {
        execFile(cmd, args, { timeout: 10_000, encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } }, (err, stdout, stderr) => {
          const e = err as (NodeJS.ErrnoException & { code?: unknown }) | null;
          if (e && e.code === 'ENOENT') return resolve(null);
          resolve({ code: e ? (typeof e.code === 'number' ? e.code : 1) : 0, stdout: String(stdout), stderr: String(stderr) });
        });
      });
    },
    which(cmd) {
      if (cmd.includes('/')) return fs.existsSync(cmd) ? cmd : null;
      const dirs = (process.env.PATH ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin').split(':');
      for (const d of [...dirs, '/usr/sbin', '/sbin']) {
        const p = path.join(d, cmd);
        try {
          fs.accessSync(p, fs.constants.X_OK);
          if (fs.statSync(p).isFile()) return p;
        } catch {
          /* next */
        }
      }
      return null;
    },
    canOpenRw(p) {
      try {
        fs.closeSync(fs.openSync(p, 'r+'));
        return true;
      } catch {
        return false;
      }
    },
    kernelRelease: () => os.release(),
    arch: () => process.arch,
    uid: () => process.getuid?.() ?? 0,
    gids: () => process.getgroups?.() ?? [],
  };
}
