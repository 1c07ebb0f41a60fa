"""vhost-switch-neutron-agent: the console script (eventlet, oslo.config, Neutron's agent RPC)."""
# Neutron's RPC layer runs on eventlet: patch before anything opens sockets or starts threads.
from neutron.common import eventlet_utils

eventlet_utils.monkey_patch()

import sys  # noqa: E402
import time  # noqa: E402

from neutron_lib.agent import constants as agent_consts  # noqa: E402
from neutron_lib.agent import topics  # noqa: E402
from neutron_lib import context as n_context  # noqa: E402
from neutron.agent import rpc as agent_rpc  # noqa: E402
from neutron.common import config as common_config  # noqa: E402
from oslo_config import cfg  # noqa: E402
from oslo_log import log  # noqa: E402
import oslo_messaging  # noqa: E402
from oslo_service import loopingcall  # noqa: E402

from vhost_switch_openstack import constants as c  # noqa: E402
from vhost_switch_openstack.agent import agent as agent_mod  # noqa: E402
from vhost_switch_openstack.agent import config as agent_config  # noqa: E402
from vhost_switch_openstack.agent import switch_client  # noqa: E402
from vhost_switch_openstack.agent import sync  # noqa: E402

LOG = log.getLogger(__name__)



class NeutronRpc:
    """The Neutron side of VhostSwitchAgent: Neutron's plugin RPC API, as the OVS and macvtap agents use it."""

    def __init__(self):
        self.context = n_context.get_admin_context_without_session()
        self.plugin_rpc = agent_rpc.PluginApi(topics.PLUGIN)

    def get_ports(self, host):
        return self.plugin_rpc.get_ports_by_vnic_type_and_host(self.context, 'normal', host)

    def get_details(self, port_ids, agent_id, host):
        r = self.plugin_rpc.get_devices_details_list_and_failed_devices(self.context, port_ids, agent_id, host)
        return r.get('devices', []), r.get('failed_devices', [])

    def update_devices(self, up, down, agent_id, host):
        r = self.plugin_rpc.update_device_list(self.context, up, down, agent_id, host)
        failed = r.get('failed_devices_up', []) + r.get('failed_devices_down', [])
        if failed:
            raise RuntimeError('Neutron failed to update devices %s' % failed)


class NotificationEndpoint:
    """port_update / port_delete / network_update fanouts wake the loop; the loop itself finds what changed."""

    # The version of ML2's agent notifier API (AgentNotifierApi) whose casts this endpoint takes: without it
    # oslo.messaging assumes 1.0 and refuses network_update (sent as 1.4) and the binding casts (1.5).
    target = oslo_messaging.Target(version='1.5')

    def __init__(self, agent):
        self.agent = agent

    def port_update(self, context, **kwargs):
        self.agent.wake.set()

    def port_delete(self, context, **kwargs):
        self.agent.wake.set()

    def network_update(self, context, **kwargs):
        # MTU or segment changes are not in the port dicts: fetch the details of that network's ports again.
        net_id = (kwargs.get('network') or {}).get('id')
        if net_id:
            self.agent.stale_networks.add(net_id)
        else:
            self.agent.fullsync = True
        self.agent.wake.set()

    def binding_activate(self, context, **kwargs):
        self.agent.wake.set()

    def binding_deactivate(self, context, **kwargs):
        self.agent.wake.set()


def _state_reporter(agent, state_rpc, context):
    state = {
        'binary': c.AGENT_BINARY,
        'host': agent.host,
        'topic': 'N/A',
        'agent_type': c.AGENT_TYPE,
        'start_flag': True,
        'configurations': agent.configurations(),
    }
    failed = [False]

    def report():
        state['configurations'] = agent.configurations()
        try:
            status = state_rpc.report_state(context, state, True)
            state.pop('start_flag', None)
            if status == agent_consts.AGENT_REVIVED:
                LOG.info('Neutron had considered this agent dead; full resync')
                agent.fullsync = True
                agent.wake.set()
            if failed[0]:
                LOG.info('State reported again after a failure')
            failed[0] = False
        except Exception:
            failed[0] = True
            LOG.exception('Failed reporting state; retrying at the next interval')
    return report


def main(argv=None):
    common_config.register_common_config_options()
    agent_config.register_opts(cfg.CONF)
    common_config.init(sys.argv[1:] if argv is None else argv)
    common_config.setup_logging()
    conf = cfg.CONF
    try:
        mappings = sync.parse_mappings(conf.vhost_switch.physical_interface_mappings)
    except ValueError as e:
        LOG.error('%s', e)
        return 1
    agent = agent_mod.VhostSwitchAgent(
        host=conf.host,
        neutron=NeutronRpc(),
        switch=switch_client.SwitchClient(conf.vhost_switch.control_socket, conf.vhost_switch.switch_timeout),
        socket_dir=conf.vhost_switch.socket_dir,
        mappings=mappings,
        port_security=conf.vhost_switch.port_security)
    LOG.info('vhost-switch agent on host %s: control socket %s, socket dir %s, mappings %s',
             conf.host, conf.vhost_switch.control_socket, conf.vhost_switch.socket_dir, mappings)

    connection = agent_rpc.create_consumers(
        [NotificationEndpoint(agent)], topics.AGENT,
        [[topics.PORT, topics.UPDATE], [topics.PORT, topics.DELETE], [topics.NETWORK, topics.UPDATE]],
        start_listening=False)
    context = n_context.get_admin_context_without_session()
    state_rpc = agent_rpc.PluginReportStateAPI(topics.REPORTS)
    heartbeat = loopingcall.FixedIntervalLoopingCall(_state_reporter(agent, state_rpc, context))
    heartbeat.start(interval=conf.AGENT.report_interval)
    connection.consume_in_threads()

    interval = conf.AGENT.polling_interval
    while True:
        started = time.monotonic()
        agent.wake.clear()
        try:
            agent.sync_once()
        except Exception:
            # a pass changes only what differs, so the next one repairs whatever this one left half done
            LOG.exception('Sync pass failed; retrying')
        agent.wake.wait(max(0.0, interval - (time.monotonic() - started)))


def console():
    sys.exit(main())


if __name__ == '__main__':
    console()
