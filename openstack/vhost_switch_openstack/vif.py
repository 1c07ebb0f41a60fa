"""binding:vif_details of a vhost-switch port, and the socket path rule.

The same rule lives in the switch's src/attach/neutron.ts (`vhost-switch vif --format nova`); a vitest test
(test/unit/openstack-vif.test.ts) compares the two outputs.
"""
import os
import re

# neutron-lib's VHOST_USER_DEVICE_PREFIX and nova.network.model.NIC_NAME_LEN: the socket basename
# is the device name Neutron's OVS driver and os-vif use, so a port id maps to a switch port name.
VHOST_USER_DEVICE_PREFIX = 'vhu'
NIC_NAME_LEN = 14
# sun_path holds 108 bytes including the terminating NUL.
UNIX_PATH_MAX = 107

_UUID_RE = re.compile(r'^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$', re.I)
_PORT_NAME_RE = re.compile(r'^vhu[0-9a-f]{8}-[0-9a-f]{2}$')


def is_port_id(port_id):
    return isinstance(port_id, str) and bool(_UUID_RE.match(port_id))


def port_name(port_id):
    """The switch port name (and socket basename) of a Neutron port: 'vhu' + 11 characters of its id."""
    if not is_port_id(port_id):
        raise ValueError('not a Neutron port UUID: %r' % (port_id,))
    return (VHOST_USER_DEVICE_PREFIX + port_id.lower())[:NIC_NAME_LEN]


def is_port_name(name):
    """True for names of the 'vhu' + 11 characters shape, i.e. switch ports that stand for Neutron ports."""
    return isinstance(name, str) and bool(_PORT_NAME_RE.match(name))


def socket_path(socket_dir, port_id):
    """<socket_dir>/vhu<first 11 characters of the port id>, refused when AF_UNIX cannot hold it."""
    path = os.path.join(os.path.abspath(socket_dir), port_name(port_id))
    if len(path.encode()) > UNIX_PATH_MAX:
        raise ValueError('socket path %s is %d bytes; AF_UNIX allows %d' % (path, len(path.encode()), UNIX_PATH_MAX))
    return path


def vif_details(socket_dir, port_id, port_filter):
    """binding:vif_details for the port.

    vhostuser_mode is QEMU's side: QEMU creates the socket (server) and the switch connects to it as a
    client and reconnects, so either may start or restart first. vhostuser_ovs_plug false makes Nova
    use os-vif's 'noop' plugin: the agent, not Nova, plugs the port into the switch.
    """
    return {
        'port_filter': bool(port_filter),
        'vhostuser_mode': 'server',
        'vhostuser_socket': socket_path(socket_dir, port_id),
        'vhostuser_ovs_plug': False,
        'connectivity': 'l2',
    }
