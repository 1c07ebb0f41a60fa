// OpenStack naming and the Neutron/Nova view of a vhost-switch port.
//
// Everything here is written from reading (not copying) these public sources:
//   - neutron-lib constants: VHOST_USER_DEVICE_PREFIX = 'vhu'; portbindings keys
//     (vhostuser_mode / vhostuser_socket / vhostuser_ovs_plug / port_filter / connectivity).
//   - neutron/plugins/ml2/drivers/openvswitch/mech_driver/mech_openvswitch.py:
//     agent_vhu_sockpath() = join(vhostuser_socket_dir, ('vhu' + port_id)[:14]) and
//     get_vhost_mode(): the mode in vif_details is QEMU's side (OVS server -> 'client').
//   - nova/network/model.py: VIF_TYPE_VHOSTUSER, VIF_DETAILS_VHOSTUSER_*, NIC_NAME_LEN = 14,
//     the VIF/Network dict layout (extra keyword arguments go to 'meta').
//   - nova/network/neutron.py _build_vif_model(): devname = ('tap' + port id)[:14].
//   - nova/network/os_vif_util.py _nova_to_osvif_vif_vhostuser(): with vhostuser_ovs_plug false
//     (and no fp/vrouter plug) Nova picks the os-vif 'noop' plugin and vif_name = devname, so
//     nothing tries to add the port to an OVS bridge; mode defaults to 'server' when missing.
import path from 'node:path';
import { MAX_SOCKET_PATH_BYTES } from '../host/runDir.js';

/** neutron-lib VHOST_USER_DEVICE_PREFIX. */
export const VHOST_USER_DEVICE_PREFIX = 'vhu';
/** nova.network.model.NIC_NAME_LEN (and the 14 in Neutron's agent_vhu_sockpath). */
export const NIC_NAME_LEN = 14;
/** neutron's ovs_constants.VHOST_USER_SOCKET_DIR: the OVS agent's default vhostuser_socket_dir. */
export const OVS_VHOST_USER_SOCKET_DIR = '/var/run/openvswitch';

export type SocketMode = 'server' | 'client';

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isNeutronPortId(id: string): boolean {
  return UUID_RE.test(id);
}

/**
 * The switch port name for a Neutron port: 'vhu' + the first 11 characters of the port UUID
 * (14 characters in all), exactly the socket basename Neutron's OVS mechanism driver and os-vif use,
 * so a Neutron port id maps to a switch port with no extra table.
 */
export function portNameFromNeutronId(portId: string): string {
  if (!isNeutronPortId(portId)) {
    throw new Error(`not a Neutron port UUID: ${JSON.stringify(portId)}`);
  }
  return (VHOST_USER_DEVICE_PREFIX + portId.toLowerCase()).slice(0, NIC_NAME_LEN);
}

/** True when a port name has the Neutron shape 'vhu' + 11 characters of a UUID. */
export function isNeutronPortName(name: string): boolean {
  return /^vhu[0-9a-f]{8}-[0-9a-f]{2}$/.test(name);
}

/** Does this Neutron port UUID belong to that switch port name? */
export function neutronIdMatchesPortName(portId: string, name: string): boolean {
  return isNeutronPortId(portId) && portNameFromNeutronId(portId) === name;
}

/** Nova's tap device name for a Neutron port (nova/network/neutron.py _build_vif_model). */
export function novaDevnameFromNeutronId(portId: string): string {
  return ('tap' + portId.toLowerCase()).slice(0, NIC_NAME_LEN);
}

/**
 * The socket directory: an explicit setting wins, then VHOST_SWITCH_SOCKET_DIR, then the run dir.
 * (Nova/os-vif deployments with OVS commonly use /var/run/openvswitch, Neutron's
 * [ovs] vhostuser_socket_dir; any directory the QEMU user can reach works.)
 */
export function resolveSocketDir(
  opts: { socketDir?: string; runDir: string },
  env: Record<string, string | undefined> = process.env,
): string {
  const dir = opts.socketDir ?? env.VHOST_SWITCH_SOCKET_DIR ?? opts.runDir;
  if (!dir) throw new Error('no socket directory: give a run directory or a socket directory');
  return path.resolve(dir);
}

