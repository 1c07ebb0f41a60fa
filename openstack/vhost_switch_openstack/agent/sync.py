"""What the switch should hold for the Neutron ports bound to this host, and the steps to get there.

Pure functions over plain dicts (Neutron's device details, the switch's port list), so that the agent's
decisions are unit-tested without Neutron or a switch.
"""
import ipaddress
import os

from vhost_switch_openstack import vif

# The switch's limits (src/config.ts): MTU range and entries per allowedMacs / allowedIps list.
MIN_MTU = 68
MAX_MTU = 9710
MAX_ALLOWED_ADDRESSES = 64
DEFAULT_MTU = 1500


class Unwireable(ValueError):
    """A bound port this agent cannot put into the switch; the message says why (it goes to the log)."""


def parse_mappings(items):
    """['physnet1:eth1', ...] -> {'physnet1': 'eth1'}; each physnet and each interface once."""
    mappings = {}
    for item in items or []:
        item = item.strip()
        if not item:
            continue
        physnet, sep, iface = item.partition(':')
        physnet, iface = physnet.strip(), iface.strip()
        if not sep or not physnet or not iface:
            raise ValueError('physical_interface_mappings: %r is not PHYSNET:INTERFACE' % item)
        if physnet in mappings:
            raise ValueError('physical_interface_mappings: physnet %s is mapped twice' % physnet)
        if iface in mappings.values():
            raise ValueError('physical_interface_mappings: interface %s is mapped twice' % iface)
        mappings[physnet] = iface
    return mappings


def eui64_link_local(mac):
    """The IPv6 link-local address a MAC gives by EUI-64 (RFC 4291 appendix A), as Neutron's firewalls allow."""
    b = [int(x, 16) for x in mac.split(':')]
    b[0] ^= 0x02
    iid = bytes(b[:3] + [0xff, 0xfe] + b[3:])
    return str(ipaddress.IPv6Address(b'\xfe\x80' + b'\x00' * 6 + iid))


def _norm_ip(text):
    """An address or prefix as the switch stores it, for comparison ('10.0.0.1' and '10.0.0.1/32' differ)."""
    text = text.strip().lower()
    if '/' in text:
        return str(ipaddress.ip_network(text, strict=False))
    return str(ipaddress.ip_address(text))


def desired_port(details, socket_dir, mappings, port_security=True):
    """The switch port spec (POST /v1/ports body) for Neutron device details of a port bound here."""
    port_id = details.get('port_id') or details.get('device')
    if not vif.is_port_id(port_id):
        raise Unwireable('not a Neutron port id: %r' % (port_id,))
    if 'network_id' not in details:
        raise Unwireable('Neutron has no bound segment for port %s on this host' % port_id)
    net_type = details.get('network_type')
    if net_type not in ('flat', 'vlan'):
        raise Unwireable('port %s: network type %s is not supported (flat, vlan)' % (port_id, net_type))
    physnet = details.get('physical_network')
    if physnet not in mappings:
        raise Unwireable('port %s: physical network %s is not in physical_interface_mappings' % (port_id, physnet))
    vlan = int(details.get('segmentation_id') or 0) if net_type == 'vlan' else 0
    if net_type == 'vlan' and not 1 <= vlan <= 4094:
        raise Unwireable('port %s: VLAN %r out of range' % (port_id, details.get('segmentation_id')))
    mtu = details.get('mtu') or DEFAULT_MTU
    if not MIN_MTU <= mtu <= MAX_MTU:
        raise Unwireable('port %s: network MTU %d outside the switch range %d..%d' % (port_id, mtu, MIN_MTU, MAX_MTU))
    mac = details['mac_address'].lower()
    spec = {
        'name': vif.port_name(port_id),
        'type': 'vhost-user',
        'mode': 'client',
        'socket': vif.socket_path(socket_dir, port_id),
        'mac': mac,
        'mtu': mtu,
        'vlan': vlan,
    }
    if port_security and details.get('port_security_enabled', True):
        macs, ips = [], []
        for ip in details.get('fixed_ips') or []:
            ips.append(_norm_ip(ip['ip_address']))
        for pair in details.get('allowed_address_pairs') or []:
            pair_mac = (pair.get('mac_address') or mac).lower()
            if pair_mac != mac and pair_mac not in macs:
                macs.append(pair_mac)
            ips.append(_norm_ip(pair['ip_address']))
        for m in [mac] + macs:
            ips.append(eui64_link_local(m))
        ips = sorted(set(ips))
        if len(macs) > MAX_ALLOWED_ADDRESSES or len(ips) > MAX_ALLOWED_ADDRESSES:
            raise Unwireable('port %s: %d MACs / %d addresses in allowed address pairs and fixed IPs; the switch '
                             'takes at most %d each' % (port_id, len(macs), len(ips), MAX_ALLOWED_ADDRESSES))
        spec.update(portSecurity=True, allowedMacs=sorted(macs), allowedIps=ips)
    return spec


