"""A fake switch control API and a fake Neutron RPC side for the agent's unit tests."""
import copy
import os

from vhost_switch_openstack.agent import switch_client


class FakeSwitch:
    """Keeps ports like the daemon's API does: defaults filled in, names unique, socket dirs checked."""

    def __init__(self, allowed_dirs=('/run/vhu',)):
        self.ports = {}
        self.up = True
        self.allowed_dirs = set(allowed_dirs)
        self.calls = []
        self.next_id = 1

    def _check(self):
        if not self.up:
            raise switch_client.SwitchUnavailable('fake switch is down')

    def version(self):
        self._check()
        return {'version': '0.1.0', 'api': 'v1', 'features': []}

    def list_ports(self):
        self._check()
        return [copy.deepcopy(p) for p in self.ports.values()]

    def create_port(self, spec):
        self._check()
        self.calls.append(('create', spec['name']))
        if spec['name'] in self.ports:
            raise switch_client.SwitchError('POST', '/v1/ports', 409, {'error': 'name: port exists'})
        if spec.get('socket') and os.path.dirname(spec['socket']) not in self.allowed_dirs:
            raise switch_client.SwitchError('POST', '/v1/ports', 422,
                                            {'error': 'socket: %s is outside the allowed directories' % spec['socket']})
        port = {'type': 'vhost-user', 'mode': 'server', 'queues': 1, 'mtu': 1500, 'vlan': 0, 'vlanMode': 'access',
                'portSecurity': False, 'allowedMacs': [], 'allowedIps': [], 'origin': 'api', 'state': 'connecting',
                'id': self.next_id}
        self.next_id += 1
        port.update(copy.deepcopy(spec))
        self.ports[spec['name']] = port
        return port

    def delete_port(self, name):
        self._check()
        self.calls.append(('delete', name))
        if name not in self.ports:
            raise switch_client.SwitchError('DELETE', '/v1/ports/' + name, 404, {'error': 'no such port'})
        del self.ports[name]

    def mutations(self):
        return [c for c in self.calls]


class FakeNeutron:
    """Ports bound to hosts, and the statuses update_device_list leaves them in."""

    def __init__(self):
        self.ports = {}     # id -> port dict as get_ports_by_vnic_type_and_host returns it
        self.networks = {}  # id -> {'network_type', 'segmentation_id', 'physical_network', 'mtu'}
        self.status = {}
        self.detail_calls = []
        self.down = False
        self.fail_details = set()  # port ids whose details the next get_details call fails (once)

    def add_network(self, net_id, network_type='vlan', segmentation_id=100, physical_network='physnet1', mtu=1500):
        self.networks[net_id] = {'network_type': network_type, 'segmentation_id': segmentation_id,
                                 'physical_network': physical_network, 'mtu': mtu}

    def add_port(self, port_id, net_id, mac, host='compute1', socket_dir='/run/vhu', fixed_ips=(), pairs=(),
                 port_security=True):
        from vhost_switch_openstack import vif
        self.ports[port_id] = {
            'id': port_id, 'network_id': net_id, 'mac_address': mac, 'admin_state_up': True,
            'fixed_ips': [{'subnet_id': 'sub1', 'ip_address': ip} for ip in fixed_ips],
            'allowed_address_pairs': [dict(p) for p in pairs], 'port_security_enabled': port_security,
            'device_owner': 'compute:nova', 'binding:host_id': host, 'binding:vif_type': 'vhostuser',
            'binding:vif_details': vif.vif_details(socket_dir, port_id, True), 'status': 'DOWN',
        }
        self.status[port_id] = 'DOWN'

    def _check(self):
        if self.down:
            raise RuntimeError('MessagingTimeout: neutron is down')

    def get_ports(self, host):
        self._check()
        return [copy.deepcopy(p) for p in self.ports.values() if p['binding:host_id'] == host]

    def get_details(self, port_ids, agent_id, host):
        self._check()
        self.detail_calls.append(sorted(port_ids))
        out, failed = [], []
        for pid in port_ids:
            if pid in self.fail_details:
                self.fail_details.discard(pid)
                failed.append(pid)
                continue
            p = self.ports.get(pid)
            if p is None:
                out.append({'device': pid})
                continue
            net = self.networks[p['network_id']]
            d = {'device': pid, 'port_id': pid, 'network_id': p['network_id'], 'mac_address': p['mac_address'],
                 'admin_state_up': p['admin_state_up'], 'fixed_ips': p['fixed_ips'],
                 'allowed_address_pairs': p['allowed_address_pairs'],
                 'port_security_enabled': p['port_security_enabled'], 'device_owner': p['device_owner']}
            d.update(net)
            out.append(d)
            self.status[pid] = 'BUILD' if p['admin_state_up'] else 'DOWN'
        return out, failed

    def update_devices(self, up, down, agent_id, host):
        self._check()
        for pid in up:
            self.status[pid] = 'ACTIVE'
        for pid in down:
            self.status[pid] = 'DOWN'
