// What `vhost-switch doctor` knows of the host before any check runs: QEMU, KVM, libvirt, memory, users and the
// socket directory, read once through a HostProbe, so that each check only judges.
import path from 'node:path';
import {
  canAccess,
  parseGroup,
  parseLibvirtVersion,
  parseMeminfo,
  parseMounts,
  parsePasswd,
  parseQemuConf,
  parseQemuHelpList,
  parseQemuVersion,
  resolveQemuIdentity,
  type Identity,
  type Meminfo,
  type MountEntry,
  type QemuConf,
  type Version,
} from './doctor-parse.js';
import { realHost, type FileStat, type HostProbe } from './probe.js';

/** The doctor's options: the directories and QEMU binary to check, on which host. */
export interface ProbeOptions {
  runDir: string;
  socketDir?: string;
  qemuBinary?: string;
  /** Replace the host (tests). */
  host?: HostProbe;
}

export interface Facts {
  host: HostProbe;
  runDir: string;
  socketDir: string;
  qemu: { name: string; path: string | null; ran: boolean; version: Version | null; backends: string[]; objects: string[] };
  kvm: { st: FileStat | null; usable: boolean };
  libvirt: { present: boolean; version: Version | null; running: boolean };
  memory: { mem: Meminfo; hugeMounts: MountEntry[]; memfd: boolean; hugeUsable: boolean };
  conf: QemuConf;
  me: Identity;
  /** Who QEMU runs as: libvirt's user, or this user when QEMU is started by hand; null when qemu.conf names nobody. */
  qemuUser: Identity | null;
  sockets: SocketDirAccess | null;
}

/** What the QEMU user can do in the socket directory. */
export interface SocketDirAccess {
  /** "libvirt-qemu (uid 64055, distribution default, from libvirt)". */
  who: string;
  st: FileStat | null;
  /** Directories above the socket directory the QEMU user cannot enter. */
  blocked: string[];
  create: boolean;
  problems: string[];
  fixes: string[];
}

const QEMU_BINARY_FOR_ARCH: Record<string, string> = { x64: 'qemu-system-x86_64', arm64: 'qemu-system-aarch64', ppc64: 'qemu-system-ppc64', s390x: 'qemu-system-s390x' };

async function probeQemu(host: HostProbe, binary: string | undefined): Promise<Facts['qemu']> {
  const name = QEMU_BINARY_FOR_ARCH[host.arch()] ?? 'qemu-system-x86_64';
  const qemuPath = binary ?? host.which(name) ?? host.which('qemu-kvm') ?? (host.stat('/usr/libexec/qemu-kvm') ? '/usr/libexec/qemu-kvm' : null);
  const facts: Facts['qemu'] = { name, path: qemuPath, ran: false, version: null, backends: [], objects: [] };
  if (!qemuPath) return facts;
  const r = await host.exec(qemuPath, ['--version']);
  facts.ran = r !== null;
  facts.version = r ? parseQemuVersion(r.stdout + r.stderr) : null;
  if (facts.version) {
    const nh = await host.exec(qemuPath, ['-netdev', 'help']);
    const oh = await host.exec(qemuPath, ['-object', 'help']);
    facts.backends = nh ? parseQemuHelpList(nh.stdout) : [];
    facts.objects = oh ? parseQemuHelpList(oh.stdout) : [];
  }
  return facts;
}

async function probeLibvirt(host: HostProbe): Promise<Facts['libvirt']> {
  const virsh = host.which('virsh');
  const libvirtd = host.which('libvirtd') ?? host.which('virtqemud');
  if (!virsh && !libvirtd) return { present: false, version: null, running: false };
  const r = (virsh && (await host.exec(virsh, ['--version']))) || (libvirtd && (await host.exec(libvirtd, ['--version']))) || null;
  const running = ['/run/libvirt/libvirt-sock', '/run/libvirt/virtqemud-sock', '/var/run/libvirt/libvirt-sock'].some((p) => host.stat(p)?.isSocket);
  return { present: true, version: r ? parseLibvirtVersion(r.stdout) : null, running };
}

function kernelAtLeast(release: string, major: number, minor: number): boolean {
  const m = /^(\d+)\.(\d+)/.exec(release);
  if (!m) return true;
  const a = Number(m[1]);
  const b = Number(m[2]);
  return a > major || (a === major && b >= minor);
}

