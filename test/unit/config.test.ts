// Config file validation: defaults, one message per bad field naming it, cross-field rules, and the precedence of
// flags, environment and file.
import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  configSchema,
  defaultConfig,
  fdbVlanMismatch,
  formatRangeList,
  DEFAULT_CONFIG_JSON,
  eui64LinkLocal,
  loadConfigFile,
  lookupId,
  parseCpuList,
  parseWith,
  portCarriesVlan,
  portSpecSchema,
  resolveSettings,
  ValidationError,
} from '../../src/config.js';

function issues(schema: Parameters<typeof parseWith>[0], value: unknown): Array<{ field: string; reason: string }> {
  try {
    parseWith(schema, value);
  } catch (e) {
    expect(e).toBeInstanceOf(ValidationError);
    return (e as ValidationError).issues;
  }
  throw new Error('expected a validation error');
}

function tmp(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'vs-config-'));
}

describe('port spec', () => {
  it('fills defaults', () => {
    expect(parseWith(portSpecSchema, { name: 'vm1' })).toEqual({
      name: 'vm1',
      type: 'vhost-user',
      mode: 'server',
      queues: 1,
      mtu: 1500,
      vlan: 0,
      vlanMode: 'access',
      trunk: false,
      offloads: false,
      portSecurity: false,
      allowedMacs: [],
      allowedIps: [],
      socketMode: 0o660,
    });
  });

  it('normalises MACs and socket modes', () => {
    const p = parseWith(portSpecSchema, { name: 'a', mac: '52:54:00:AB:CD:EF', socketMode: '0600', socketOwner: 107 });
    expect(p.mac).toBe('52:54:00:ab:cd:ef');
    expect(p.socketMode).toBe(0o600);
    expect(parseWith(portSpecSchema, { name: 'a', socketMode: '755' }).socketMode).toBe(0o755);
    expect(parseWith(portSpecSchema, { name: 'a', socketMode: 0o640 }).socketMode).toBe(0o640);
  });

  it.each([
    [{}, 'name', 'is required'],
    [{ name: '' }, 'name', 'must be 1-64 characters'],
    [{ name: '../x' }, 'name', 'must be 1-64 characters'],
    [{ name: 'a'.repeat(65) }, 'name', 'must be 1-64 characters'],
    [{ name: 5 }, 'name', 'must be a string'],
    [{ name: 'a', type: 'bridge' }, 'type', 'must be "vhost-user", "nic" or "tap"'],
    [{ name: 'a', type: 'tap' }, 'iface', 'is required for a tap port'],
    [{ name: 'a', type: 'nic', iface: 'eth1', queues: 2, trunk: true, socket: 'x.sock' }, 'socket', 'is only for vhost-user ports'],
    [{ name: 'a', iface: 'eth1' }, 'iface', 'is only for nic and tap ports'],
    [{ name: 'a', mode: 'both' }, 'mode', 'must be "server" or "client"'],
    [{ name: 'a', queues: 0 }, 'queues', 'must be at least 1'],
    [{ name: 'a', queues: 65 }, 'queues', 'must be at most 64'],
    [{ name: 'a', queues: 1.5 }, 'queues', 'must be an integer'],
    [{ name: 'a', queues: '2' }, 'queues', 'must be a number'],
    [{ name: 'a', mtu: 67 }, 'mtu', 'must be at least 68'],
    [{ name: 'a', mtu: 9711 }, 'mtu', 'must be at most 9710'],
    [{ name: 'a', vlan: 4095 }, 'vlan', 'must be at most 4094'],
    [{ name: 'a', vlan: -1 }, 'vlan', 'must be at least 0'],
    [{ name: 'a', mac: 'zz:54:00:00:00:01' }, 'mac', 'must be a MAC address'],
    [{ name: 'a', mac: '01:00:5e:00:00:01' }, 'mac', 'must be a unicast address'],
    [{ name: 'a', mac: 'ff:ff:ff:ff:ff:ff' }, 'mac', 'must be a unicast address'],
    [{ name: 'a', mac: '00:00:00:00:00:00' }, 'mac', 'must not be all zeros'],
    [{ name: 'a', offloads: 'yes' }, 'offloads', 'must be true or false'],
    [{ name: 'a', socketMode: '0888' }, 'socketMode', 'must be permission bits'],
    [{ name: 'a', socketMode: 0o1777 }, 'socketMode', 'must be permission bits'],
    [{ name: 'a', socketOwner: 'root;rm' }, 'socketOwner', ''],
    [{ name: 'a', socket: '' }, 'socket', 'must not be empty'],
    [{ name: 'a', socket: 'a\0b' }, 'socket', 'must not contain NUL'],
    [{ name: 'a', colour: 'blue' }, 'colour', 'unknown field'],
    [{ name: 'a', vlanMode: 'hybrid' }, 'vlanMode', 'must be "access" or "trunk"'],
    [{ name: 'a', vlanMode: 'access', trunk: true }, 'trunk', 'true contradicts vlanMode "access"'],
    [{ name: 'a', allowedVlans: [100] }, 'allowedVlans', 'is only for trunk ports'],
    [{ name: 'a', vlanMode: 'trunk', allowedVlans: [0] }, 'allowedVlans', 'VLAN 0 is not an integer 1-4094'],
    [{ name: 'a', vlanMode: 'trunk', allowedVlans: '100,4095' }, 'allowedVlans', 'VLAN 4095 is not an integer 1-4094'],
    [{ name: 'a', vlanMode: 'trunk', allowedVlans: '210-200' }, 'allowedVlans', 'range "210-200" is backwards'],
    [{ name: 'a', vlanMode: 'trunk', allowedVlans: 'ten' }, 'allowedVlans', '"ten" is not a VLAN id or range'],
    [{ name: 'a', vlanMode: 'trunk', allowedVlans: [] }, 'allowedVlans', 'must list at least one VLAN'],
    [{ name: 'a', vlanMode: 'trunk', allowedVlans: 7 }, 'allowedVlans', 'must be a VLAN list'],
  ])('%j → %s: %s', (input, field, reason) => {
    const found = issues(portSpecSchema, input);
    expect(found.map((i) => i.field)).toContain(field);
    expect(found.find((i) => i.field === field)!.reason).toContain(reason);
  });

  it('port security: normalises allowed MACs and addresses; prefixes, IPv4 and IPv6 accepted', () => {
    const p = parseWith(portSpecSchema, {
      name: 'a', mac: '52:54:00:00:00:01', portSecurity: true,
      allowedMacs: ['52:54:00:00:00:AA'], allowedIps: ['169.254.1.2', '169.254.0.0/16', 'FE80::1', '2001:db8::/32', '0.0.0.0/0', '::/0'],
    });
    expect(p.portSecurity).toBe(true);
    expect(p.allowedMacs).toEqual(['52:54:00:00:00:aa']);
    expect(p.allowedIps).toEqual(['169.254.1.2', '169.254.0.0/16', 'fe80::1', '2001:db8::/32', '0.0.0.0/0', '::/0']);
    // A MAC alone is enough: only the source MAC is checked then.
    expect(parseWith(portSpecSchema, { name: 'a', mac: '52:54:00:00:00:01', portSecurity: true }).allowedIps).toEqual([]);
  });

  it.each([
    [{ name: 'a', portSecurity: true }, 'mac', 'is required with portSecurity'],
    [{ name: 'a', portSecurity: 'on' }, 'portSecurity', 'must be true or false'],
    [{ name: 'a', mac: '52:54:00:00:00:01', allowedIps: ['169.254.1.1'] }, 'allowedIps', 'needs portSecurity: true'],
    [{ name: 'a', mac: '52:54:00:00:00:01', allowedMacs: ['52:54:00:00:00:02'] }, 'allowedMacs', 'needs portSecurity: true'],
    [{ name: 'a', mac: '52:54:00:00:00:01', portSecurity: true, allowedMacs: ['01:00:5e:00:00:01'] }, 'allowedMacs[0]', 'must be a unicast address'],
    [{ name: 'a', mac: '52:54:00:00:00:01', portSecurity: true, allowedMacs: '52:54:00:00:00:02' }, 'allowedMacs', 'must be an array of MAC addresses'],
    [{ name: 'a', mac: '52:54:00:00:00:01', portSecurity: true, allowedIps: ['169.254.1'] }, 'allowedIps[0]', 'must be an IPv4 or IPv6 address'],
    [{ name: 'a', mac: '52:54:00:00:00:01', portSecurity: true, allowedIps: ['169.254.0.0/33'] }, 'allowedIps[0]', 'must be an IPv4 or IPv6'],
    [{ name: 'a', mac: '52:54:00:00:00:01', portSecurity: true, allowedIps: ['fe80::/129'] }, 'allowedIps[0]', 'must be an IPv4 or IPv6'],
    [{ name: 'a', mac: '52:54:00:00:00:01', portSecurity: true, allowedIps: ['fe80::1%eth0'] }, 'allowedIps[0]', 'must be an IPv4 or IPv6'],
    [{ name: 'a', mac: '52:54:00:00:00:01', portSecurity: true, allowedIps: ['10.0.0.0/8/8'] }, 'allowedIps[0]', 'must be an IPv4 or IPv6'],
    [{ name: 'a', mac: '52:54:00:00:00:01', portSecurity: true, allowedIps: ['10.0.0.0/'] }, 'allowedIps[0]', 'must be an IPv4 or IPv6'],
    [{ name: 'a', mac: '52:54:00:00:00:01', portSecurity: true, allowedIps: [7] }, 'allowedIps[0]', 'must be a string'],
    [{ name: 'a', mac: '52:54:00:00:00:01', portSecurity: true, allowedIps: Array.from({ length: 65 }, (_, i) => `169.254.0.${i}`) }, 'allowedIps', 'at most 64'],
  ])('port security %j → %s: %s', (input, field, reason) => {
    const found = issues(portSpecSchema, input);
    expect(found.map((i) => i.field)).toContain(field);
    expect(found.find((i) => i.field === field)!.reason).toContain(reason);
  });

  it('EUI-64 link-local address of a MAC (what Neutron allows for a port MAC)', () => {
    expect(eui64LinkLocal('52:54:00:12:34:56')).toBe('fe80::5054:ff:fe12:3456');
    expect(eui64LinkLocal('02:00:00:00:00:0a')).toBe('fe80::ff:fe00:a');
  });

  it('VLAN mode: trunk for every port type, `trunk: true` is trunk, allowed VLANs from a list or a string', () => {
    expect(parseWith(portSpecSchema, { name: 'g', vlanMode: 'trunk' })).toMatchObject({ vlanMode: 'trunk', trunk: true, vlan: 0 });
    expect(parseWith(portSpecSchema, { name: 'u', type: 'nic', iface: 'eth1', trunk: true })).toMatchObject({ vlanMode: 'trunk', trunk: true });
    expect(parseWith(portSpecSchema, { name: 'a', vlan: 100 })).toMatchObject({ vlanMode: 'access', trunk: false, vlan: 100 });
    const t = parseWith(portSpecSchema, { name: 't', type: 'tap', iface: 'tap0', vlanMode: 'trunk', vlan: 5, allowedVlans: '300, 100,200-202,100' });
    expect(t.allowedVlans).toEqual([100, 200, 201, 202, 300]);
    expect(parseWith(portSpecSchema, { name: 't', vlanMode: 'trunk', allowedVlans: [7, 3] }).allowedVlans).toEqual([3, 7]);
    expect(formatRangeList(t.allowedVlans!)).toBe('100,200-202,300');
  });

  it('VLAN membership: access ports carry their VLAN; trunks their native VLAN and the allowed ones', () => {
    const access = parseWith(portSpecSchema, { name: 'vm1', vlan: 100 });
    expect(portCarriesVlan(access, 100)).toBe(true);
    expect(portCarriesVlan(access, 7)).toBe(false);
    expect(portCarriesVlan(parseWith(portSpecSchema, { name: 'vm0' }), 7)).toBe(false);
    const trunk = parseWith(portSpecSchema, { name: 't', vlanMode: 'trunk', allowedVlans: '100-101' });
    expect([0, 100, 101, 102, 7].map((v) => portCarriesVlan(trunk, v))).toEqual([true, true, true, false, false]);
    const native5 = parseWith(portSpecSchema, { name: 't', vlanMode: 'trunk', vlan: 5 });
    expect([0, 5, 7, 4094].map((v) => portCarriesVlan(native5, v))).toEqual([false, true, true, true]);
    expect(fdbVlanMismatch(access, 7)).toBe('port "vm1" is an access port of VLAN 100, not on VLAN 7');
    expect(fdbVlanMismatch(trunk, 7)).toBe('port "t" is a trunk of native VLAN 0 and tagged VLANs 100-101, not on VLAN 7');
  });

  it('refuses a non-object', () => {
    expect(issues(portSpecSchema, [1, 2])).toEqual([{ field: '', reason: 'must be a port object' }]);
    expect(issues(portSpecSchema, null)[0]!.reason).toBe('must be a port object');
  });
});

