#include "switch/vlan.h"

#include <cstring>

#include "core/csum.h"
#include "core/sg.h"

namespace vs {

namespace {

// Removes the kVlanTag bytes at offset `at` of the pieces by pointing around them. False when that takes more
// pieces than cap (a tag in the middle of a piece splits it in two).
bool cut_tag(Buf* b, int* n, int cap, uint64_t at) {
  int i = 0;
  while (i < *n && at >= b[i].len) at -= b[i++].len;
  uint32_t left = kVlanTag;
  if (i < *n && at > 0) {
    const uint32_t rest = b[i].len - static_cast<uint32_t>(at);  // bytes of piece i from the tag on
    if (rest > left) {
      if (*n == cap) return false;
      std::memmove(b + i + 2, b + i + 1, sizeof(Buf) * static_cast<size_t>(*n - i - 1));
      b[i + 1] = {b[i].addr + at + left, rest - left};
      b[i].len = static_cast<uint32_t>(at);
      (*n)++;
      return true;
    }
    b[i].len = static_cast<uint32_t>(at);
    left -= rest;
    i++;
  }
  while (left) {
    if (i == *n) return false;
    const uint32_t k = b[i].len < left ? b[i].len : left;
    b[i].addr += k;
    b[i].len -= k;
    left -= k;
    if (b[i].len == 0) {
      std::memmove(b + i, b + i + 1, sizeof(Buf) * static_cast<size_t>(*n - i - 1));
      (*n)--;
    } else {
      i++;
    }
  }
  return true;
}

}  // namespace

int vlan_classify_tagged(const PortConfig& c, Frame& f, Buf* pieces, int cap, int offloaded_tci) {
  const bool in_frame = offloaded_tci < 0;  // vlan_classify() took the untagged frames
  if (in_frame && get16be(f.eth + 12) == kEthTypeQinQ) return kDropVlanFilter;
  if (!c.trunk) return kDropVlanFilter;  // an access port takes untagged frames only, priority tags included
  uint16_t vid;
  if (in_frame) {
    if (f.len < kEthHdr + kVlanTag) return kDropVlanFilter;  // a tag cut short: no domain to give it
    vid = get16be(f.eth + 14) & 0xfff;
    if (!cut_tag(pieces, &f.nbufs, cap, f.off + 12)) return kDropBadDescriptor;
    f.len -= kVlanTag;
    vlan_shift_offsets(f.hdr, -static_cast<int>(kVlanTag));
    std::memset(f.eth, 0, sizeof f.eth);
    // SAFETY: the pieces are the ones the frame was taken from (bounds-checked), less the tag; f.len is their total.
    sg_read(pieces, f.nbufs, f.off, f.eth, f.len < sizeof f.eth ? f.len : sizeof f.eth);
  } else {
    vid = static_cast<uint16_t>(offloaded_tci & 0xfff);
  }
  const uint16_t domain = vid == 0 ? c.vlan : vid;  // VID 0: a priority tag, the frame is the native VLAN's
  if (!vlan_member(c, domain)) return kDropVlanFilter;
  f.vlan = domain;
  return -1;
}

const Frame& vlan_tagged_view(const Frame& f, VlanTagView& v) {
  std::memcpy(v.head, f.eth, 12);
  vlan_tag_bytes(f.vlan, v.head + 12);
  v.bufs[0] = {v.head, sizeof v.head};
  const int n = 1 + sg_slice(f.bufs, f.nbufs, f.off + 12, f.len - 12, v.bufs + 1, kMaxChainBufs);
  Frame& t = v.frame;
  t = f;
  t.bufs = v.bufs;
  t.nbufs = n;
  t.off = 0;
  t.len = f.len + kVlanTag;
  vlan_shift_offsets(t.hdr, static_cast<int>(kVlanTag));
  std::memcpy(t.eth, v.head, sizeof v.head);
  std::memcpy(t.eth + sizeof v.head, f.eth + 12, 2);
  return t;
}

}  // namespace vs
