"""Names shared by the mechanism driver (on the Neutron server) and the agent (on each compute host)."""

# agents_db agent_type: the driver binds only on hosts where an agent of this type is alive.
AGENT_TYPE = 'vhost-switch agent'
AGENT_BINARY = 'vhost-switch-neutron-agent'

# Network types the agent can wire: flat = untagged on the mapped interface, vlan = 802.1Q-tagged on it.
NETWORK_TYPES = ('flat', 'vlan')

# Keys of the agent's `configurations` (reported over RPC, read by the driver).
CONF_SOCKET_DIR = 'socket_dir'
CONF_INTERFACE_MAPPINGS = 'interface_mappings'
CONF_NETWORK_TYPES = 'network_types'
CONF_PORT_SECURITY = 'port_security'
CONF_SWITCH_VERSION = 'switch_version'

DEFAULT_CONTROL_SOCKET = '/run/vhost-switch/control.sock'
DEFAULT_SOCKET_DIR = '/run/vhost-switch/vhu'
