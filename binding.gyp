{
  "targets": [
    {
      "target_name": "vhost_switch",
      "sources": [
        "native/binding.cc",
        "native/binding_socket.cc",
        "native/unix_socket.cc",
        "native/binding_switch.cc",
        "native/guest_memory.cc",
        "native/dirty_log.cc",
        "native/vring.cc",
        "native/fdb.cc",
        "native/datapath.cc",
        "native/port_security.cc",
        "native/gso.cc",
        "native/vlan.cc",
        "native/nic.cc",
        "native/nic_path.cc",
        "native/nic_xdp.cc",
        "native/fault_guard.cc",
        "native/switch.cc",
        "native/driver.cc",
        "native/generator.cc",
        "native/binding_driver.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags_cc": ["-std=c++17", "-O2", "-g", "-fexceptions", "-Wall", "-Wextra", "-Wno-unused-parameter", "-pthread"],
      "libraries": ["-pthread"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"]
    }
  ]
}
