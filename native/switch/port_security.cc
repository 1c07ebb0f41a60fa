#include "switch/port_security.h"

#include <arpa/inet.h>

#include <cstdlib>
#include <cstring>

#include "core/sg.h"

namespace vs {

namespace {

constexpr uint16_t kEthIpv4 = 0x0800;
constexpr uint16_t kEthArp = 0x0806;
constexpr uint16_t kEthIpv6 = 0x86dd;
constexpr uint8_t kIpUdp = 17;
constexpr uint8_t kIpv6Icmp = 58;
constexpr uint8_t kIcmpMldReport = 131, kIcmpMldv2Report = 143;
constexpr uint8_t kIcmpRs = 133, kIcmpRa = 134, kIcmpNs = 135, kIcmpNa = 136, kIcmpRedirect = 137;
// Past these the frame is not one we can judge, and a port with security drops it: real stacks send one or
// two extension headers before ICMPv6 (hop-by-hop for MLD) and one or two options per ND message.
constexpr int kMaxExtHeaders = 8;
constexpr int kMaxNdOptions = 16;

uint16_t be16(const uint8_t* p) { return uint16_t(p[0] << 8 | p[1]); }
uint32_t be32(const uint8_t* p) { return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3]; }
uint64_t be64(const uint8_t* p) { return uint64_t(be32(p)) << 32 | be32(p + 4); }
uint64_t mac48(const uint8_t* m) { return uint64_t(be16(m)) << 32 | be32(m + 2); }

// The frame's first bytes, copied once: everything the checks look at.
struct Head {
  const uint8_t* p;
  uint64_t n;       // bytes in p
  uint64_t len;     // the whole frame's length
  const uint8_t* smac;
  // k bytes at off are in the copy (a frame that needs bytes past it is one we cannot judge).
  bool has(uint64_t off, uint64_t k) const { return off <= n && k <= n - off; }
};

bool mac_allowed(const PortSecurity& s, const uint8_t* mac) {
  const uint64_t m = mac48(mac);
  for (uint64_t a : s.macs)
    if (a == m) return true;
  return false;
}

bool v4_allowed(const PortSecurity& s, uint32_t a) {
  for (const PortSecurity::V4& p : s.v4)
    if ((a & p.mask) == p.addr) return true;
  return false;
}

bool v6_allowed(const PortSecurity& s, const uint8_t* a) {
  const uint64_t hi = be64(a), lo = be64(a + 8);
  for (const PortSecurity::V6& p : s.v6)
    if ((hi & p.mask[0]) == p.addr[0] && (lo & p.mask[1]) == p.addr[1]) return true;
  return false;
}

bool ipv4_ok(const PortSecurity& s, const Head& h, uint64_t l3) {
  if (!h.has(l3, 20)) return false;
  const uint8_t* ip = h.p + l3;
  if ((ip[0] >> 4) != 4) return false;
  const uint32_t src = be32(ip + 12);
  if (v4_allowed(s, src)) return true;
  if (src != 0) return false;
  // 0.0.0.0 only for a DHCP client that has no address yet: an unfragmented UDP datagram from port 68 to 67.
  const uint32_t ihl = (ip[0] & 0xfu) * 4;
  if (ihl < 20 || ip[9] != kIpUdp || (be16(ip + 6) & 0x3fff) != 0 || !h.has(l3 + ihl, 4)) return false;
  const uint8_t* udp = ip + ihl;
  return be16(udp) == 68 && be16(udp + 2) == 67;
}

bool arp_ok(const PortSecurity& s, const Head& h, uint64_t l3) {
  if (!h.has(l3, 28)) return false;
  const uint8_t* a = h.p + l3;
  // Ethernet/IPv4 ARP only: anything else is not something a neighbour's cache takes from us.
  if (be16(a) != 1 || be16(a + 2) != kEthIpv4 || a[4] != 6 || a[5] != 4) return false;
  if (std::memcmp(a + 8, h.smac, 6) != 0) return false;  // the sender MAC is the frame's (checked) source
  const uint32_t spa = be32(a + 14);
  return spa == 0 || v4_allowed(s, spa);  // 0.0.0.0: an address probe (RFC 5227) claims nothing
}

// Every link-layer address option (source or target) of an ND message must be the frame's source MAC.
bool nd_options_ok(const Head& h, uint64_t off, uint64_t end) {
  for (int n = 0; off < end; n++) {
    if (n == kMaxNdOptions || end - off < 8 || !h.has(off, 8)) return false;
    const uint8_t* o = h.p + off;
    if (o[1] == 0 || ((o[0] == 1 || o[0] == 2) && std::memcmp(o + 2, h.smac, 6) != 0)) return false;
    off += uint64_t(o[1]) * 8;
  }
  return off == end;
}

// ICMPv6 at off, up to end (the IPv6 payload's end). unspecified: the source address is ::.
bool icmp6_ok(const PortSecurity& s, const Head& h, uint64_t off, uint64_t end, bool unspecified) {
  if (end - off < 4 || !h.has(off, 4)) return false;
  const uint8_t* m = h.p + off;
  switch (m[0]) {
    case kIcmpNs:
    case kIcmpNa: {
      if (end - off < 24 || !h.has(off, 24)) return false;
      const uint8_t* target = m + 8;
      // An advertisement claims its target; so does a solicitation from :: (duplicate address detection).
      // A solicitation from an address of ours asks about someone else's target: that is address resolution.
      if (m[0] == kIcmpNa && (unspecified || !v6_allowed(s, target))) return false;
      if (m[0] == kIcmpNs && unspecified && !v6_allowed(s, target)) return false;
      return nd_options_ok(h, off + 24, end);
    }
    case kIcmpRs:
      return nd_options_ok(h, off + 8, end);
    case kIcmpRa:
      return !unspecified && end - off >= 16 && nd_options_ok(h, off + 16, end);
    case kIcmpRedirect:
      return !unspecified && end - off >= 40 && nd_options_ok(h, off + 40, end);
    case kIcmpMldReport:
    case kIcmpMldv2Report:
      return true;  // reports may come from :: while the link-local address is still tentative (RFC 3590)
    default:
      return !unspecified;
  }
}

bool ipv6_ok(const PortSecurity& s, const Head& h, uint64_t l3) {
  if (s.v6.empty() || !h.has(l3, 40)) return false;
  const uint8_t* ip = h.p + l3;
  if ((ip[0] >> 4) != 6) return false;
  static constexpr uint8_t kZero[16] = {};
  const bool unspecified = std::memcmp(ip + 8, kZero, 16) == 0;
  if (!unspecified && !v6_allowed(s, ip + 8)) return false;
  const uint64_t end = l3 + 40 + be16(ip + 4);
  if (end > h.len) return false;
  // Walk the extension headers to the upper layer: ND messages are checked, and :: is only for DAD and MLD.
  uint8_t next = ip[6];
  uint64_t off = l3 + 40;
  for (int n = 0; next != kIpv6Icmp; n++) {
    const bool ext = next == 0 || next == 43 || next == 60 || next == 51;  // hop-by-hop, routing, dest. opts, AH
    // A fragment or another upper layer carries no ND message (RFC 6980: receivers drop fragmented ND).
    if (!ext) return !unspecified;
    if (n == kMaxExtHeaders || !h.has(off, 2)) return false;
    const uint8_t* e = h.p + off;
    off += next == 51 ? (uint64_t(e[1]) + 2) * 4 : (uint64_t(e[1]) + 1) * 8;
    next = e[0];
    if (off > end) return false;
  }
  return icmp6_ok(s, h, off, end, unspecified);
}

bool judge(const PortSecurity& s, const Head& h) {
  if (!mac_allowed(s, h.smac)) return false;
  if (!s.checks_ips()) return true;
  uint16_t type = be16(h.p + 12);
  uint64_t l3 = kEthHdr;
  if (type == kEthTypeVlan || type == kEthTypeQinQ) {
    // A tagged frame (a guest that runs its own VLANs): the rules apply to what the tag carries.
    if (!h.has(0, kEthHdr + kVlanTag)) return false;
    type = be16(h.p + 16);
    l3 += kVlanTag;
  }
  switch (type) {
    case kEthIpv4: return ipv4_ok(s, h, l3);
    case kEthArp: return arp_ok(s, h, l3);
    case kEthIpv6: return ipv6_ok(s, h, l3);
    default: return false;  // with allowed addresses only IP and ARP leave the port, as in Neutron's firewall
  }
}

}  // namespace

