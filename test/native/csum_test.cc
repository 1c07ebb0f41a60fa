// Recognition of checksums a local sender left pending (native/csum.h), which AF_XDP receive relies on:
// frames built here as Linux builds them for a veth with checksum offload, and frames that must not match.
#include <cstring>
#include <vector>

#include "core/csum.h"
#include "harness.h"

namespace {

// An independent one's-complement sum (the test's oracle, not the code under test).
uint16_t oracle(const std::vector<uint8_t>& b, size_t from, size_t to, uint32_t sum = 0) {
  for (size_t i = from; i + 1 < to; i += 2) sum += uint32_t(b[i] << 8 | b[i + 1]);
  if ((to - from) & 1) sum += uint32_t(b[to - 1] << 8);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return uint16_t(sum);
}

void put16(std::vector<uint8_t>& b, size_t at, uint16_t v) {
  b[at] = uint8_t(v >> 8);
  b[at + 1] = uint8_t(v);
}

// Ethernet (optionally tagged) + IPv4 + TCP (20 bytes) or UDP (8 bytes) + payload, with the L4 checksum
// field holding the pseudo-header sum (pending) or the full checksum.
std::vector<uint8_t> v4_frame(uint8_t proto, size_t payload, bool pending, bool tagged = false) {
  size_t l3 = tagged ? 18 : 14, l4len = (proto == 6 ? 20 : 8) + payload;
  std::vector<uint8_t> b(l3 + 20 + l4len, 0);
  put16(b, 12, tagged ? 0x8100 : 0x0800);
  if (tagged) put16(b, 14, 7), put16(b, 16, 0x0800);
  b[l3] = 0x45;
  put16(b, l3 + 2, uint16_t(20 + l4len));
  put16(b, l3 + 6, 0x4000);  // DF
  b[l3 + 8] = 64;
  b[l3 + 9] = proto;
  const uint8_t addrs[8] = {169, 254, 60, 1, 169, 254, 60, 2};
  std::memcpy(&b[l3 + 12], addrs, 8);
  size_t l4 = l3 + 20, field = l4 + (proto == 6 ? 16 : 6);
  if (proto == 17) put16(b, l4 + 4, uint16_t(l4len));
  if (proto == 6) b[l4 + 12] = 0x50;
  for (size_t i = 0; i < payload; i++) b[l4 + (proto == 6 ? 20 : 8) + i] = uint8_t(i * 7 + 3);
  uint16_t pseudo = oracle(b, l3 + 12, l3 + 20, proto + uint32_t(l4len));
  put16(b, field, pseudo);
  if (!pending) {
    put16(b, field, 0);
    put16(b, field, uint16_t(~oracle(b, l4, b.size(), pseudo)));
  }
  return b;
}

bool detect(const std::vector<uint8_t>& b, uint16_t* start = nullptr, uint16_t* off = nullptr) {
  uint16_t s = 0, o = 0;
  bool r = vs::pending_l4_csum(b.data(), uint32_t(b.size()), &s, &o);
  if (start) *start = s;
  if (off) *off = o;
  return r;
}

}  // namespace

VT_TEST(pending_tcp_and_udp_checksums_are_recognised) {
  uint16_t s, o;
  VT_CHECK(detect(v4_frame(6, 100, true), &s, &o) && s == 34 && o == 16);
  VT_CHECK(detect(v4_frame(17, 33, true), &s, &o) && s == 34 && o == 6);
  VT_CHECK(detect(v4_frame(6, 0, true, true), &s, &o) && s == 38 && o == 16);
}

VT_TEST(completing_a_recognised_checksum_gives_a_valid_one) {
  auto b = v4_frame(6, 1001, true);
  uint16_t s, o;
  VT_CHECK(detect(b, &s, &o));
  // What deliver() does for NEEDS_CSUM: the sum from csum_start to the end, field included, complemented.
  put16(b, s + o, uint16_t(~oracle(b, s, b.size())));
  VT_CHECK(b == v4_frame(6, 1001, false));
}

VT_TEST(complete_checksums_and_other_frames_are_left_alone) {
  VT_CHECK(!detect(v4_frame(6, 100, false)));
  VT_CHECK(!detect(v4_frame(17, 64, false)));
  auto udp0 = v4_frame(17, 64, true);
  put16(udp0, 34 + 6, 0);  // "no checksum"
  VT_CHECK(!detect(udp0));
  auto frag = v4_frame(6, 100, true);
  put16(frag, 14 + 6, 0x2000);  // more fragments
  VT_CHECK(!detect(frag));
  auto icmp = v4_frame(6, 100, true);
  icmp[14 + 9] = 1;
  VT_CHECK(!detect(icmp));
}

VT_TEST(truncated_and_lying_headers_never_read_past_the_frame) {
  auto b = v4_frame(6, 100, true);
  for (size_t n = 0; n < b.size(); n++) {
    // Each prefix is copied to a buffer of exactly its size, so ASan sees any read past it.
    std::vector<uint8_t> cut(b.begin(), b.begin() + long(n));
    VT_CHECK(!detect(cut));
  }
  auto lie = v4_frame(6, 10, true);
  put16(lie, 14 + 2, 1500);  // total length past the frame
  VT_CHECK(!detect(lie));
  lie = v4_frame(6, 10, true);
  lie[14] = 0x4f;  // IHL 60 bytes, past the frame
  VT_CHECK(!detect(lie));
}

VT_TEST(pending_ipv6_udp_checksum_is_recognised) {
  std::vector<uint8_t> b(14 + 40 + 8 + 20, 0);
  put16(b, 12, 0x86dd);
  b[14] = 0x60;
  put16(b, 14 + 4, 28);
  b[14 + 6] = 17;
  b[14 + 8] = 0xfe, b[14 + 9] = 0x80, b[14 + 23] = 1;
  b[14 + 24] = 0xfe, b[14 + 25] = 0x80, b[14 + 39] = 2;
  put16(b, 54 + 4, 28);
  put16(b, 54 + 6, oracle(b, 22, 54, 17 + 28));
  uint16_t s, o;
  VT_CHECK(detect(b, &s, &o) && s == 54 && o == 6);
  put16(b, 14 + 4, 29);  // payload length past the frame
  VT_CHECK(!detect(b));
}

using namespace vt;
int main() { return run_all(); }
