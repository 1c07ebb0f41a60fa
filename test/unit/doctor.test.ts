// vhost-switch doctor: the pure parsers, and runDoctor against fake hosts (no real host is touched).
import { describe, expect, it } from 'vitest';
import {
  apparmorAllowsRw,
  apparmorGlobToRegExp,
  canAccess,
  parseGetenforce,
  parseGroup,
  parseLibvirtVersion,
  parseMeminfo,
  parseMounts,
  parseNovaFileBackedMemory,
  parsePasswd,
  parseQemuConf,
  parseQemuHelpList,
  parseQemuVersion,
  resolveQemuIdentity,
  selinuxType,
} from '../../src/host/doctor-parse.js';
import { runDoctor, type DoctorCheck } from '../../src/host/doctor.js';
import type { ExecResult, FileStat, HostProbe } from '../../src/host/probe.js';

describe('parsers', () => {
  it('QEMU and libvirt versions', () => {
    expect(parseQemuVersion('QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)\nCopyright')).toMatchObject({ major: 7, minor: 2, micro: 22 });
    expect(parseQemuVersion('QEMU emulator version 9.2.0')).toMatchObject({ major: 9, minor: 2, micro: 0 });
    expect(parseQemuVersion('nothing')).toBeNull();
    expect(parseLibvirtVersion('9.0.0\n')).toMatchObject({ major: 9, minor: 0, micro: 0 });
    expect(parseLibvirtVersion('libvirtd (libvirt) 10.10.0')).toMatchObject({ major: 10, minor: 10, micro: 0 });
  });
  it('QEMU help lists', () => {
    const netdev = 'Available netdev backend types:\nsocket\nstream\ntap\nuser\nvhost-user\nvhost-vdpa\n';
    expect(parseQemuHelpList(netdev)).toContain('vhost-user');
    const objects = 'List of user creatable objects:\n  authz-list\n  memory-backend-file\n  memory-backend-memfd\n';
    expect(parseQemuHelpList(objects)).toEqual(['authz-list', 'memory-backend-file', 'memory-backend-memfd']);
  });
  it('/proc/meminfo and /proc/mounts', () => {
    const mi = 'MemTotal: 1000 kB\nHugePages_Total:    1024\nHugePages_Free:     1000\nHugePages_Rsvd:        0\nHugepagesize:       2048 kB\n';
    expect(parseMeminfo(mi)).toEqual({ hugePagesTotal: 1024, hugePagesFree: 1000, hugepageSizeKiB: 2048 });
    expect(parseMeminfo('')).toEqual({ hugePagesTotal: 0, hugePagesFree: 0, hugepageSizeKiB: 0 });
    const m = parseMounts('proc /proc proc rw 0 0\nnodev /dev/hugepages hugetlbfs rw,relatime,pagesize=2M 0 0\nx /mnt/a\\040b ext4 ro 0 0\n');
    expect(m.filter((e) => e.fsType === 'hugetlbfs').map((e) => e.mountPoint)).toEqual(['/dev/hugepages']);
    expect(m[2]!.mountPoint).toBe('/mnt/a b');
  });
  it('qemu.conf: only uncommented settings count', () => {
    const conf = [
      '#user = "libvirt-qemu"',
      '# group = "kvm"',
      'user = "qemu"',
      'group = "+107"',
      'security_driver = [ "selinux", "apparmor" ]',
      'clear_emulator_capabilities = 0',
      '#dynamic_ownership = 1',
      'memory_backing_dir = "/dev/shm/libvirt"',
    ].join('\n');
    expect(parseQemuConf(conf)).toEqual({
      user: 'qemu',
      group: '+107',
      securityDriver: ['selinux', 'apparmor'],
      clearEmulatorCapabilities: false,
      memoryBackingDir: '/dev/shm/libvirt',
    });
    expect(parseQemuConf('security_driver = "none"\n')).toEqual({ securityDriver: ['none'] });
    expect(parseQemuConf('#user = "x"\n')).toEqual({});
  });
  it('getenforce and SELinux contexts', () => {
    expect(parseGetenforce('Enforcing\n')).toBe('Enforcing');
    expect(parseGetenforce('garbage')).toBeNull();
    expect(selinuxType('system_u:object_r:svirt_image_t:s0')).toBe('svirt_image_t');
  });
});

const PASSWD = 'root:x:0:0:root:/root:/bin/bash\nlibvirt-qemu:x:64055:107:Libvirt Qemu:/var/lib/libvirt:/usr/sbin/nologin\nalice:x:1000:1000::/home/alice:/bin/bash\n';
const GROUP = 'root:x:0:\nkvm:x:107:\nlibvirt-qemu:x:64055:libvirt-qemu\nalice:x:1000:\nvhost:x:2000:alice,libvirt-qemu\n';