def uplink_spec(physnet, iface):
    """The mapped interface as a `nic` trunk: VLAN networks tagged on the wire, flat ones untagged (native 0)."""
    del physnet  # the name comes from the interface, which is unique per host
    return {'name': 'uplink-' + iface, 'type': 'nic', 'iface': iface, 'vlanMode': 'trunk', 'vlan': 0}


def _comparable(port):
    p = {
        'type': port.get('type', 'vhost-user'),
        'mode': port.get('mode', 'server'),
        'socket': os.path.abspath(port['socket']) if port.get('socket') else None,
        'mac': (port.get('mac') or '').lower() or None,
        'mtu': port.get('mtu', DEFAULT_MTU),
        'vlan': port.get('vlan', 0),
        'vlanMode': port.get('vlanMode', 'access'),
        'portSecurity': bool(port.get('portSecurity', False)),
        'allowedMacs': sorted(m.lower() for m in port.get('allowedMacs') or []),
        'allowedIps': sorted(_norm_ip(i) for i in port.get('allowedIps') or []),
    }
    return p


def port_matches(spec, actual):
    """Does the switch's port already carry what the spec asks (so it must not be touched)?"""
    return _comparable(spec) == _comparable(actual)


def is_owned(port, socket_dir):
    """Switch ports this agent manages: API-created vhost-user client ports named vhu… in its socket_dir."""
    return (vif.is_port_name(port.get('name'))
            and port.get('type', 'vhost-user') == 'vhost-user'
            and port.get('origin', 'api') == 'api'
            and bool(port.get('socket'))
            and os.path.dirname(os.path.abspath(port['socket'])) == os.path.abspath(socket_dir))


class Plan:
    def __init__(self):
        self.create = []      # specs of ports the switch lacks
        self.recreate = []    # specs whose switch port differs (deleted, then created)
        self.delete = []      # names of owned switch ports no Neutron port wants
        self.unchanged = []   # names left alone
        self.conflicts = {}   # name -> why the agent cannot manage it

    def __repr__(self):
        return ('Plan(create=%s, recreate=%s, delete=%s, unchanged=%s, conflicts=%s)'
                % ([s['name'] for s in self.create], [s['name'] for s in self.recreate], self.delete,
                   self.unchanged, self.conflicts))


def plan(desired, actual, socket_dir):
    """desired: {name: spec}; actual: the switch's port list. Only owned ports are ever deleted."""
    result = Plan()
    by_name = {p['name']: p for p in actual}
    for name, spec in sorted(desired.items()):
        have = by_name.get(name)
        if have is None:
            result.create.append(spec)
        elif port_matches(spec, have):
            result.unchanged.append(name)
        elif not is_owned(have, socket_dir):
            result.conflicts[name] = ('the switch already has a port %s that this agent did not create (origin %s, '
                                      'socket %s)' % (name, have.get('origin'), have.get('socket')))
        else:
            result.recreate.append(spec)
    for p in actual:
        if p['name'] not in desired and is_owned(p, socket_dir):
            result.delete.append(p['name'])
    return result


def uplinks_plan(mappings, actual):
    """Specs of the nic trunk ports to create: mapped interfaces no switch port binds yet."""
    bound = {p.get('iface') for p in actual if p.get('type') == 'nic'}
    return [uplink_spec(physnet, iface) for physnet, iface in sorted(mappings.items()) if iface not in bound]
