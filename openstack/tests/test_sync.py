"""The switch port the agent wants for a Neutron port, and the create/delete plan against the switch's list."""
import pytest

from vhost_switch_openstack.agent import sync

P1 = '3f2a9c1e-5b7d-4e21-9a0b-1c2d3e4f5a6b'
P2 = '7c1d0e2f-3a4b-4c5d-8e9f-0a1b2c3d4e5f'
MAPPINGS = {'physnet1': 'eth1'}


def details(port_id=P1, **kw):
    d = {'device': port_id, 'port_id': port_id, 'network_id': 'net1', 'mac_address': 'FA:16:3E:00:00:01',
         'admin_state_up': True, 'network_type': 'vlan', 'segmentation_id': 100, 'physical_network': 'physnet1',
         'mtu': 1500, 'fixed_ips': [{'subnet_id': 's', 'ip_address': '169.254.10.1'}],
         'allowed_address_pairs': [], 'port_security_enabled': True}
    d.update(kw)
    return d


def test_vlan_port_with_port_security():
    assert sync.desired_port(details(), '/run/vhu', MAPPINGS) == {
        'name': 'vhu3f2a9c1e-5b',
        'type': 'vhost-user',
        'mode': 'client',
        'socket': '/run/vhu/vhu3f2a9c1e-5b',
        'mac': 'fa:16:3e:00:00:01',
        'mtu': 1500,
        'vlan': 100,
        'portSecurity': True,
        'allowedMacs': [],
        'allowedIps': ['169.254.10.1', 'fe80::f816:3eff:fe00:1'],
    }


def test_flat_is_vlan_0_and_mtu_follows_the_network():
    spec = sync.desired_port(details(network_type='flat', segmentation_id=None, mtu=9000), '/run/vhu', MAPPINGS)
    assert spec['vlan'] == 0 and spec['mtu'] == 9000


def test_allowed_address_pairs():
    pairs = [{'ip_address': '169.254.20.0/24', 'mac_address': 'fa:16:3e:00:00:02'},
             {'ip_address': '169.254.30.5', 'mac_address': 'fa:16:3e:00:00:01'}]
    spec = sync.desired_port(details(allowed_address_pairs=pairs), '/run/vhu', MAPPINGS)
    assert spec['allowedMacs'] == ['fa:16:3e:00:00:02']
    assert spec['allowedIps'] == sorted(['169.254.10.1', '169.254.20.0/24', '169.254.30.5',
                                         'fe80::f816:3eff:fe00:1', 'fe80::f816:3eff:fe00:2'])


def test_port_security_disabled_on_the_port_or_the_agent():
    assert 'portSecurity' not in sync.desired_port(details(port_security_enabled=False), '/run/vhu', MAPPINGS)
    assert 'portSecurity' not in sync.desired_port(details(), '/run/vhu', MAPPINGS, port_security=False)


@pytest.mark.parametrize('kw,why', [
    ({'physical_network': 'physnet2'}, 'physical network physnet2'),
    ({'network_type': 'vxlan', 'physical_network': None}, 'network type vxlan'),
    ({'mtu': 10000}, 'MTU'),
    ({'allowed_address_pairs': [{'ip_address': '169.254.1.%d' % i} for i in range(70)]}, 'at most 64'),
])
def test_unwireable(kw, why):
    with pytest.raises(sync.Unwireable, match=why):
        sync.desired_port(details(**kw), '/run/vhu', MAPPINGS)


def test_unbound_details_are_unwireable():
    with pytest.raises(sync.Unwireable, match='no bound segment'):
        sync.desired_port({'device': P1}, '/run/vhu', MAPPINGS)


def test_parse_mappings():
    assert sync.parse_mappings(['physnet1:eth1', ' physnet2 : veth0 ', '']) == {'physnet1': 'eth1', 'physnet2': 'veth0'}
    for bad in (['physnet1'], ['physnet1:eth1', 'physnet1:eth2'], ['a:eth1', 'b:eth1'], [':eth1']):
        with pytest.raises(ValueError):
            sync.parse_mappings(bad)


def test_eui64_link_local():
    assert sync.eui64_link_local('52:54:00:12:34:56') == 'fe80::5054:ff:fe12:3456'


def switch_view(spec, **kw):
    """A port as GET /v1/ports shows it: defaults filled in."""
    p = {'type': 'vhost-user', 'queues': 1, 'vlanMode': 'access', 'trunk': False, 'portSecurity': False,
         'allowedMacs': [], 'allowedIps': [], 'origin': 'api', 'state': 'connecting', 'id': 3, 'offloads': False}
    p.update(spec)
    p.update(kw)
    return p


def test_plan_leaves_matching_ports_alone_and_recreates_changed_ones():
    a = sync.desired_port(details(P1), '/run/vhu', MAPPINGS)
    b = sync.desired_port(details(P2, mac_address='fa:16:3e:00:00:09'), '/run/vhu', MAPPINGS)
    actual = [switch_view(a, allowedIps=list(reversed(a['allowedIps']))), switch_view(b, vlan=101)]
    plan = sync.plan({a['name']: a, b['name']: b}, actual, '/run/vhu')
    assert plan.unchanged == [a['name']]
    assert [s['name'] for s in plan.recreate] == [b['name']]
    assert plan.create == [] and plan.delete == []


def test_plan_deletes_only_owned_ports():
    a = sync.desired_port(details(P1), '/run/vhu', MAPPINGS)
    actual = [
        switch_view(a),
        switch_view({'name': 'vhu7c1d0e2f-3a', 'mode': 'client', 'socket': '/run/vhu/vhu7c1d0e2f-3a'}),
        switch_view({'name': 'vhu00000000-00', 'mode': 'client', 'socket': '/other/vhu00000000-00'}),
        switch_view({'name': 'vhu11111111-11', 'mode': 'client', 'socket': '/run/vhu/vhu11111111-11'},
                    origin='config'),
        switch_view({'name': 'vm1', 'mode': 'server', 'socket': '/run/vhu/vm1'}),
        {'name': 'uplink-eth1', 'type': 'nic', 'iface': 'eth1', 'vlanMode': 'trunk', 'origin': 'api'},
    ]
    plan = sync.plan({a['name']: a}, actual, '/run/vhu')
    assert plan.delete == ['vhu7c1d0e2f-3a']
    assert plan.unchanged == [a['name']]


def test_plan_does_not_take_over_a_config_port_of_the_same_name():
    a = sync.desired_port(details(P1), '/run/vhu', MAPPINGS)
    plan = sync.plan({a['name']: a}, [switch_view(a, origin='config', vlan=5)], '/run/vhu')
    assert a['name'] in plan.conflicts and not plan.recreate


def test_uplinks():
    assert sync.uplinks_plan({'physnet1': 'eth1', 'physnet2': 'eth2'},
                             [{'name': 'wan', 'type': 'nic', 'iface': 'eth2'}]) == [
        {'name': 'uplink-eth1', 'type': 'nic', 'iface': 'eth1', 'vlanMode': 'trunk', 'vlan': 0}]
