"""The L2 agent loop: Neutron's ports bound to this host, mirrored into the local vhost-switch.

Each pass asks Neutron (RPC get_ports_by_vnic_type_and_host) which ports are bound here by the vhost_switch
driver, fetches device details only for ports that are new or changed, compares the wanted switch ports
with the switch's list and creates or deletes only what differs. Because the comparison is against the
switch itself, the same pass resynchronises after an agent, switch or Neutron restart.
"""
import threading

from oslo_log import log

from vhost_switch_openstack import constants as c
from vhost_switch_openstack import vif
from vhost_switch_openstack.agent import switch_client
from vhost_switch_openstack.agent import sync

LOG = log.getLogger(__name__)

_FINGERPRINT_KEYS = ('mac_address', 'admin_state_up', 'network_id', 'port_security_enabled', 'device_owner')


def fingerprint(port):
    """What in a port dict, when it changes, means the switch port may have to change."""
    fixed = tuple(sorted((ip.get('subnet_id') or '', ip.get('ip_address') or '') for ip in port.get('fixed_ips') or []))
    pairs = tuple(sorted((p.get('ip_address') or '', p.get('mac_address') or '')
                         for p in port.get('allowed_address_pairs') or []))
    details = port.get('binding:vif_details') or {}
    return (tuple(port.get(k) for k in _FINGERPRINT_KEYS), fixed, pairs,
            details.get('vhostuser_socket'), port.get('binding:host_id'))


