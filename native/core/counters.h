// Counters written by one poll thread at a time and read by the control thread while traffic flows:
// relaxed atomics compile to plain loads and stores on x86, so counting costs no locked instruction.
#pragma once
#include <atomic>
#include <cstdint>

namespace vs {

class Counter {
 public:
  void add(uint64_t n) { v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
  void inc() { add(1); }
  uint64_t get() const { return v_.load(std::memory_order_relaxed); }
  void reset() { v_.store(0, std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> v_{0};
};

// Why a frame was dropped. Keep in step with kDropReasonNames.
enum DropReason : int {
  kDropNoRxBuffer,       // destination guest gave no (or too few) receive buffers
  kDropRxBufferTooSmall, // destination without MRG_RXBUF posted a buffer smaller than the frame
  kDropBadDescriptor,    // chain loops, is too long, points outside guest memory, wrong direction
  kDropRingBroken,       // avail index jumped by more than the queue size: ring stopped until reset
  kDropRunt,             // shorter than a virtio-net header plus an Ethernet header
  kDropMtu,              // longer than the port's MTU (and not a GSO frame)
  kDropVlanFilter,       // tagged frame on an access port
  kDropOffload,          // GSO frame toward a port that did not negotiate receiving it
  kDropBadHeader,        // virtio-net header fields out of range (csum_start/offset beyond the frame)
  kDropHairpin,          // destination is the source port
  kDropPortDown,         // destination has no enabled receive queue
  kDropSpoofed,          // port security: a source MAC, IP, ARP sender or ND target not the port's own
  kDropOffloadNotNegotiated,  // checksum or segmentation offload the source port never negotiated (5.1.6.2.1)
  kDropRingDisabled,     // frame on a started transmit ring the frontend disabled: discarded, not forwarded
  kDropReasonCount
};

inline const char* const kDropReasonNames[kDropReasonCount] = {
    "noRxBuffer", "rxBufferTooSmall", "badDescriptor", "ringBroken", "runt",   "mtu",
    "vlanFilter", "offload",          "badHeader",     "hairpin",    "portDown",
    "spoofed", "offloadNotNegotiated", "ringDisabled"};

struct VringCounters {
  Counter packets;
  Counter bytes;
  Counter drops[kDropReasonCount];
};

// One source queue's memory of its last FDB work: consecutive frames of a flow skip the hash probes. Valid
// while the FDB generation is unchanged (any learn, move, age-out or flush bumps it).
struct FwdCache {
  uint32_t gen = 0;
  uint64_t src_key = 0;
  uint32_t src_seen = 0;
  uint64_t dst_key = 0;
  uint32_t dst_port = 0;
};

}  // namespace vs
