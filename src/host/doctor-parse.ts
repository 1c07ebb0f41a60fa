// What `vhost-switch doctor` reads on a host, parsed: versions, QEMU's help lists, /proc files, qemu.conf and
// nova.conf, users and groups, permissions, AppArmor and SELinux. Every parser is a pure function of text, so it
// unit-tests without the host.
import path from 'node:path';
import type { QemuVersion } from '../attach/vif-port.js';
import type { FileStat } from './probe.js';

export interface Version extends QemuVersion {
  text: string;
}

function mkVersion(m: RegExpExecArray | null): Version | null {
  if (!m) return null;
  return { major: Number(m[1]), minor: Number(m[2]), micro: Number(m[3] ?? 0), text: m[0] };
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

/** The settings of /etc/libvirt/qemu.conf that matter here (comments ignored, lists and strings). */
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