describe('config file', () => {
  it('the embedded default has two server ports with sockets in the run directory', () => {
    const cfg = defaultConfig();
    expect(cfg.ports.map((p) => [p.name, p.mode, p.socket])).toEqual([
      ['vhu0', 'server', 'vhu0.sock'],
      ['vhu1', 'server', 'vhu1.sock'],
    ]);
    expect(DEFAULT_CONFIG_JSON.ports).toHaveLength(2);
  });

  it('an empty object is a valid config with no ports', () => {
    const cfg = parseWith(configSchema, {});
    expect(cfg.ports).toEqual([]);
    expect(cfg.switch.agingSeconds).toBe(300);
  });

  it('names the array index of a bad port, and every bad field at once', () => {
    const e = issues(configSchema, { ports: [{ name: 'ok' }, { name: 'b', mtu: 1, bogus: true }] });
    expect(e).toEqual(
      expect.arrayContaining([
        { field: 'ports[1].mtu', reason: 'must be at least 68' },
        { field: 'ports[1].bogus', reason: 'unknown field' },
      ]),
    );
  });

  it('refuses duplicate port names and FDB entries for unknown ports', () => {
    const e = issues(configSchema, {
      ports: [{ name: 'a' }, { name: 'a' }],
      fdb: [{ mac: '52:54:00:00:00:01', port: 'nope' }],
    });
    expect(e).toContainEqual({ field: 'ports[1].name', reason: 'duplicate port name "a" (also ports[0])' });
    expect(e).toContainEqual({ field: 'fdb[0].port', reason: 'no port named "nope" in ports' });
  });

  it('refuses a static FDB entry on a VLAN its port is not on, naming both VLANs', () => {
    const cfg = { ports: [{ name: 'vm1', vlan: 100 }], fdb: [{ mac: '52:54:00:aa:bb:cc', port: 'vm1', vlan: 7 }] };
    expect(issues(configSchema, cfg)).toEqual([{ field: 'fdb[0].vlan', reason: 'port "vm1" is an access port of VLAN 100, not on VLAN 7' }]);
    expect(parseWith(configSchema, { ...cfg, fdb: [{ mac: '52:54:00:aa:bb:cc', port: 'vm1', vlan: 100 }] }).fdb).toHaveLength(1);
  });

  it('checks threads against cpus', () => {
    expect(issues(configSchema, { switch: { threads: 2, cpus: '1-3' } })).toEqual([{ field: 'switch.cpus', reason: 'lists 3 CPUs for 2 threads' }]);
    expect(parseWith(configSchema, { switch: { cpus: [2, 3] } }).switch.cpus).toEqual([2, 3]);
    expect(issues(configSchema, { switch: { cpus: 'x' } })[0]!.field).toBe('switch.cpus');
    expect(issues(configSchema, { switch: { threads: 0 } })[0]).toEqual({ field: 'switch.threads', reason: 'must be at least 1' });
  });

  it('loadConfigFile names the file and the reason', async () => {
    const dir = tmp();
    const f = path.join(dir, 'c.json');
    fs.writeFileSync(f, '{"ports": [');
    await expect(loadConfigFile(f)).rejects.toThrow(`config ${f}: not valid JSON`);
    fs.writeFileSync(f, JSON.stringify({ ports: [{ name: 'a', queues: 100 }] }));
    await expect(loadConfigFile(f)).rejects.toThrow(`config ${f}: ports[0].queues: must be at most 64`);
    await expect(loadConfigFile(path.join(dir, 'missing.json'))).rejects.toThrow(/ENOENT/);
    fs.writeFileSync(f, JSON.stringify(DEFAULT_CONFIG_JSON));
    expect((await loadConfigFile(f)).ports).toHaveLength(2);
  });
});

