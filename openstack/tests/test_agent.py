"""The agent's resync logic: VhostSwitchAgent.sync_once against a fake switch and a fake Neutron."""
import pytest

from vhost_switch_openstack.agent import agent as agent_mod

from fakes import FakeNeutron, FakeSwitch

P1 = '3f2a9c1e-5b7d-4e21-9a0b-1c2d3e4f5a6b'
P2 = '7c1d0e2f-3a4b-4c5d-8e9f-0a1b2c3d4e5f'
P3 = '9e8d7c6b-5a49-4382-a716-151413121110'


@pytest.fixture
def env():
    neutron = FakeNeutron()
    neutron.add_network('net1', segmentation_id=100)
    neutron.add_network('net2', segmentation_id=200)
    switch = FakeSwitch()
    a = agent_mod.VhostSwitchAgent('compute1', neutron, switch, '/run/vhu', {'physnet1': 'eth1'})
    return neutron, switch, a


def test_creates_ports_with_vlan_and_mac_and_reports_them_up(env):
    neutron, switch, a = env
    neutron.add_port(P1, 'net1', 'fa:16:3e:00:00:01', fixed_ips=['169.254.10.1'])
    neutron.add_port(P2, 'net2', 'fa:16:3e:00:00:02')
    up, down = a.sync_once()
    assert sorted(up) == sorted([P1, P2]) and down == []
    p1 = switch.ports['vhu3f2a9c1e-5b']
    assert (p1['mode'], p1['socket'], p1['vlan'], p1['mac']) == ('client', '/run/vhu/vhu3f2a9c1e-5b', 100,
                                                                   'fa:16:3e:00:00:01')
    assert p1['portSecurity'] and '169.254.10.1' in p1['allowedIps']
    assert switch.ports['vhu7c1d0e2f-3a']['vlan'] == 200
    assert switch.ports['uplink-eth1'] == dict(switch.ports['uplink-eth1'], type='nic', iface='eth1', vlanMode='trunk')
    assert neutron.status == {P1: 'ACTIVE', P2: 'ACTIVE'}


def test_ports_of_other_hosts_and_other_drivers_are_ignored(env):
    neutron, switch, a = env
    neutron.add_port(P1, 'net1', 'fa:16:3e:00:00:01', host='compute2')
    neutron.add_port(P2, 'net1', 'fa:16:3e:00:00:02', socket_dir='/var/run/openvswitch')
    a.sync_once()
    assert sorted(switch.ports) == ['uplink-eth1']


def test_steady_state_touches_nothing_and_asks_no_details(env):
    neutron, switch, a = env
    neutron.add_port(P1, 'net1', 'fa:16:3e:00:00:01')
    a.sync_once()
    switch.calls.clear()
    neutron.detail_calls.clear()
    for _ in range(3):
        assert a.sync_once() == ([], [])
    assert switch.calls == [] and neutron.detail_calls == []
    assert neutron.status[P1] == 'ACTIVE'


def test_deleted_port_leaves_the_switch(env):
    neutron, switch, a = env
    neutron.add_port(P1, 'net1', 'fa:16:3e:00:00:01')
    neutron.add_port(P2, 'net1', 'fa:16:3e:00:00:02')
    a.sync_once()
    del neutron.ports[P1]
    a.sync_once()
    assert 'vhu3f2a9c1e-5b' not in switch.ports and 'vhu7c1d0e2f-3a' in switch.ports


def test_changed_address_pairs_recreate_only_that_port(env):
    neutron, switch, a = env
    neutron.add_port(P1, 'net1', 'fa:16:3e:00:00:01', fixed_ips=['169.254.10.1'])
    neutron.add_port(P2, 'net1', 'fa:16:3e:00:00:02', fixed_ips=['169.254.10.2'])
    a.sync_once()
    switch.calls.clear()
    neutron.ports[P1]['allowed_address_pairs'] = [{'ip_address': '169.254.99.0/24', 'mac_address': 'fa:16:3e:00:00:01'}]
    up, _ = a.sync_once()
    assert switch.calls == [('delete', 'vhu3f2a9c1e-5b'), ('create', 'vhu3f2a9c1e-5b')]
    assert '169.254.99.0/24' in switch.ports['vhu3f2a9c1e-5b']['allowedIps']
    assert up == [P1] and neutron.status == {P1: 'ACTIVE', P2: 'ACTIVE'}


