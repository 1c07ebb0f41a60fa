{
  "targets": [
    {
      "target_name": "vhost_switch",
      "sources": [
        "native/node/binding.cc",
        "native/node/binding_socket.cc",
        "native/node/binding_switch.cc",
        "native/node/convert.cc",
        "native/node/binding_driver.cc",
        "<!@(grep -v '^#' native/sources.list)"
      ],
      "include_dirs": ["native", "<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags_cc": ["-std=c++17", "-O2", "-g", "-fexceptions", "-Wall", "-Wextra", "-Wno-unused-parameter", "-pthread"],
      "libraries": ["-pthread"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"]
    }
  ]
}
