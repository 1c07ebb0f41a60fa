"""Neutron ML2 mechanism driver and L2 agent for vhost-switch."""