def test_agent_restart_recreates_nothing_that_did_not_change(env):
    neutron, switch, a = env
    neutron.add_port(P1, 'net1', 'fa:16:3e:00:00:01', fixed_ips=['169.254.10.1'])
    neutron.add_port(P2, 'net2', 'fa:16:3e:00:00:02')
    a.sync_once()
    # meanwhile (agent down): P2 deleted, P3 created
    del neutron.ports[P2]
    neutron.add_port(P3, 'net1', 'fa:16:3e:00:00:03')
    switch.calls.clear()
    fresh = agent_mod.VhostSwitchAgent('compute1', neutron, switch, '/run/vhu', {'physnet1': 'eth1'})
    up, _ = fresh.sync_once()
    assert sorted(switch.calls) == [('create', 'vhu9e8d7c6b-5a'), ('delete', 'vhu7c1d0e2f-3a')]
    assert sorted(up) == sorted([P1, P3])
    assert neutron.status[P1] == 'ACTIVE' and neutron.status[P3] == 'ACTIVE'


def test_switch_restart_without_state_gets_the_ports_back(env):
    neutron, switch, a = env
    neutron.add_port(P1, 'net1', 'fa:16:3e:00:00:01')
    a.sync_once()
    switch.up = False
    assert a.sync_once() == ([], [])
    assert a.sync_once() == ([], [])
    switch.ports.clear()
    switch.up = True
    a.sync_once()
    assert 'vhu3f2a9c1e-5b' in switch.ports and 'uplink-eth1' in switch.ports
    assert neutron.status[P1] == 'ACTIVE'


def test_neutron_down_leaves_the_switch_alone_then_catches_up(env):
    neutron, switch, a = env
    neutron.add_port(P1, 'net1', 'fa:16:3e:00:00:01')
    a.sync_once()
    neutron.down = True
    switch.calls.clear()
    assert a.sync_once() == ([], [])
    assert switch.calls == []
    neutron.down = False
    neutron.add_port(P2, 'net1', 'fa:16:3e:00:00:02')
    up, _ = a.sync_once()
    assert up == [P2] and 'vhu3f2a9c1e-5b' in switch.ports


def test_refused_port_stays_down_with_the_reason_logged_and_others_work(env, caplog):
    neutron, switch, a = env
    neutron.add_port(P1, 'net1', 'fa:16:3e:00:00:01')
    a.sync_once()
    # an agent whose socket_dir the switch config does not list in switch.socketDirs
    b = agent_mod.VhostSwitchAgent('compute1', neutron, switch, '/not/allowed', {'physnet1': 'eth1'})
    neutron.add_port(P2, 'net1', 'fa:16:3e:00:00:02', socket_dir='/not/allowed')
    up, down = b.sync_once()
    assert up == [] and down == [P2]
    assert neutron.status[P2] == 'DOWN'
    assert 'outside the allowed directories' in caplog.text
    caplog.clear()
    b.sync_once()
    assert 'outside the allowed directories' not in caplog.text  # logged once per reason, not every pass
    assert 'vhu3f2a9c1e-5b' in switch.ports


def test_unmapped_physnet_port_stays_down(env, caplog):
    neutron, switch, a = env
    neutron.add_network('net3', physical_network='physnet7')
    neutron.add_port(P1, 'net3', 'fa:16:3e:00:00:01')
    up, down = a.sync_once()
    assert down == [P1] and 'physnet7' in caplog.text
    assert 'vhu3f2a9c1e-5b' not in switch.ports


def test_admin_down_removes_the_switch_port_and_reports_down(env):
    neutron, switch, a = env
    neutron.add_port(P1, 'net1', 'fa:16:3e:00:00:01')
    a.sync_once()
    neutron.ports[P1]['admin_state_up'] = False
    up, down = a.sync_once()
    assert down == [P1] and 'vhu3f2a9c1e-5b' not in switch.ports and neutron.status[P1] == 'DOWN'
    assert a.sync_once() == ([], [])


def test_configurations_report_what_the_driver_needs(env):
    neutron, switch, a = env
    a.sync_once()
    conf = a.configurations()
    assert conf['socket_dir'] == '/run/vhu'
    assert conf['interface_mappings'] == {'physnet1': 'eth1'}
    assert conf['network_types'] == ['flat', 'vlan']
    assert conf['switch_version'] == '0.1.0'


