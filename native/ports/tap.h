// Tap NIC queues: a tap device the switch creates (IFF_TAP | IFF_VNET_HDR, offloads on), one queue. The kernel
// gives no ring for tap devices: frames are read into one buffer and forwarded from there, and sent by writev()
// whose iovecs point into the source's buffers.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "ports/nic.h"

namespace vs {

struct TapBuffer {
  static constexpr size_t kLen = kVnetHdr + 65536 + 4;  // a vnet header and the largest frame, tagged
  std::unique_ptr<uint8_t[]> bytes{new uint8_t[kLen]};
};

extern const NicOps kTapOps;

// Creates (or attaches to) tap device name and brings it up. Returns null and sets err on failure.
std::unique_ptr<NicQueue> open_tap(const std::string& name, std::string& err);

}  // namespace vs