describe('the QEMU user and permissions', () => {
  const passwd = parsePasswd(PASSWD);
  const groups = parseGroup(GROUP);
  it('distribution default when qemu.conf says nothing (Debian: libvirt-qemu)', () => {
    const id = resolveQemuIdentity({}, passwd, groups)!;
    expect(id).toMatchObject({ user: 'libvirt-qemu', uid: 64055, group: 'kvm', dacOverride: false, source: 'distribution default' });
    expect(id.gids.sort()).toEqual([107, 2000, 64055]);
  });
  it('qemu.conf user/group win; root keeps DAC override only without capability clearing', () => {
    expect(resolveQemuIdentity({ user: 'alice', group: 'vhost' }, passwd, groups)).toMatchObject({ uid: 1000, group: 'vhost' });
    expect(resolveQemuIdentity({ user: 'root' }, passwd, groups)!.dacOverride).toBe(false);
    expect(resolveQemuIdentity({ user: '+0', clearEmulatorCapabilities: false }, passwd, groups)!.dacOverride).toBe(true);
    expect(resolveQemuIdentity({ user: 'nobody-here' }, passwd, groups)).toBeNull();
  });
  it('canAccess uses owner, then group, then other bits', () => {
    const who = { uid: 64055, gids: [107], dacOverride: false };
    expect(canAccess({ mode: 0o700, uid: 0, gid: 0 }, who, 'x')).toBe(false);
    expect(canAccess({ mode: 0o750, uid: 0, gid: 107 }, who, 'x')).toBe(true);
    expect(canAccess({ mode: 0o750, uid: 0, gid: 107 }, who, 'wx')).toBe(false);
    expect(canAccess({ mode: 0o076, uid: 64055, gid: 0 }, who, 'r')).toBe(false); // owner bits apply, not other
    expect(canAccess({ mode: 0o000, uid: 0, gid: 0 }, { ...who, dacOverride: true }, 'rwx')).toBe(true);
  });
});

describe('AppArmor rules', () => {
  it('globs', () => {
    expect(apparmorGlobToRegExp('/run/vhost-switch/**').test('/run/vhost-switch/a/b')).toBe(true);
    expect(apparmorGlobToRegExp('/run/vhost-switch/*').test('/run/vhost-switch/a/b')).toBe(false);
    expect(apparmorGlobToRegExp('/{var/,}run/openvswitch/vhu*').test('/var/run/openvswitch/vhu1234')).toBe(true);
  });
  it('rw rules for the socket directory', () => {
    expect(apparmorAllowsRw(['  "/run/vhost-switch/**" rw,\n'], '/run/vhost-switch')).toBe(true);
    expect(apparmorAllowsRw(['  /run/vhost-switch/** rw,\n'], '/run/vhost-switch')).toBe(true);
    expect(apparmorAllowsRw(['  /run/vhost-switch/** r,\n'], '/run/vhost-switch')).toBe(false);
    expect(apparmorAllowsRw(['  owner @{run}/vhost-switch/* rw,\n'], '/run/vhost-switch')).toBe(true);
    expect(apparmorAllowsRw(['  /run/** rw,\n  deny /run/vhost-switch/** w,\n'], '/run/vhost-switch')).toBe(false);
    expect(apparmorAllowsRw(['#include <abstractions/base>\n', ''], '/run/vhost-switch')).toBe(false);
  });
});

// ---------------------------------------------------------------------------------------------
// A fake host

interface FakeOpts {
  files?: Record<string, string>;
  stats?: Record<string, Partial<FileStat>>;
  dirs?: Record<string, string[]>;
  tools?: Record<string, (args: string[]) => ExecResult>;
  kvmRw?: boolean;
  kernel?: string;
  uid?: number;
}

const dir = (mode: number, uid = 0, gid = 0): Partial<FileStat> => ({ mode: 0o040000 | mode, uid, gid, isDirectory: true });
const sock = (mode: number, uid = 0, gid = 0): Partial<FileStat> => ({ mode: 0o140000 | mode, uid, gid, isSocket: true });
const out = (stdout: string): ExecResult => ({ code: 0, stdout, stderr: '' });