void PortSecurity::add_mac(const uint8_t* mac) { macs.push_back(mac48(mac)); }

std::string PortSecurity::add_ip(const std::string& text) {
  const size_t slash = text.find('/');
  const std::string addr = text.substr(0, slash);
  const bool is6 = addr.find(':') != std::string::npos;
  const long max = is6 ? 128 : 32;
  long len = max;
  if (slash != std::string::npos) {
    const std::string p = text.substr(slash + 1);
    char* endp = nullptr;
    len = std::strtol(p.c_str(), &endp, 10);
    if (p.empty() || *endp || len < 0 || len > max) return "bad prefix length in " + text;
  }
  uint8_t b[16];
  if (inet_pton(is6 ? AF_INET6 : AF_INET, addr.c_str(), b) != 1) return "not an IPv4 or IPv6 address: " + text;
  if (!is6) {
    const uint32_t mask = len == 0 ? 0 : ~uint32_t(0) << (32 - len);
    v4.push_back({be32(b) & mask, mask});
    return "";
  }
  V6 p;
  for (int i = 0; i < 2; i++) {
    const long bits = len - 64 * i < 0 ? 0 : len - 64 * i > 64 ? 64 : len - 64 * i;
    p.mask[i] = bits == 0 ? 0 : ~uint64_t(0) << (64 - bits);
    p.addr[i] = be64(b + 8 * i) & p.mask[i];
  }
  v6.push_back(p);
  return "";
}

