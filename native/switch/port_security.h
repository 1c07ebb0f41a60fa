// Port security, as Neutron's port_security_enabled and allowed_address_pairs mean it: a port may send only
// from its own MACs and, when it has allowed addresses, only as those IPv4/IPv6 addresses, in ARP and in IPv6
// neighbour discovery too. The table is built by the control thread before the port exists and only read on
// the packet path; a port without it (the default) pays one null-pointer test.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "switch/frame.h"

namespace vs {

struct PortSecurity {
  struct V4 {
    uint32_t addr, mask;  // host byte order
  };
  struct V6 {
    uint64_t addr[2], mask[2];  // big-endian halves as integers
  };
  std::vector<uint64_t> macs;  // 48-bit values, the port's MAC first
  std::vector<V4> v4;
  std::vector<V6> v6;

  void add_mac(const uint8_t* mac);
  // "169.254.1.2", "169.254.0.0/16", "fe80::1", "2001:db8::/32": an empty string, or why it is refused.
  std::string add_ip(const std::string& text);
  // Without allowed addresses only the source MAC is checked.
  bool checks_ips() const { return !v4.empty() || !v6.empty(); }
};

// One poll thread's scratch for the frame under check: its first bytes as they were checked, and the pieces
// that deliver those bytes from here rather than from guest memory, which the guest may rewrite meanwhile.
struct SecurityScratch {
  static constexpr uint32_t kHead = 256;  // what a check may read; a frame that needs more is dropped
  uint8_t head[kHead];
  Buf bufs[kMaxChainBufs + 1];
};

// True when f, which came in on a port with these rules, may enter the switch. Then f's first bytes (its
// Ethernet header from f.eth, and the L3 headers that were checked) come from scratch, the rest from f's
// pieces, so a guest rewriting its buffers after the check cannot change what is delivered. Never allocates.
bool port_security_check(const PortSecurity& s, Frame& f, SecurityScratch& scratch);

}  // namespace vs