describe('settings', () => {
  const cfg = parseWith(configSchema, { switch: { runDir: 'rd', socketDirs: ['socks', '/abs'], threads: 2 } });

  it('config values are relative to the config file', () => {
    const s = resolveSettings(cfg, {}, { runDir: '/default' }, '/etc/vs', {});
    expect(s).toMatchObject({ runDir: '/etc/vs/rd', stateDir: '/etc/vs/rd', socketDirs: ['/etc/vs/socks', '/abs'], threads: 2 });
  });

  it('flags beat the environment, which beats the file', () => {
    const env = { VHOST_SWITCH_RUN_DIR: '/env', VHOST_SWITCH_STATE_DIR: '/envstate' };
    expect(resolveSettings(cfg, {}, { runDir: '/d' }, '/etc', env)).toMatchObject({ runDir: '/env', stateDir: '/envstate' });
    expect(resolveSettings(cfg, { runDir: '/flag', stateDir: '/fs' }, { runDir: '/d' }, '/etc', env)).toMatchObject({ runDir: '/flag', stateDir: '/fs' });
    expect(resolveSettings(parseWith(configSchema, {}), {}, { runDir: '/d' }, '/etc', {})).toMatchObject({ runDir: '/d', threads: 1 });
  });

  it('threads default to the number of pinned CPUs, and must match them', () => {
    const none = parseWith(configSchema, {});
    expect(resolveSettings(none, { cpus: [4, 5, 6] }, { runDir: '/d' }, '/', {}).threads).toBe(3);
    expect(() => resolveSettings(none, { cpus: [4, 5], threads: 3 }, { runDir: '/d' }, '/', {})).toThrow('cpus: lists 2 CPUs for 3 threads');
  });
});

describe('helpers', () => {
  it('parseCpuList', () => {
    expect(parseCpuList('0-2,5, 7')).toEqual([0, 1, 2, 5, 7]);
    expect(() => parseCpuList('3-1')).toThrow('backwards');
    expect(() => parseCpuList('a')).toThrow('not a CPU number');
    expect(() => parseCpuList('5000')).toThrow('0-4095');
  });

  it('lookupId reads passwd/group files and passes numbers through', async () => {
    const etc = tmp();
    fs.writeFileSync(path.join(etc, 'passwd'), 'root:x:0:0::/root:/bin/sh\nqemu:x:107:108::/:/bin/false\n');
    fs.writeFileSync(path.join(etc, 'group'), 'root:x:0:\nkvm:x:108:qemu\n');
    expect(await lookupId('user', 'qemu', etc)).toBe(107);
    expect(await lookupId('group', 'kvm', etc)).toBe(108);
    expect(await lookupId('user', 42, etc)).toBe(42);
    await expect(lookupId('user', 'nobody2', etc)).rejects.toThrow(`no user named "nobody2" in ${etc}/passwd`);
  });
});
