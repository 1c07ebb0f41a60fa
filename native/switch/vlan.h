// VLAN policy of the packet path, the same for every port type: which bridge domain (VLAN) a frame that arrives
// on a port belongs to, which domains a port is a member of, and which frames leave it 802.1Q-tagged.
//
// An access port (trunk false) is a member of its `vlan` only, and takes untagged frames only (a priority tag,
// VID 0, is cut off). A trunk is a member of its native `vlan` (untagged frames) and of every allowed VLAN
// (tagged frames); frames of the other VLANs are neither taken from it nor delivered to it. S-tags (0x88a8) are
// not classified: dropped on every port, so nothing can reach a domain we did not choose for it.
#pragma once
#include <cstdint>

#include "core/csum.h"
#include "switch/frame.h"
#include "switch/port.h"

namespace vs {

// Is the port a member of bridge domain `vlan`: may frames of it be taken from and delivered to the port?
inline bool vlan_member(const PortConfig& c, uint16_t vlan) {
  if (vlan == c.vlan) return true;
  return c.trunk && vlan != 0 && c.allowed_vlans.test(vlan);
}

// Frames of domain `vlan` leave the port tagged: trunks tag every VLAN but their native one.
inline bool vlan_tagged_on(const PortConfig& c, uint16_t vlan) { return c.trunk && vlan != c.vlan; }

// The four bytes of the 802.1Q tag of `vlan` (priority 0).
inline void vlan_tag_bytes(uint16_t vlan, uint8_t out[kVlanTag]) {
  out[0] = 0x81;
  out[1] = 0x00;
  out[2] = uint8_t(vlan >> 8);
  out[3] = uint8_t(vlan);
}

// The offload header's offsets count from the Ethernet header: a tag put in (+4) or cut out (-4) moves them.
inline void vlan_shift_offsets(VirtioNetHdr& h, int delta) {
  if (h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) h.csum_start = static_cast<uint16_t>(h.csum_start + delta);
  if (h.hdr_len >= kVlanTag) h.hdr_len = static_cast<uint16_t>(h.hdr_len + delta);
}

// Classifies a frame that arrived on port `c`: f.bufs == pieces (n of them, room for cap), f.off, f.len and
// f.eth (its first bytes) are set. offloaded_tci is the tag the kernel already took off (-1: none). A tag in
// the frame is cut out of the pieces by pointing around it (no copy), and f.len, f.eth, f.nbufs and the
// offload offsets follow. Sets f.vlan and returns -1, or returns the drop reason (kDropVlanFilter).
// An untagged frame (the usual one) is classified inline; a tag, in the frame or offloaded, out of line by
// vlan_classify_tagged, which is only for what vlan_classify did not take (it reads a frame tag as there).
int vlan_classify_tagged(const PortConfig& c, Frame& f, Buf* pieces, int cap, int offloaded_tci);
inline int vlan_classify(const PortConfig& c, Frame& f, Buf* pieces, int cap, int offloaded_tci) {
  if (offloaded_tci < 0) {
    const uint16_t type = get16be(f.eth + 12);
    if (type != kEthTypeVlan && type != kEthTypeQinQ) {
      f.vlan = c.vlan;  // untagged: the port's (access or native) VLAN
      return -1;
    }
  }
  return vlan_classify_tagged(c, f, pieces, cap, offloaded_tci);
}

// Scratch for a tagged copy of a frame's description (not of its bytes), one per poll thread.
struct VlanTagView {
  uint8_t head[12 + kVlanTag];   // destination and source MAC, then the tag
  Buf bufs[kMaxChainBufs + 1];   // head, then the frame's own pieces after its MAC addresses
  Frame frame;
};

// f as it is delivered to a trunk that takes its domain tagged: the MAC addresses from f.eth, the tag of f.vlan,
// then the rest of the frame from the source's pieces, and offsets moved past the tag. Valid while f and v are.
const Frame& vlan_tagged_view(const Frame& f, VlanTagView& v);

}  // namespace vs