bool port_security_check(const PortSecurity& s, Frame& f, SecurityScratch& scratch) {
  // Without address checks only the Ethernet header matters, and f.eth holds it.
  const uint64_t want = s.checks_ips() ? SecurityScratch::kHead : sizeof f.eth;
  const uint64_t n = f.len < want ? f.len : want;
  // SAFETY: f.bufs are pieces Vring::walk (or the NIC receive path) bounds-checked, the frame's f.len bytes from
  // f.off lie inside them, and n <= f.len; scratch.head holds kHead >= n bytes.
  sg_read(f.bufs, f.nbufs, f.off, scratch.head, n);
  const uint64_t eth = n < sizeof f.eth ? n : sizeof f.eth;
  std::memcpy(scratch.head, f.eth, eth);  // the header the rest of the switch already works from
  if (!judge(s, {scratch.head, n, f.len, f.eth + 6})) return false;
  // Deliver the checked bytes from the copy: a guest rewriting its buffers now changes only what was not checked.
  Buf* out = scratch.bufs;
  int nb = 0;
  out[nb++] = {scratch.head, static_cast<uint32_t>(n)};
  uint64_t skip = f.off + n;
  for (int i = 0; i < f.nbufs; i++) {
    if (skip >= f.bufs[i].len) {
      skip -= f.bufs[i].len;
      continue;
    }
    out[nb++] = {f.bufs[i].addr + skip, static_cast<uint32_t>(f.bufs[i].len - skip)};
    skip = 0;
  }
  f.bufs = out;
  f.nbufs = nb;
  f.off = 0;
  return true;
}

}  // namespace vs