const QEMU_TOOLS = {
  'qemu-system-x86_64': (a: string[]) =>
    a[0] === '--version'
      ? out('QEMU emulator version 7.2.22 (Debian)\n')
      : a[0] === '-netdev'
        ? out('Available netdev backend types:\nsocket\ntap\nvhost-user\n')
        : out('List of user creatable objects:\n  memory-backend-file\n  memory-backend-memfd\n'),
};
const LIBVIRT_TOOLS = { virsh: () => out('9.0.0\n'), libvirtd: () => out('libvirtd (libvirt) 9.0.0\n') };

function fakeHost(o: FakeOpts = {}): HostProbe {
  const stats: Record<string, Partial<FileStat>> = {
    '/': dir(0o755),
    '/run': dir(0o755),
    '/dev/kvm': { mode: 0o020660, uid: 0, gid: 107, isCharDevice: true },
    '/run/libvirt/libvirt-sock': sock(0o666),
    '/run/vhost-switch': dir(0o770, 0, 64055),
    ...o.stats,
  };
  const files: Record<string, string> = {
    '/etc/passwd': PASSWD,
    '/etc/group': GROUP,
    '/proc/meminfo': 'HugePages_Total:    512\nHugePages_Free:     512\nHugepagesize:       2048 kB\n',
    '/proc/mounts': 'nodev /dev/hugepages hugetlbfs rw 0 0\n',
    ...o.files,
  };
  const tools: Record<string, (args: string[]) => ExecResult> = { ...QEMU_TOOLS, ...LIBVIRT_TOOLS, ...o.tools };
  const full = (s: Partial<FileStat>): FileStat => ({ mode: 0, uid: 0, gid: 0, isDirectory: false, isSocket: false, isCharDevice: false, ...s });
  return {
    readFile: (p) => files[p] ?? null,
    stat: (p) => (stats[p] ? full(stats[p]!) : null),
    readdir: (p) => o.dirs?.[p] ?? (stats[p]?.isDirectory ? [] : null),
    exec: async (cmd, args) => {
      const t = tools[cmd.split('/').pop()!];
      return t ? t(args) : null;
    },
    which: (cmd) => (tools[cmd] ? `/usr/bin/${cmd}` : null),
    canOpenRw: (p) => p === '/dev/kvm' && (o.kvmRw ?? true) && !!stats[p],
    kernelRelease: () => o.kernel ?? '6.1.0-18-amd64',
    arch: () => 'x64',
    uid: () => o.uid ?? 0,
    gids: () => [0],
  };
}

const check = (checks: DoctorCheck[], name: string) => {
  const c = checks.find((x) => x.name === name);
  if (!c) throw new Error(`no check ${name} in ${checks.map((x) => x.name).join(', ')}`);
  return c;
};