function probeSocketDir(host: HostProbe, socketDir: string, qemuUser: Identity, libvirtPresent: boolean): SocketDirAccess {
  const who = `${qemuUser.user} (uid ${qemuUser.uid}, ${qemuUser.source}${libvirtPresent ? ', from libvirt' : ''})`;
  const st = host.stat(socketDir);
  const blocked: string[] = [];
  for (let d = path.dirname(socketDir); ; d = path.dirname(d)) {
    const up = host.stat(d);
    if (up && !canAccess(up, qemuUser, 'x')) blocked.push(d);
    if (d === '/') break;
  }
  const access: SocketDirAccess = { who, st, blocked, create: false, problems: [], fixes: [] };
  if (!st?.isDirectory) return access;
  const enter = canAccess(st, qemuUser, 'x');
  access.create = canAccess(st, qemuUser, 'wx');
  const badSockets = (host.readdir(socketDir) ?? [])
    .map((f) => ({ f, st: host.stat(path.join(socketDir, f)) }))
    .filter((e) => e.st?.isSocket && !canAccess(e.st, qemuUser, 'w'))
    .map((e) => e.f);
  if (blocked.length) access.problems.push(`cannot enter ${blocked.join(', ')}`);
  if (!enter) access.problems.push(`cannot enter ${socketDir}`);
  if (badSockets.length) access.problems.push(`cannot connect to ${badSockets.join(', ')} (no write permission)`);
  if (blocked.length) access.fixes.push(`chmod o+x ${blocked.join(' ')}`);
  if (!enter || !access.create) access.fixes.push(`chgrp ${qemuUser.group} ${socketDir} && chmod 0770 ${socketDir} (or setfacl -m u:${qemuUser.user}:rwx ${socketDir})`);
  if (badSockets.length) access.fixes.push(`create ports with a socket group/permissions QEMU can use (e.g. group ${qemuUser.group}, mode 0660), or chgrp ${qemuUser.group} + chmod 0660 the sockets`);
  return access;
}

export async function probeHost(opts: ProbeOptions): Promise<Facts> {
  const host = opts.host ?? realHost();
  const socketDir = path.resolve(opts.socketDir ?? opts.runDir);
  const qemu = await probeQemu(host, opts.qemuBinary);
  const kvmSt = host.stat('/dev/kvm');
  const libvirt = await probeLibvirt(host);
  const mem = parseMeminfo(host.readFile('/proc/meminfo') ?? '');
  const hugeMounts = parseMounts(host.readFile('/proc/mounts') ?? '').filter((m) => m.fsType === 'hugetlbfs');
  const memory = {
    mem,
    hugeMounts,
    memfd: kernelAtLeast(host.kernelRelease(), 3, 17) && (qemu.objects.length === 0 || qemu.objects.includes('memory-backend-memfd')),
    hugeUsable: mem.hugePagesTotal > 0 && hugeMounts.length > 0,
  };
  const passwd = parsePasswd(host.readFile('/etc/passwd') ?? '');
  const groups = parseGroup(host.readFile('/etc/group') ?? '');
  const confText = host.readFile('/etc/libvirt/qemu.conf');
  const conf = confText ? parseQemuConf(confText) : {};
  const myGroup = host.gids()[0] ?? host.uid();
  const me: Identity = { user: passwd.find((p) => p.uid === host.uid())?.name ?? String(host.uid()), group: groups.find((g) => g.gid === myGroup)?.name ?? String(myGroup), uid: host.uid(), gids: host.gids(), dacOverride: host.uid() === 0, source: 'this user' };
  const qemuUser = libvirt.present ? resolveQemuIdentity(conf, passwd, groups) : me;
  return {
    host,
    runDir: opts.runDir,
    socketDir,
    qemu,
    kvm: { st: kvmSt, usable: !!kvmSt && kvmSt.isCharDevice && host.canOpenRw('/dev/kvm') },
    libvirt,
    memory,
    conf,
    me,
    qemuUser,
    sockets: qemuUser ? probeSocketDir(host, socketDir, qemuUser, libvirt.present) : null,
  };
}
