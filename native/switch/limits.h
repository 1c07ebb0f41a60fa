// The ranges the switch accepts for its options and ports: one place, checked here (so native tests and fuzzers
// meet the same rules as the control plane), exported to JavaScript by the binding and mirrored by src/dataplane/limits.ts,
// which a test compares with these.
#pragma once
#include <cstdint>
#include <string>

#include "switch/status.h"

namespace vs {

constexpr int kMaxThreads = 64;          // poll threads
constexpr uint32_t kMaxQueuePairs = 64;  // per port; 2 * 64 rings fit the 8-bit index of SET_VRING_KICK/CALL/ERR
constexpr uint32_t kMinMtu = 68;         // the smallest IPv4 MTU (RFC 791)
constexpr uint32_t kMaxMtu = 9710;       // the largest jumbo frame common NICs take
constexpr uint32_t kMinFdbLog2 = 8, kMaxFdbLog2 = 24;

inline Status check_range(const char* what, uint64_t v, uint64_t min, uint64_t max) {
  if (v >= min && v <= max) return Ok();
  return InvalidArgument(std::string(what) + " must be " + std::to_string(min) + ".." + std::to_string(max) + ", got " +
                         std::to_string(v));
}

// threads 0 (the owner calls poll_once()) is for benchmarks and native tests; the control plane asks for 1 or more.
inline Status check_switch_limits(uint64_t threads, uint64_t fdb_log2) {
  if (Status s = check_range("threads", threads, 0, kMaxThreads); !s.ok()) return s;
  return check_range("fdbSizeLog2", fdb_log2, kMinFdbLog2, kMaxFdbLog2);
}

inline Status check_port_limits(uint64_t queue_pairs, uint64_t mtu) {
  if (Status s = check_range("queuePairs", queue_pairs, 1, kMaxQueuePairs); !s.ok()) return s;
  return check_range("mtu", mtu, kMinMtu, kMaxMtu);
}

}  // namespace vs