class VhostSwitchAgent:
    """The sync logic, over two collaborators: `neutron` (the RPC side) and `switch` (a SwitchClient)."""

    def __init__(self, host, neutron, switch, socket_dir, mappings, port_security=True):
        self.host = host
        self.agent_id = 'vhost-switch-agent-%s' % host
        self.neutron = neutron
        self.switch = switch
        self.socket_dir = socket_dir
        self.mappings = mappings
        self.port_security = port_security
        self.switch_version = None
        self.fullsync = True
        self.stale_networks = set()  # networks whose MTU or segments changed: their ports' details are refetched
        self.retry = set()      # port ids whose details Neutron failed to give: asked again next pass
        self.seen = {}          # port id -> fingerprint of the port dict whose details we hold
        self.details = {}       # port id -> Neutron device details
        self.up = set()         # port ids reported up
        self.down = set()       # port ids reported down (refused, or administratively down)
        self.refused = {}       # port id -> last reason it could not be wired (logged once per reason)
        self.uplink_refused = {}  # interface -> why the switch refused its nic port
        self.wake = threading.Event()
        self._switch_was_down = False

    def configurations(self):
        return {
            c.CONF_SOCKET_DIR: self.socket_dir,
            c.CONF_INTERFACE_MAPPINGS: dict(self.mappings),
            c.CONF_NETWORK_TYPES: list(c.NETWORK_TYPES),
            c.CONF_PORT_SECURITY: self.port_security,
            c.CONF_SWITCH_VERSION: self.switch_version,
            'devices': len(self.up),
        }

    # --- Neutron's view ---------------------------------------------------------------------------------

    def _bound_here(self, port):
        """Ports the vhost_switch driver bound to this host (other drivers' ports on this host are not ours)."""
        if port.get('binding:host_id') != self.host or port.get('binding:vif_type') != 'vhostuser':
            return False
        details = port.get('binding:vif_details') or {}
        try:
            return details.get('vhostuser_socket') == vif.socket_path(self.socket_dir, port['id'])
        except ValueError:
            return False

    def _refresh_neutron(self):
        """Update self.details from Neutron; returns the ids of ports bound here that are administratively down."""
        ports = [p for p in self.neutron.get_ports(self.host) if self._bound_here(p)]
        current = {p['id']: fingerprint(p) for p in ports}
        networks, self.stale_networks = self.stale_networks, set()
        self.retry &= set(current)
        stale = [p['id'] for p in ports
                 if self.fullsync or self.seen.get(p['id']) != current[p['id']] or p.get('network_id') in networks
                 or p['id'] in self.retry]
        for pid in list(self.seen):
            if pid not in current:
                del self.seen[pid]
                self.details.pop(pid, None)
                self.refused.pop(pid, None)
                self.up.discard(pid)
                self.down.discard(pid)
        if stale:
            try:
                got, failed = self.neutron.get_details(stale, self.agent_id, self.host)
            except Exception:
                self.stale_networks |= networks  # the call failed as a whole: those networks are still stale
                raise
            for d in got:
                pid = d.get('port_id') or d.get('device')
                if pid in current:
                    self.details[pid] = d
                    self.seen[pid] = current[pid]
                    # the details call moved the port to BUILD: it must be reported up (or down) again
                    self.up.discard(pid)
                    self.down.discard(pid)
                    self.retry.discard(pid)
            # A failed port's own dict may not have changed (its network did): only this set brings it back.
            for pid in failed:
                LOG.warning('Neutron could not give the details of port %s; retrying', pid)
                self.retry.add(pid)
        self.fullsync = False
        return {pid for pid, d in self.details.items() if not d.get('admin_state_up', True)}

    # --- the switch -------------------------------------------------------------------------------------

    def _wanted(self, admin_down):
        wanted, reasons = {}, {}
        for pid, d in self.details.items():
            if pid in admin_down:
                continue
            try:
                spec = sync.desired_port(d, self.socket_dir, self.mappings, self.port_security)
            except sync.Unwireable as e:
                reasons[pid] = str(e)
                continue
            wanted[spec['name']] = (pid, spec)
        return wanted, reasons

    def _note_refused(self, pid, reason):
        if self.refused.get(pid) != reason:
            LOG.error('Port %s stays DOWN: %s', pid, reason)
            self.refused[pid] = reason

    def sync_once(self):
        """One pass. Returns (devices_up, devices_down) reported, for tests and logs."""
        try:
            admin_down = self._refresh_neutron()
        except Exception as e:  # RPC timeouts, Neutron restarting: keep the switch as it is and retry
            LOG.warning('Neutron RPC failed (%s); the switch is left as it is, retrying', e)
            return [], []
        try:
            if self.switch_version is None:
                self.switch_version = self.switch.version().get('version')
            actual = self.switch.list_ports()
        except switch_client.SwitchUnavailable as e:
            if not self._switch_was_down:
                LOG.warning('vhost-switch is not answering (%s); retrying every pass', e)
            self._switch_was_down = True
            self.switch_version = None
            return [], []
        if self._switch_was_down:
            LOG.info('vhost-switch answers again; resynchronising')
            self._switch_was_down = False

        try:
            return self._apply(actual, admin_down)
        except switch_client.SwitchUnavailable as e:
            LOG.warning('vhost-switch went away during the pass (%s); retrying', e)
            self._switch_was_down = True
            self.switch_version = None
            return [], []

    def _apply(self, actual, admin_down):
        for spec in sync.uplinks_plan(self.mappings, actual):
            try:
                self.switch.create_port(spec)
                LOG.info('Created uplink %s (nic trunk on %s)', spec['name'], spec['iface'])
                self.uplink_refused.pop(spec['iface'], None)
            except switch_client.SwitchError as e:
                # retried every pass (the interface may appear later), logged once per reason
                if self.uplink_refused.get(spec['iface']) != e.reason:
                    LOG.error('The switch refused uplink %s on %s: %s', spec['name'], spec['iface'], e.reason)
                    self.uplink_refused[spec['iface']] = e.reason

        wanted, reasons = self._wanted(admin_down)
        for pid, reason in reasons.items():
            self._note_refused(pid, reason)
        step = sync.plan({name: spec for name, (pid, spec) in wanted.items()}, actual, self.socket_dir)
        if step.create or step.recreate or step.delete:
            LOG.info('Sync: %s', step)
        ok = set()
        for name in step.unchanged:
            ok.add(wanted[name][0])
        for name, why in step.conflicts.items():
            self._note_refused(wanted[name][0], why)
        for name in step.delete:
            try:
                self.switch.delete_port(name)
                LOG.info('Deleted switch port %s (no longer bound here)', name)
            except switch_client.SwitchError as e:
                LOG.error('The switch refused to delete %s: %s', name, e.reason)
        for spec in step.recreate + step.create:
            pid = wanted[spec['name']][0]
            try:
                if spec in step.recreate:
                    self.switch.delete_port(spec['name'])
                self.switch.create_port(spec)
                LOG.info('Switch port %s for Neutron port %s: VLAN %d, MAC %s', spec['name'], pid, spec['vlan'],
                         spec['mac'])
                ok.add(pid)
            except switch_client.SwitchError as e:
                self._note_refused(pid, 'the switch refused the port: %s' % e.reason)
        for pid in ok:
            self.refused.pop(pid, None)

        devices_up = sorted(pid for pid in ok if pid not in self.up)
        devices_down = sorted(pid for pid in set(self.details) - ok if pid not in self.down)
        if devices_up or devices_down:
            try:
                self.neutron.update_devices(devices_up, devices_down, self.agent_id, self.host)
                self.up = (self.up | set(devices_up)) - set(devices_down)
                self.down = (self.down | set(devices_down)) - set(devices_up)
            except Exception as e:
                LOG.warning('Reporting devices up %s / down %s failed (%s); retrying', devices_up, devices_down, e)
                return [], []
        return devices_up, devices_down
