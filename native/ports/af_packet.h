// AF_PACKET NIC queues: one socket per queue with a TPACKET_V3 memory-mapped receive ring, the port's sockets
// joined in a PACKET_FANOUT group so the kernel spreads flows over queues, and PACKET_VNET_HDR so that checksum
// and segmentation offloads cross in a virtio-net header both ways. Sending is one sendmsg() whose iovecs point
// into the source's buffers.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "ports/nic.h"

namespace vs {

// The receive ring the kernel fills: block_nr blocks of block_size bytes, handed over one at a time.
struct AfPacketRing {
  uint8_t* ring = nullptr;
  size_t ring_len = 0;
  uint32_t block_size = 0, block_nr = 0, block_i = 0;
  ~AfPacketRing();
};

extern const NicOps kAfPacketOps;

// Opens one queue of an AF_PACKET port on iface (fanout group fanout_id shared by the port's `queues` queues).
// Returns null and sets err on failure.
std::unique_ptr<NicQueue> open_af_packet(const std::string& iface, int queues, uint16_t fanout_id, std::string& err);

}  // namespace vs
