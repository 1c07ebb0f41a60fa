"""ML2 mechanism driver `vhost_switch`: binds normal vNIC ports to the vhost-switch agent of their host.

Built on Neutron's agent-based driver base like the Open vSwitch, Linux bridge and macvtap drivers: a port
is bound when an alive agent of type AGENT_TYPE runs on binding:host_id and maps the segment's physical
network. Everything about the host (socket directory, mappings, port security) comes from the agent's
reported configurations, so one driver serves any number of compute hosts.
"""
from neutron_lib.api.definitions import portbindings
from neutron_lib.plugins.ml2 import api
from oslo_log import log

from neutron.plugins.ml2.drivers import mech_agent

from vhost_switch_openstack import constants as c
from vhost_switch_openstack import vif

LOG = log.getLogger(__name__)


class VhostSwitchMechanismDriver(mech_agent.SimpleAgentMechanismDriverBase):

    def __init__(self):
        super().__init__(
            c.AGENT_TYPE,
            portbindings.VIF_TYPE_VHOST_USER,
            {},
            supported_vnic_types=[portbindings.VNIC_NORMAL])

    @property
    def connectivity(self):
        # Ports without IP addresses are bound only by drivers that declare l2 connectivity.
        return portbindings.CONNECTIVITY_L2

    def get_allowed_network_types(self, agent=None):
        if agent is None:
            return c.NETWORK_TYPES
        reported = agent['configurations'].get(c.CONF_NETWORK_TYPES, c.NETWORK_TYPES)
        return tuple(t for t in reported if t in c.NETWORK_TYPES)

    def get_mappings(self, agent):
        return agent['configurations'].get(c.CONF_INTERFACE_MAPPINGS, {})

    def check_segment_for_agent(self, segment, agent):
        if agent['agent_type'] != self.agent_type:
            return False
        ok = super().check_segment_for_agent(segment, agent)
        if not ok:
            LOG.info('vhost_switch does not bind segment %(seg)s (%(type)s, physnet %(physnet)s) on host %(host)s: '
                     'the agent there wires %(types)s networks on physnets %(physnets)s',
                     {'seg': segment.get(api.ID), 'type': segment.get(api.NETWORK_TYPE),
                      'physnet': segment.get(api.PHYSICAL_NETWORK), 'host': agent.get('host'),
                      'types': list(self.get_allowed_network_types(agent)),
                      'physnets': sorted(self.get_mappings(agent))})
        elif not agent['configurations'].get(c.CONF_SOCKET_DIR):
            LOG.warning('vhost_switch agent on host %s reports no socket_dir; not binding', agent.get('host'))
            return False
        return ok

    def bind_port(self, context):
        vnic_type = context.current.get(portbindings.VNIC_TYPE, portbindings.VNIC_NORMAL)
        if vnic_type not in self.supported_vnic_types:
            LOG.info('vhost_switch does not bind port %(port)s: vnic_type %(vnic)s (it binds %(ok)s)',
                     {'port': context.current['id'], 'vnic': vnic_type, 'ok': self.supported_vnic_types})
            return
        agents = context.host_agents(self.agent_type)
        if not agents:
            LOG.info('vhost_switch does not bind port %(port)s: no %(type)s on host %(host)s',
                     {'port': context.current['id'], 'type': self.agent_type, 'host': context.host})
            return
        if not any(a['alive'] for a in agents):
            LOG.warning('vhost_switch does not bind port %(port)s: the %(type)s on host %(host)s is not alive '
                        '(no state report within agent_down_time)',
                        {'port': context.current['id'], 'type': self.agent_type, 'host': context.host})
            return
        super().bind_port(context)

    def get_vif_details(self, context, agent, segment):
        conf = agent['configurations']
        return vif.vif_details(conf[c.CONF_SOCKET_DIR], context.current['id'],
                               conf.get(c.CONF_PORT_SECURITY, True))

    def get_supported_vif_type(self, agent):
        return portbindings.VIF_TYPE_VHOST_USER

    def get_standard_device_mappings(self, agent):
        return self.get_mappings(agent)

