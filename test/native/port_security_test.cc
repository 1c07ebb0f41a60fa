// Port security's parser against hostile bytes (native/port_security.cc): every prefix of a valid frame, frames
// cut into pieces at every point, and random mutations with lying length fields. Each piece is its own heap
// buffer of exactly its size, so under scripts/native-test.sh --sanitize ASan sees any read past a piece.
#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "switch/port_security.h"
#include "harness.h"

namespace {

using Bytes = std::vector<uint8_t>;
const uint8_t kMac[6] = {0x02, 0, 0, 0, 0x40, 0x0a};

void put16(Bytes& b, size_t at, uint16_t v) {
  b[at] = uint8_t(v >> 8);
  b[at + 1] = uint8_t(v);
}

Bytes eth(uint16_t type, size_t l3len) {
  Bytes b(14 + l3len, 0);
  std::memset(b.data(), 0xff, 6);
  std::memcpy(&b[6], kMac, 6);
  put16(b, 12, type);
  return b;
}

// fe80::a -> ff02::1, hop-by-hop and destination options, then a neighbour advertisement for fe80::a with
// its target link-layer address option.
Bytes na_behind_ext() {
  const size_t plen = 8 + 8 + 24 + 8;
  Bytes b = eth(0x86dd, 40 + plen);
  b[14] = 0x60;
  put16(b, 18, uint16_t(plen));
  b[20] = 0;  // hop-by-hop
  b[21] = 255;
  b[22] = 0xfe, b[23] = 0x80, b[37] = 0x0a;
  b[38] = 0xff, b[39] = 0x02, b[53] = 1;
  b[54] = 60;  // then destination options
  b[62] = 58;  // then ICMPv6
  size_t m = 70;
  b[m] = 136;
  b[m + 8] = 0xfe, b[m + 9] = 0x80, b[m + 23] = 0x0a;
  b[m + 24] = 2, b[m + 25] = 1;
  std::memcpy(&b[m + 26], kMac, 6);
  return b;
}

Bytes arp_reply() {
  Bytes b = eth(0x0806, 28);
  put16(b, 14, 1), put16(b, 16, 0x0800), b[18] = 6, b[19] = 4, put16(b, 20, 2);
  std::memcpy(&b[22], kMac, 6);
  const uint8_t spa[4] = {169, 254, 40, 1};
  std::memcpy(&b[28], spa, 4);
  return b;
}

Bytes dhcp_discover() {
  Bytes b = eth(0x0800, 20 + 8);
  b[14] = 0x45, put16(b, 16, 28), b[23] = 17;
  std::memset(&b[30], 0xff, 4);
  put16(b, 34, 68), put16(b, 36, 67);
  return b;
}

vs::PortSecurity rules() {
  vs::PortSecurity s;
  s.add_mac(kMac);
  VT_CHECK(s.add_ip("169.254.40.1").empty());
  VT_CHECK(s.add_ip("fe80::a/128").empty());
  return s;
}

// Runs the check on b cut at the given points, each piece in its own exact-size heap buffer.
bool judge(const vs::PortSecurity& s, const Bytes& b, std::vector<size_t> cuts = {}) {
  cuts.push_back(b.size());
  std::vector<std::unique_ptr<uint8_t[]>> owned;
  std::vector<vs::Buf> bufs;
  size_t from = 0;
  for (size_t to : cuts) {
    owned.emplace_back(new uint8_t[to - from + 1]);  // +1: new[0] is not a valid piece to point at
    std::memcpy(owned.back().get(), b.data() + from, to - from);
    bufs.push_back({owned.back().get(), uint32_t(to - from)});
    from = to;
  }
  vs::Frame f{};
  f.bufs = bufs.data();
  f.nbufs = int(bufs.size());
  f.off = 0;
  f.len = b.size();
  std::memcpy(f.eth, b.data(), b.size() < sizeof f.eth ? b.size() : sizeof f.eth);
  static vs::SecurityScratch scratch;
  return vs::port_security_check(s, f, scratch);
}

// The frame's bytes as its pieces now give them.
Bytes gather(const vs::Frame& f) {
  Bytes out;
  uint64_t skip = f.off;
  for (int i = 0; i < f.nbufs; i++) {
    uint64_t from = skip < f.bufs[i].len ? skip : f.bufs[i].len;
    out.insert(out.end(), f.bufs[i].addr + from, f.bufs[i].addr + f.bufs[i].len);
    skip -= from;
  }
  out.resize(f.len);
  return out;
}

}  // namespace