def test_missing_uplink_interface_is_logged_once_and_retried(env, caplog):
    neutron, switch, a = env
    real_create = switch.create_port

    def refuse_nic(spec):
        if spec.get('type') == 'nic':
            raise agent_mod.switch_client.SwitchError('POST', '/v1/ports', 422, {'error': 'iface: no interface eth1'})
        return real_create(spec)

    switch.create_port = refuse_nic
    neutron.add_port(P1, 'net1', 'fa:16:3e:00:00:01')
    a.sync_once()
    a.sync_once()
    assert caplog.text.count('refused uplink') == 1
    assert 'vhu3f2a9c1e-5b' in switch.ports  # the VM ports do not wait for the uplink
    switch.create_port = real_create
    a.sync_once()
    assert 'uplink-eth1' in switch.ports


def test_switch_going_away_mid_pass_is_retried_without_refetching_details(env):
    neutron, switch, a = env
    neutron.add_port(P1, 'net1', 'fa:16:3e:00:00:01')
    neutron.add_port(P2, 'net1', 'fa:16:3e:00:00:02')
    a.sync_once()
    del neutron.ports[P2]
    real_delete = switch.delete_port

    def vanish(name):
        switch.up = False
        real_delete.__self__._check()

    switch.delete_port = vanish
    neutron.detail_calls.clear()
    assert a.sync_once() == ([], [])
    switch.up = True
    switch.delete_port = real_delete
    a.sync_once()
    assert 'vhu7c1d0e2f-3a' not in switch.ports and 'vhu3f2a9c1e-5b' in switch.ports
    assert neutron.detail_calls == [] and neutron.status[P1] == 'ACTIVE'


def test_network_update_refetches_only_that_networks_ports(env):
    neutron, switch, a = env
    neutron.add_port(P1, 'net1', 'fa:16:3e:00:00:01')
    neutron.add_port(P2, 'net2', 'fa:16:3e:00:00:02')
    a.sync_once()
    neutron.networks['net2']['mtu'] = 1400
    neutron.detail_calls.clear()
    switch.calls.clear()
    a.stale_networks.add('net2')  # what the network_update fanout does
    up, _ = a.sync_once()
    assert neutron.detail_calls == [[P2]]
    assert switch.calls == [('delete', 'vhu7c1d0e2f-3a'), ('create', 'vhu7c1d0e2f-3a')]
    assert switch.ports['vhu7c1d0e2f-3a']['mtu'] == 1400 and up == [P2]
    assert neutron.status == {P1: 'ACTIVE', P2: 'ACTIVE'}


def test_details_neutron_could_not_give_are_asked_again_next_pass(env, caplog):
    # A network's MTU changed, but Neutron failed the details call for its port (e.g. its database was busy): the
    # port's own dict did not change, so only the agent remembers that it still has to ask.
    neutron, switch, a = env
    neutron.add_port(P2, 'net2', 'fa:16:3e:00:00:02')
    a.sync_once()
    neutron.networks['net2']['mtu'] = 1400
    neutron.fail_details.add(P2)
    a.stale_networks.add('net2')
    neutron.detail_calls.clear()
    a.sync_once()
    assert 'could not give the details of port %s' % P2 in caplog.text
    assert switch.ports['vhu7c1d0e2f-3a']['mtu'] == 1500
    a.sync_once()
    assert neutron.detail_calls == [[P2], [P2]]
    assert switch.ports['vhu7c1d0e2f-3a']['mtu'] == 1400
    a.sync_once()
    assert neutron.detail_calls == [[P2], [P2]]  # asked again once, not every pass


def test_network_update_survives_a_failed_details_call(env):
    neutron, switch, a = env
    neutron.add_port(P2, 'net2', 'fa:16:3e:00:00:02')
    a.sync_once()
    neutron.networks['net2']['mtu'] = 1400
    a.stale_networks.add('net2')
    real = neutron.get_details

    def down(*args):
        raise RuntimeError('MessagingTimeout')
    neutron.get_details = down
    assert a.sync_once() == ([], [])
    neutron.get_details = real
    a.sync_once()
    assert switch.ports['vhu7c1d0e2f-3a']['mtu'] == 1400
