// NIC queues: a switch port bound to a kernel network interface. AF_PACKET with TPACKET_V3 memory-mapped
// receive rings (one socket per queue, joined in a PACKET_FANOUT group so the kernel spreads flows over
// queues) and PACKET_VNET_HDR so that checksum and segmentation offloads cross in the virtio-net header;
// or a tap device the switch creates (IFF_VNET_HDR). Frames are copied once: from the receive ring into a
// guest's buffers, and from a guest's buffers into the kernel by sendmsg() on the way out.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "counters.h"

namespace vs {

enum class NicBackend { kAfPacket, kTap, kAfXdp };

// What a nic port asks for: AF_XDP if it can be had, else AF_PACKET (auto); or one of them, or nothing.
enum class NicBackendChoice { kAuto, kAfXdp, kAfPacket };

struct XdpProgram;
struct XdpSocket;

struct NicQueue {
  NicBackend backend;
  int fd = -1;
  // AF_PACKET receive ring.
  uint8_t* ring = nullptr;
  size_t ring_len = 0;
  uint32_t block_size = 0, block_nr = 0, block_i = 0;
  // tap: reads land here (the kernel gives no ring for tap devices).
  std::unique_ptr<uint8_t[]> scratch;
  static constexpr size_t kScratchLen = 10 + 65536 + 4;
  // AF_XDP (nic_xdp.h): the port's program (shared by its queues) and this queue's UMEM and rings.
  std::shared_ptr<XdpProgram> xdp_prog;
  std::unique_ptr<XdpSocket> xsk;
  std::string note;  // why auto mode fell back to AF_PACKET (first queue only)
  VringCounters rx;  // from the wire
  VringCounters tx;  // to the wire
  Counter tx_errors;
  FwdCache fwd;

  ~NicQueue();
};

// Opens queue q of an AF_PACKET port on iface (fanout group shared by the port's queues). Returns null and
// sets err on failure.
std::unique_ptr<NicQueue> open_af_packet(const std::string& iface, int queues, uint16_t fanout_id, std::string& err);
// "af_packet", "af_xdp" or "tap"; xdp_mode "native" or "generic" for AF_XDP, else "".
const char* nic_backend_name(const NicQueue& q);
const char* nic_xdp_mode(const NicQueue& q);
// Creates (or attaches to) tap device name, brings it up. One queue.
std::unique_ptr<NicQueue> open_tap(const std::string& name, std::string& err);

}  // namespace vs