using namespace vt;

VT_TEST(valid_frames_pass_whole_and_in_pieces_and_short_prefixes_are_refused) {
  const vs::PortSecurity s = rules();
  for (const Bytes& b : {na_behind_ext(), arp_reply(), dhcp_discover()}) {
    VT_CHECK(judge(s, b));
    for (size_t cut = 1; cut < b.size(); cut++) VT_CHECK(judge(s, b, {cut}));
  }
  // Prefixes at least as long as the Ethernet header, cut short of what the check must read.
  for (const auto& [b, need] : {std::pair<Bytes, size_t>{na_behind_ext(), 102}, {arp_reply(), 42}, {dhcp_discover(), 38}})
    for (size_t n = 14; n < need; n++) VT_CHECK(!judge(s, Bytes(b.begin(), b.begin() + long(n))));
}

VT_TEST(lying_lengths_are_refused) {
  const vs::PortSecurity s = rules();
  Bytes b = na_behind_ext();
  put16(b, 18, 4000);  // IPv6 payload length past the frame
  VT_CHECK(!judge(s, b));
  b = na_behind_ext();
  b[55] = 200;  // destination options header of 1608 bytes
  VT_CHECK(!judge(s, b));
  b = na_behind_ext();
  b[70 + 25] = 0;  // ND option of length 0 (would loop forever)
  VT_CHECK(!judge(s, b));
  b = na_behind_ext();
  b[70 + 25] = 2;  // ND option running past the payload
  VT_CHECK(!judge(s, b));
}

VT_TEST(random_mutations_never_read_past_the_pieces) {
  const vs::PortSecurity s = rules();
  std::mt19937 rng(13);
  const Bytes seeds[] = {na_behind_ext(), arp_reply(), dhcp_discover()};
  for (int i = 0; i < 30000; i++) {
    Bytes b = seeds[i % 3];
    for (int k = int(rng() % 6); k >= 0; k--) b[14 + rng() % (b.size() - 14)] = uint8_t(rng());
    if (rng() % 4 == 0) b.resize(14 + rng() % (b.size() - 13));
    std::vector<size_t> cuts;
    for (size_t at = 1 + rng() % 16; at < b.size(); at += 1 + rng() % 24) cuts.push_back(at);
    judge(s, b, cuts);
  }
}

VT_TEST(checked_bytes_are_delivered_from_the_copy_not_from_guest_memory) {
  const vs::PortSecurity s = rules();
  Bytes b = arp_reply();
  b.resize(200, 0x5a);  // a padded frame: the copy covers it, the tail stays in the "guest" buffer
  Bytes big(b);
  big.resize(600, 0x5b);
  for (const Bytes& frame : {b, big}) {
    Bytes guest(8 + frame.size());  // a virtio-net header, then the frame, in one piece
    std::memcpy(guest.data() + 8, frame.data(), frame.size());
    vs::Buf piece{guest.data(), uint32_t(guest.size())};
    vs::Frame f{};
    f.bufs = &piece;
    f.nbufs = 1;
    f.off = 8;
    f.len = frame.size();
    std::memcpy(f.eth, frame.data(), sizeof f.eth);
    vs::SecurityScratch scratch;
    VT_CHECK(vs::port_security_check(s, f, scratch));
    VT_CHECK(gather(f) == frame);
    // The guest rewrites the ARP sender IP (and the source MAC) after the check: what is delivered is what
    // was checked.
    guest[8 + 28] = 10;
    guest[8 + 6] = 0x52;
    VT_CHECK(gather(f) == frame);
    // Bytes past the checked head are still the guest's (no copy of the payload).
    if (frame.size() > vs::SecurityScratch::kHead) {
      guest[8 + 500] = 1;
      VT_CHECK(gather(f)[500] == 1);
    }
  }
}

int main() { return run_all(); }
