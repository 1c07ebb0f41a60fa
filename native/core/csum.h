// Internet checksum (RFC 1071) over contiguous bytes, and the recognition of a checksum a kernel left
// pending. sg.h has the same sum over a frame's pieces.
#pragma once
#include <cstdint>
#include <cstddef>

namespace vs {

inline uint16_t get16be(const uint8_t* p) { return uint16_t(p[0] << 8 | p[1]); }

// Adds n bytes as 16-bit network-order words to a one's-complement accumulator (fold it at the end).
inline uint64_t csum_add(uint64_t sum, const uint8_t* p, size_t n) {
  for (; n > 1; p += 2, n -= 2) sum += get16be(p);
  if (n) sum += uint64_t(p[0]) << 8;
  return sum;
}

inline uint16_t csum_fold(uint64_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(sum);
}

// A kernel that sends through a veth or tap with checksum offload leaves the TCP or UDP checksum pending
// (CHECKSUM_PARTIAL): the field holds the folded pseudo-header sum, and the state that says so travels in
// the skb, not in the frame. AF_PACKET hands that state over in a virtio-net header; AF_XDP does not. This
// recognises such a frame by the field's value and returns where the checksum starts and where its field
// is, for a NEEDS_CSUM header, so that whoever receives the frame completes it.
// A complete checksum that happens to equal the pseudo-header sum (1 in 65536) is harmless: completing it
// computes the same value again, because the field's contents take part in the sum.
// d: the frame from its Ethernet header, with or without one 802.1Q tag; len: its bytes.
inline bool pending_l4_csum(const uint8_t* d, uint32_t len, uint16_t* csum_start, uint16_t* csum_offset) {
  uint32_t l3 = 14;
  if (len < l3) return false;
  uint16_t type = get16be(d + 12);
  if (type == 0x8100 && len >= l3 + 4) {
    type = get16be(d + 16);
    l3 += 4;
  }
  uint64_t sum;
  uint32_t l4, l4len;
  uint8_t proto;
  if (type == 0x0800) {
    if (len < l3 + 20) return false;
    const uint8_t* ip = d + l3;
    uint32_t ihl = (ip[0] & 0xfu) * 4;
    uint32_t total = get16be(ip + 2);
    if (ip[0] >> 4 != 4 || ihl < 20 || total < ihl || l3 + total > len) return false;
    if (get16be(ip + 6) & 0x3fff) return false;  // a fragment: its checksum was never left pending
    proto = ip[9];
    l4 = l3 + ihl;
    l4len = total - ihl;
    sum = csum_add(0, ip + 12, 8);  // source and destination address
  } else if (type == 0x86dd) {
    if (len < l3 + 40) return false;
    const uint8_t* ip = d + l3;
    proto = ip[6];  // extension headers are not followed: partial checksums behind them are not recognised
    l4 = l3 + 40;
    l4len = get16be(ip + 4);
    if (l4 + l4len > len) return false;
    sum = csum_add(0, ip + 8, 32);
  } else {
    return false;
  }
  uint32_t field;
  if (proto == 6 && l4len >= 20) {
    field = 16;
  } else if (proto == 17 && l4len >= 8) {
    field = 6;
  } else {
    return false;
  }
  sum += proto + l4len;
  // The sum includes proto, so it is never zero: a UDP field of zero ("no checksum") never matches.
  if (get16be(d + l4 + field) != csum_fold(sum)) return false;
  *csum_start = static_cast<uint16_t>(l4);
  *csum_offset = static_cast<uint16_t>(field);
  return true;
}

}  // namespace vs
