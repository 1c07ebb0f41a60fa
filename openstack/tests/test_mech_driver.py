"""Binding decisions of the vhost_switch mechanism driver against ML2's PortContext interface."""
import pytest

from vhost_switch_openstack import constants as c
from vhost_switch_openstack.ml2 import mech_driver

PORT_ID = '3f2a9c1e-5b7d-4e21-9a0b-1c2d3e4f5a6b'


def agent(alive=True, mappings=None, socket_dir='/run/vhu', port_security=True, agent_type=c.AGENT_TYPE, **conf):
    configurations = {
        c.CONF_SOCKET_DIR: socket_dir,
        c.CONF_INTERFACE_MAPPINGS: {'physnet1': 'eth1'} if mappings is None else mappings,
        c.CONF_NETWORK_TYPES: ['flat', 'vlan'],
        c.CONF_PORT_SECURITY: port_security,
    }
    configurations.update(conf)
    return {'agent_type': agent_type, 'alive': alive, 'host': 'compute1', 'configurations': configurations}


def segment(network_type='vlan', physnet='physnet1', seg_id=100):
    return {'id': 'seg-%s-%s' % (network_type, physnet), 'network_type': network_type, 'physical_network': physnet,
            'segmentation_id': seg_id, 'network_id': 'net1'}


class FakeNetwork:
    current = {'id': 'net1'}


class FakeContext:
    def __init__(self, agents, segments, vnic_type='normal'):
        self.current = {'id': PORT_ID, 'binding:vnic_type': vnic_type, 'fixed_ips': [], 'device_owner': 'compute:nova'}
        self.host = 'compute1'
        self.network = FakeNetwork()
        self.segments_to_bind = segments
        self._agents = agents
        self.bound = None

    def host_agents(self, agent_type):
        return [a for a in self._agents if a['agent_type'] == agent_type]

    def set_binding(self, segment_id, vif_type, vif_details, status=None):
        self.bound = (segment_id, vif_type, vif_details)


@pytest.fixture
def driver():
    d = mech_driver.VhostSwitchMechanismDriver()
    d.initialize()
    return d


def test_binds_a_vlan_segment_on_a_mapped_physnet(driver):
    ctx = FakeContext([agent()], [segment()])
    driver.bind_port(ctx)
    assert ctx.bound == ('seg-vlan-physnet1', 'vhostuser', {
        'port_filter': True,
        'vhostuser_mode': 'server',
        'vhostuser_socket': '/run/vhu/vhu3f2a9c1e-5b',
        'vhostuser_ovs_plug': False,
        'connectivity': 'l2',
    })


def test_binds_flat(driver):
    ctx = FakeContext([agent()], [segment('flat', seg_id=None)])
    driver.bind_port(ctx)
    assert ctx.bound[0] == 'seg-flat-physnet1'


def test_port_filter_follows_the_agent(driver):
    ctx = FakeContext([agent(port_security=False)], [segment()])
    driver.bind_port(ctx)
    assert ctx.bound[2]['port_filter'] is False


def test_socket_dir_comes_from_the_agent_of_the_host(driver):
    ctx = FakeContext([agent(socket_dir='/var/lib/libvirt/qemu/vhu')], [segment()])
    driver.bind_port(ctx)
    assert ctx.bound[2]['vhostuser_socket'] == '/var/lib/libvirt/qemu/vhu/vhu3f2a9c1e-5b'


def test_declares_l2_connectivity(driver):
    assert driver.connectivity == 'l2'


def test_picks_the_segment_the_agent_maps(driver):
    ctx = FakeContext([agent()], [segment(physnet='physnet9'), segment(physnet='physnet1', seg_id=101)])
    driver.bind_port(ctx)
    assert ctx.bound[0] == 'seg-vlan-physnet1'


@pytest.mark.parametrize('ctx_args,why', [
    (([agent()], [segment(physnet='physnet2')]), 'unmapped physnet'),
    (([agent()], [segment('vxlan', physnet=None, seg_id=5000)]), 'unsupported network type'),
    (([agent()], [segment('geneve', physnet=None, seg_id=7)]), 'unsupported network type'),
    (([agent(alive=False)], [segment()]), 'dead agent'),
    (([], [segment()]), 'no agent on the host'),
    (([agent(agent_type='Open vSwitch agent')], [segment()]), 'another agent type'),
    (([agent(socket_dir='')], [segment()]), 'agent without socket_dir'),
])
def test_does_not_bind(driver, ctx_args, why):
    ctx = FakeContext(*ctx_args)
    driver.bind_port(ctx)
    assert ctx.bound is None, why


@pytest.mark.parametrize('vnic', ['direct', 'macvtap', 'baremetal', 'vdpa'])
def test_only_normal_vnics(driver, vnic):
    ctx = FakeContext([agent()], [segment()], vnic_type=vnic)
    driver.bind_port(ctx)
    assert ctx.bound is None


def test_agent_network_types_are_limited_to_what_the_driver_knows(driver):
    a = agent(network_types=['vlan', 'vxlan'])
    assert driver.get_allowed_network_types(a) == ('vlan',)
    assert driver.get_allowed_network_types() == ('flat', 'vlan')


def test_logs_why_it_does_not_bind(driver, caplog):
    caplog.set_level('INFO')
    driver.bind_port(FakeContext([agent()], [segment(physnet='physnet2')]))
    assert 'physnet physnet2' in caplog.text
    caplog.clear()
    driver.bind_port(FakeContext([agent(alive=False)], [segment()]))
    assert 'not alive' in caplog.text
