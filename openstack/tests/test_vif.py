import pytest

from vhost_switch_openstack import vif

PORT_ID = '3f2a9c1e-5b7d-4e21-9a0b-1c2d3e4f5a6b'


def test_port_name_is_vhu_and_11_chars_of_the_id():
    assert vif.port_name(PORT_ID) == 'vhu3f2a9c1e-5b'
    assert len(vif.port_name(PORT_ID)) == vif.NIC_NAME_LEN
    assert vif.port_name(PORT_ID.upper()) == 'vhu3f2a9c1e-5b'
    assert vif.is_port_name('vhu3f2a9c1e-5b')
    assert not vif.is_port_name('uplink-eth1')


def test_socket_path_joins_the_socket_dir():
    assert vif.socket_path('/run/vhost-switch/vhu/', PORT_ID) == '/run/vhost-switch/vhu/vhu3f2a9c1e-5b'


def test_vif_details():
    assert vif.vif_details('/var/lib/vhu', PORT_ID, True) == {
        'port_filter': True,
        'vhostuser_mode': 'server',
        'vhostuser_socket': '/var/lib/vhu/vhu3f2a9c1e-5b',
        'vhostuser_ovs_plug': False,
        'connectivity': 'l2',
    }
    assert vif.vif_details('/var/lib/vhu', PORT_ID, False)['port_filter'] is False


@pytest.mark.parametrize('bad', ['', 'vm1', '3f2a9c1e5b7d4e219a0b1c2d3e4f5a6b', None])
def test_not_a_port_id(bad):
    with pytest.raises(ValueError):
        vif.port_name(bad)


def test_socket_path_longer_than_af_unix_is_refused():
    with pytest.raises(ValueError, match='AF_UNIX'):
        vif.socket_path('/' + 'd' * 100, PORT_ID)
