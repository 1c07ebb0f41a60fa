"""oslo.config options of vhost-switch-neutron-agent."""
from oslo_config import cfg

from vhost_switch_openstack import constants as c

VHOST_SWITCH_OPTS = [
    cfg.StrOpt('control_socket', default=c.DEFAULT_CONTROL_SOCKET,
               help='The switch daemon\'s control socket (RUN_DIR/control.sock).'),
    cfg.StrOpt('socket_dir', default=c.DEFAULT_SOCKET_DIR,
               help='Directory of the vhost-user sockets QEMU creates (vhu + 11 characters of the port id). '
                    'It must be in the switch config\'s switch.socketDirs and writable by libvirt\'s QEMU user.'),
    cfg.ListOpt('physical_interface_mappings', default=[],
                help='PHYSNET:INTERFACE,...: each physical network and the host interface that carries it. The '
                     'interface becomes a nic trunk port of the switch (VLAN networks tagged, flat untagged).'),
    cfg.BoolOpt('port_security', default=True,
                help='Enforce Neutron port security (MAC and IP anti-spoofing from fixed IPs and allowed address '
                     'pairs) in the switch for ports with port_security_enabled.'),
    cfg.FloatOpt('switch_timeout', default=10.0, help='Seconds to wait for one control API answer.'),
]

AGENT_OPTS = [
    cfg.IntOpt('polling_interval', default=2,
               help='Seconds between two comparisons of Neutron\'s ports with the switch\'s.'),
]


def register_opts(conf=cfg.CONF):
    from neutron.conf.agent import common as agent_conf
    conf.register_opts(VHOST_SWITCH_OPTS, 'vhost_switch')
    agent_conf.register_agent_state_opts_helper(conf)
    try:
        conf.register_opts(AGENT_OPTS, 'AGENT')
    except cfg.DuplicateOptError:
        pass