/** The socket path of a port: <socketDir>/<name>, refused when the name is not a plain file name or too long. */
export function socketPathFor(name: string, socketDir: string): string {
  if (!name || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) {
    throw new Error(`port name ${JSON.stringify(name)} cannot be a socket file name`);
  }
  const p = path.join(path.resolve(socketDir), name);
  if (Buffer.byteLength(p) > MAX_SOCKET_PATH_BYTES) {
    throw new Error(`socket path ${p} is ${Buffer.byteLength(p)} bytes; AF_UNIX allows ${MAX_SOCKET_PATH_BYTES}`);
  }
  return p;
}

/** QEMU's side of the socket: the opposite of the switch's. */
export function qemuSocketMode(switchMode: SocketMode): SocketMode {
  return switchMode === 'server' ? 'client' : 'server';
}

/** The binding:vif_details a mechanism driver returns for a vhost-switch port. */
export interface VhostUserVifDetails {
  /** true when the switch filters the port's traffic (port security), as openstack/'s driver reports it. */
  port_filter: boolean;
  /** QEMU's side: 'client' when the switch listens. */
  vhostuser_mode: SocketMode;
  vhostuser_socket: string;
  /** false: os-vif must not add the port to an OVS bridge (Nova then uses the 'noop' os-vif plugin). */
  vhostuser_ovs_plug: boolean;
  connectivity: 'l2';
}

export interface NeutronBinding {
  'binding:vif_type': 'vhostuser';
  'binding:vnic_type': 'normal';
  'binding:vif_details': VhostUserVifDetails;
  'binding:host_id'?: string;
}

export interface BindingPort {
  mode: SocketMode;
  socket: string;
  /** The switch enforces port security on the port (MAC/IP anti-spoofing): vif_details port_filter. */
  portSecurity?: boolean;
}

export function neutronVifDetails(port: BindingPort): VhostUserVifDetails {
  return {
    port_filter: port.portSecurity === true,
    vhostuser_mode: qemuSocketMode(port.mode),
    vhostuser_socket: port.socket,
    vhostuser_ovs_plug: false,
    connectivity: 'l2',
  };
}

export function neutronBinding(port: BindingPort, hostId?: string): NeutronBinding {
  const b: NeutronBinding = {
    'binding:vif_type': 'vhostuser',
    'binding:vnic_type': 'normal',
    'binding:vif_details': neutronVifDetails(port),
  };
  if (hostId) b['binding:host_id'] = hostId;
  return b;
}

export interface NovaVifInput extends BindingPort {
  mac: string;
  mtu?: number;
  neutronPortId?: string;
  networkId?: string;
  networkLabel?: string;
}

/**
 * The nova.network.model.VIF dict Nova builds from such a binding (nova/network/neutron.py
 * _build_vif_model + _nw_info_build_network): bridge is None (not an OVS-plugged vhostuser port),
 * ovs_interfaceid is None, devname is 'tap' + port id, the network MTU sits in network.meta.
 */
export function novaNetworkModelVif(input: NovaVifInput): Record<string, unknown> {
  const id = input.neutronPortId ?? null;
  return {
    id,
    address: input.mac,
    network: {
      id: input.networkId ?? null,
      bridge: null,
      label: input.networkLabel ?? null,
      subnets: [],
      meta: { injected: false, tenant_id: null, mtu: input.mtu ?? null },
    },
    type: 'vhostuser',
    details: neutronVifDetails(input),
    devname: id ? novaDevnameFromNeutronId(id) : null,
    ovs_interfaceid: null,
    qbh_params: null,
    qbg_params: null,
    active: false,
    vnic_type: 'normal',
    profile: {},
    preserve_on_delete: false,
    delegate_create: true,
    meta: {},
  };
}

/** The os-vif object Nova converts that VIF into (os_vif_util._nova_to_osvif_vif_vhostuser, 'noop' branch). */
export function osVifObject(input: NovaVifInput): Record<string, unknown> {
  const id = input.neutronPortId ?? null;
  return {
    'os_vif.object': 'VIFVHostUser',
    plugin: 'noop',
    id,
    address: input.mac,
    vif_name: id ? novaDevnameFromNeutronId(id) : null,
    mode: qemuSocketMode(input.mode),
    path: input.socket,
  };
}