describe('runDoctor on fake hosts', () => {
  it('a healthy Debian host with libvirt', async () => {
    const r = await runDoctor({ runDir: '/run/vhost-switch', host: fakeHost() });
    expect(r.checks.filter((c) => !c.ok)).toEqual([]);
    expect(r.ok).toBe(true);
    expect(check(r.checks, 'qemu').detail).toContain('QEMU 7.2.22');
    expect(check(r.checks, 'socket-dir').detail).toContain('libvirt-qemu');
    expect(r.report).toMatch(/ready for vhost-user guests/);
  });

  it('no QEMU is an error with an install hint', async () => {
    const r = await runDoctor({ runDir: '/run/vhost-switch', host: fakeHost({ tools: { 'qemu-system-x86_64': undefined as never } }) });
    const q = check(r.checks, 'qemu');
    expect(q).toMatchObject({ ok: false, severity: 'error' });
    expect(q.fix).toMatch(/apt-get install qemu-system-x86/);
    expect(r.ok).toBe(false);
    expect(r.report).toMatch(/\[FAIL\] qemu:/);
  });

  it('QEMU 7.2 without /dev/kvm: TCG and the MSI-X note with vectors=0', async () => {
    const host = fakeHost({ stats: { '/dev/kvm': undefined as never } });
    const r = await runDoctor({ runDir: '/run/vhost-switch', host });
    expect(check(r.checks, 'kvm')).toMatchObject({ ok: false, severity: 'warning' });
    const m = check(r.checks, 'qemu-7.2-tcg-msix');
    expect(m).toMatchObject({ ok: false, severity: 'warning' });
    expect(m.fix).toContain('vectors=0');
    expect(m.fix).toContain("<qemu:property name='vectors' type='unsigned' value='0'/>");
    expect(r.ok).toBe(true); // warnings only
  });

  it('other QEMU versions get no MSI-X note', async () => {
    const tools = { 'qemu-system-x86_64': (a: string[]) => (a[0] === '--version' ? out('QEMU emulator version 8.2.2\n') : QEMU_TOOLS['qemu-system-x86_64'](a)) };
    const r = await runDoctor({ runDir: '/run/vhost-switch', host: fakeHost({ tools, stats: { '/dev/kvm': undefined as never } }) });
    expect(r.checks.find((c) => c.name === 'qemu-7.2-tcg-msix')).toBeUndefined();
  });

  it('too old QEMU', async () => {
    const tools = { 'qemu-system-x86_64': () => out('QEMU emulator version 2.5.0\n') };
    const r = await runDoctor({ runDir: '/run/vhost-switch', host: fakeHost({ tools }) });
    expect(check(r.checks, 'qemu')).toMatchObject({ ok: false, fix: expect.stringContaining('2.12') });
  });

  it('a socket directory QEMU cannot enter', async () => {
    const host = fakeHost({ stats: { '/srv': dir(0o700), '/srv/socks': dir(0o755) } });
    const r = await runDoctor({ runDir: '/run/vhost-switch', socketDir: '/srv/socks', host });
    const s = check(r.checks, 'socket-dir');
    expect(s).toMatchObject({ ok: false, severity: 'error' });
    expect(s.detail).toContain('cannot enter /srv');
    expect(s.fix).toContain('chmod o+x /srv');
    expect(s.fix).toContain('chgrp kvm /srv/socks');
    expect(r.ok).toBe(false);
  });

  it('sockets QEMU cannot connect to (no write permission)', async () => {
    const host = fakeHost({
      stats: { '/run/vhost-switch/vhu1': sock(0o600), '/run/vhost-switch/vhu2': sock(0o660, 0, 107) },
      dirs: { '/run/vhost-switch': ['vhu1', 'vhu2'] },
    });
    const r = await runDoctor({ runDir: '/run/vhost-switch', host });
    const s = check(r.checks, 'socket-dir');
    expect(s.ok).toBe(false);
    expect(s.detail).toContain('cannot connect to vhu1');
    expect(s.detail).not.toContain('vhu2');
    expect(s.fix).toMatch(/0660/);
  });

  it('a directory QEMU can enter but not create sockets in warns about client-mode ports', async () => {
    const host = fakeHost({ stats: { '/run/vhost-switch': dir(0o750, 0, 107) } });
    const r = await runDoctor({ runDir: '/run/vhost-switch', host });
    expect(check(r.checks, 'socket-dir').ok).toBe(true);
    expect(check(r.checks, 'socket-dir-client-ports')).toMatchObject({ ok: false, severity: 'warning' });
  });

  it('a missing socket directory that is not the run dir must be made', async () => {
    const r = await runDoctor({ runDir: '/run/vhost-switch', socketDir: '/var/run/openvswitch', host: fakeHost() });
    expect(check(r.checks, 'socket-dir')).toMatchObject({ ok: false, fix: expect.stringContaining('mkdir -p /var/run/openvswitch') });
  });

  it('no memfd and no hugepages: nothing can share guest memory', async () => {
    const tools = { 'qemu-system-x86_64': (a: string[]) => (a[0] === '-object' ? out('List of user creatable objects:\n  memory-backend-ram\n') : QEMU_TOOLS['qemu-system-x86_64'](a)) };
    const host = fakeHost({ tools, files: { '/proc/meminfo': 'HugePages_Total: 0\n', '/proc/mounts': '' } });
    const r = await runDoctor({ runDir: '/run/vhost-switch', host });
    expect(check(r.checks, 'shared-memory')).toMatchObject({ ok: false, severity: 'error' });
    expect(check(r.checks, 'hugepages')).toMatchObject({ ok: false, severity: 'warning', fix: expect.stringContaining('vm.nr_hugepages') });
  });

  it('a Nova compute host: file_backed_memory, or flavors with hugepages', async () => {
    expect(parseNovaFileBackedMemory('[DEFAULT]\nfile_backed_memory = 5\n[libvirt]\n# file_backed_memory = 9\nvirt_type = kvm\n')).toBe(0);
    expect(parseNovaFileBackedMemory('[libvirt]\nfile_backed_memory = 16384\n')).toBe(16384);
    const none = await runDoctor({ runDir: '/run/vhost-switch', host: fakeHost() });
    expect(none.checks.find((c) => c.name === 'nova-memory')).toBeUndefined();
    const off = await runDoctor({ runDir: '/run/vhost-switch', host: fakeHost({ files: { '/etc/nova/nova.conf': '[libvirt]\nvirt_type = kvm\n' } }) });
    expect(check(off.checks, 'nova-memory')).toMatchObject({ ok: false, severity: 'warning', fix: expect.stringContaining('hw:mem_page_size') });
    expect(check(off.checks, 'nova-memory').detail).toMatch(/never passes traffic/);
    const on = await runDoctor({ runDir: '/run/vhost-switch', host: fakeHost({ files: { '/etc/nova/nova.conf': '[libvirt]\nfile_backed_memory = 16384\n' } }) });
    expect(check(on.checks, 'nova-memory')).toMatchObject({ ok: true });
  });

  it('hugepages reserved but hugetlbfs not mounted', async () => {
    const r = await runDoctor({ runDir: '/run/vhost-switch', host: fakeHost({ files: { '/proc/mounts': '' } }) });
    expect(check(r.checks, 'hugepages').fix).toMatch(/mount -t hugetlbfs/);
    expect(check(r.checks, 'shared-memory').ok).toBe(true); // memfd
  });

  it('AppArmor confining libvirt QEMU without a rule for the socket dir', async () => {
    const files = { '/sys/module/apparmor/parameters/enabled': 'Y\n', '/etc/apparmor.d/abstractions/libvirt-qemu': '  #include <abstractions/base>\n' };
    const r = await runDoctor({ runDir: '/run/vhost-switch', host: fakeHost({ files }) });
    const a = check(r.checks, 'apparmor');
    expect(a).toMatchObject({ ok: false, severity: 'warning' });
    expect(a.fix).toContain('"/run/vhost-switch/**" rw,');
    expect(a.fix).toContain('/etc/apparmor.d/local/abstractions/libvirt-qemu');
    const fixed = await runDoctor({
      runDir: '/run/vhost-switch',
      host: fakeHost({ files: { ...files, '/etc/apparmor.d/local/abstractions/libvirt-qemu': '  "/run/vhost-switch/**" rw,\n' } }),
    });
    expect(check(fixed.checks, 'apparmor').ok).toBe(true);
  });

  it('SELinux enforcing: the socket directory label', async () => {
    const tools = (type: string) => ({ getenforce: () => out('Enforcing\n'), stat: () => out(`system_u:object_r:${type}:s0\n`) });
    const bad = await runDoctor({ runDir: '/run/vhost-switch', host: fakeHost({ tools: tools('var_run_t') }) });
    expect(check(bad.checks, 'selinux')).toMatchObject({ ok: false, fix: expect.stringContaining('svirt_image_t') });
    const good = await runDoctor({ runDir: '/run/vhost-switch', host: fakeHost({ tools: tools('svirt_image_t') }) });
    expect(check(good.checks, 'selinux').ok).toBe(true);
  });

  it('old libvirt without <reconnect>, and libvirt installed but stopped', async () => {
    const old = await runDoctor({ runDir: '/run/vhost-switch', host: fakeHost({ tools: { virsh: () => out('3.0.0\n') } }) });
    expect(check(old.checks, 'libvirt')).toMatchObject({ ok: false, detail: expect.stringContaining('reconnect') });
    const stopped = await runDoctor({ runDir: '/run/vhost-switch', host: fakeHost({ stats: { '/run/libvirt/libvirt-sock': undefined as never } }) });
    expect(check(stopped.checks, 'libvirt')).toMatchObject({ ok: false, severity: 'warning', fix: expect.stringContaining('libvirtd') });
  });

  it('without libvirt, the socket check is for the user who runs QEMU by hand', async () => {
    const host = fakeHost({ tools: { virsh: undefined as never, libvirtd: undefined as never }, uid: 1000 });
    const r = await runDoctor({ runDir: '/run/vhost-switch', host });
    expect(check(r.checks, 'libvirt')).toMatchObject({ ok: true, detail: expect.stringContaining('not installed') });
    expect(check(r.checks, 'socket-dir').detail).toContain('alice');
  });

  it('every failed check says how to fix it', async () => {
    const host = fakeHost({
      tools: { 'qemu-system-x86_64': undefined as never, getenforce: () => out('Enforcing\n'), stat: () => out('u:r:var_run_t:s0\n') },
      stats: { '/dev/kvm': undefined as never, '/srv': dir(0o700), '/srv/s': dir(0o700) },
      files: { '/proc/meminfo': '', '/proc/mounts': '', '/sys/module/apparmor/parameters/enabled': 'Y' },
    });
    const r = await runDoctor({ runDir: '/nonexistent/run', socketDir: '/srv/s', host });
    const failed = r.checks.filter((c) => !c.ok);
    expect(failed.length).toBeGreaterThan(4);
    for (const c of failed) expect(c.fix, c.name).toBeTruthy();
  });
});
