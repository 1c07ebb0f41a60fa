// A frame on its way through the switch, whatever port it came from: where its bytes are (pieces of a
// guest's descriptor chain, or of a NIC ring), its offload header, a copy of its Ethernet header, and the
// bridge domain (VLAN) it belongs to.
#pragma once
#include <cstdint>

#include "core/counters.h"
#include "core/virtio.h"
#include "core/vring.h"

namespace vs {

struct Port;
struct PollContext;

constexpr uint32_t kEthHdr = 14;
constexpr uint32_t kVlanTag = 4;
constexpr uint16_t kEthTypeVlan = 0x8100;  // 802.1Q C-tag
constexpr uint16_t kEthTypeQinQ = 0x88a8;  // 802.1ad S-tag
constexpr uint64_t kMaxFrame = 65535 + kEthHdr + kVlanTag;  // the largest GSO frame we carry

struct Frame {
  const Buf* bufs;
  int nbufs;
  uint64_t off;      // the frame starts at this offset of the pieces (after a virtio-net header)
  uint64_t len;      // frame bytes from the Ethernet header on, without any 802.1Q tag of a trunk
  VirtioNetHdr hdr;  // offloads the source asked for (all zero when none)
  // The frame's first frame_eth_len() bytes, copied once: what forward() checks, and what every delivery writes
  // in their place (the source's memory may have changed since).
  uint8_t eth[kEthHdr + kVlanTag];
  uint16_t vlan;     // bridge domain: 0 untagged, else the VLAN id
};

// How many bytes of f.eth are the frame's (all of them, unless the frame is shorter).
inline uint64_t frame_eth_len(const Frame& f) { return f.len < sizeof f.eth ? f.len : sizeof f.eth; }

// Learns, looks up and delivers one frame that came in on src; `in` counts it (or its drop), `cache` is the
// source queue's FDB cache.
void forward(PollContext& c, Port& src, VringCounters& in, FwdCache& cache, Frame& f);

}  // namespace vs
