#!/bin/bash
# devstack plugin: the vhost_switch ML2 driver on the controller, the switch daemon and
# vhost-switch-neutron-agent on compute hosts. Untested here (see settings); follows docs/openstack.md.

function vhost_switch_install {
    # the switch itself (native data plane + control plane), as README.md builds it
    (cd "$VHOST_SWITCH_DIR" && npm ci --no-audit --no-fund)
    sudo /usr/bin/python3 -m pip install --no-index --no-build-isolation --break-system-packages "$VHOST_SWITCH_DIR/openstack"
}

function vhost_switch_configure_compute {
    sudo install -d -o root -g kvm -m 2770 "$VHOST_SWITCH_SOCKET_DIR"
    sudo install -d -m 0755 "$(dirname "$VHOST_SWITCH_AGENT_CONF")"
    cat <<CONF | sudo tee "$VHOST_SWITCH_RUN_DIR/switch.json" >/dev/null
{ "switch": { "socketDirs": ["$VHOST_SWITCH_SOCKET_DIR"] }, "ports": [] }
CONF
    iniset "$VHOST_SWITCH_AGENT_CONF" DEFAULT host "$(hostname)"
    iniset "$VHOST_SWITCH_AGENT_CONF" DEFAULT transport_url "$(get_transport_url)"
    iniset "$VHOST_SWITCH_AGENT_CONF" vhost_switch control_socket "$VHOST_SWITCH_RUN_DIR/control.sock"
    iniset "$VHOST_SWITCH_AGENT_CONF" vhost_switch socket_dir "$VHOST_SWITCH_SOCKET_DIR"
    iniset "$VHOST_SWITCH_AGENT_CONF" vhost_switch physical_interface_mappings "$VHOST_SWITCH_INTERFACE_MAPPINGS"
    # vhost-user needs shared guest memory
    iniset "$NOVA_CONF" libvirt file_backed_memory 8192
    iniset "$NOVA_CONF" DEFAULT ram_allocation_ratio 1.0
}

if [[ "$1" == "stack" && "$2" == "install" ]]; then
    vhost_switch_install
elif [[ "$1" == "stack" && "$2" == "post-config" ]]; then
    if is_service_enabled vhost-switch-agent; then
        vhost_switch_configure_compute
    fi
elif [[ "$1" == "stack" && "$2" == "extra" ]]; then
    if is_service_enabled vhost-switch-agent; then
        run_process vhost-switch "node $VHOST_SWITCH_DIR/bin/vhost-switch.js run --run-dir $VHOST_SWITCH_RUN_DIR --config $VHOST_SWITCH_RUN_DIR/switch.json" root root
        run_process vhost-switch-agent "/usr/local/bin/vhost-switch-neutron-agent --config-file $VHOST_SWITCH_AGENT_CONF" root root
    fi
fi

if [[ "$1" == "unstack" ]]; then
    stop_process vhost-switch-agent
    stop_process vhost-switch
fi
