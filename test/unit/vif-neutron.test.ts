// Neutron/os-vif naming: 'vhu' + port UUID[:11] in a configurable socket directory.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  isNeutronPortName,
  neutronBinding,
  neutronIdMatchesPortName,
  novaDevnameFromNeutronId,
  OVS_VHOST_USER_SOCKET_DIR,
  portNameFromNeutronId,
  qemuSocketMode,
  resolveSocketDir,
  socketPathFor,
} from '../../src/attach/neutron.js';

describe('portNameFromNeutronId', () => {
  it('is vhu + the first 11 characters, as Neutron and os-vif name the socket', () => {
    // The port id used throughout Nova's test_vif.py, whose os-vif vif_name is 'vhudc065497-3c'.
    expect(portNameFromNeutronId('dc065497-3c8d-4f44-8fb4-e1d33c16a536')).toBe('vhudc065497-3c');
    expect(portNameFromNeutronId('DC065497-3C8D-4F44-8FB4-E1D33C16A536')).toBe('vhudc065497-3c');
  });
  it('is 14 characters (Nova NIC_NAME_LEN), a valid Linux interface name, and recognisable', () => {
    fc.assert(
      fc.property(fc.uuid(), (id) => {
        const n = portNameFromNeutronId(id);
        expect(n).toHaveLength(14);
        expect(isNeutronPortName(n)).toBe(true);
        expect(neutronIdMatchesPortName(id, n)).toBe(true);
        expect(novaDevnameFromNeutronId(id)).toBe('tap' + n.slice(3));
      }),
    );
  });
  it('refuses what is not a UUID', () => {
    for (const bad of ['', 'dc065497', 'dc065497-3c8d-4f44-8fb4-e1d33c16a53', '../../etc/passwd-0000-0000-000000000000']) {
      expect(() => portNameFromNeutronId(bad)).toThrow(/UUID/);
    }
    expect(isNeutronPortName('vhu1')).toBe(false);
  });
});

describe('socket directory and paths', () => {
  it('defaults to the run dir, then the environment, then an explicit setting', () => {
    expect(resolveSocketDir({ runDir: '/run/vhost-switch' }, {})).toBe('/run/vhost-switch');
    expect(resolveSocketDir({ runDir: '/run/vhost-switch' }, { VHOST_SWITCH_SOCKET_DIR: '/var/run/openvswitch' })).toBe(OVS_VHOST_USER_SOCKET_DIR);
    expect(resolveSocketDir({ runDir: '/r', socketDir: '/s/' }, { VHOST_SWITCH_SOCKET_DIR: '/e' })).toBe('/s');
  });
  it('joins the port name into the directory', () => {
    expect(socketPathFor('vhudc065497-3c', '/var/run/openvswitch')).toBe('/var/run/openvswitch/vhudc065497-3c');
  });
  it('refuses names that escape the directory and paths AF_UNIX cannot hold', () => {
    for (const bad of ['', '.', '..', 'a/b', 'a\0b']) expect(() => socketPathFor(bad, '/tmp')).toThrow(/socket file name/);
    expect(() => socketPathFor('x'.repeat(100), '/tmp/' + 'd'.repeat(10))).toThrow(/AF_UNIX/);
  });
});

describe('binding', () => {
  it('mode in vif_details is QEMU\'s', () => {
    expect(qemuSocketMode('server')).toBe('client');
    expect(neutronBinding({ mode: 'client', socket: '/s' })['binding:vif_details'].vhostuser_mode).toBe('server');
    expect(neutronBinding({ mode: 'server', socket: '/s' }, 'h1')['binding:host_id']).toBe('h1');
  });
});
