// A packet generator on our virtio driver: per port it sends (at a rate, or as fast as the ring takes),
// receives and counts, forwards what it receives to a peer port (io mode, the reference loop), and
// measures latency from a TSC stamp carried in each frame it sends.
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "core/counters.h"
#include "driver/driver.h"

namespace vs {

enum class GenRole { kSink, kSource, kIo };  // sink: receive only; source: send and receive; io: forward to peer

struct GenPortConfig {
  Driver* driver;
  GenRole role = GenRole::kSink;
  int peer = -1;                     // io: index of the port to forward to
  uint8_t src_mac[6] = {};
  uint8_t dst_mac[6] = {};
  std::vector<uint32_t> sizes{64};   // frame sizes sent in turn (IMIX = several)
  uint64_t rate_pps = 0;             // 0: as fast as the ring takes them
  uint64_t count = 0;                // 0: no limit
  uint32_t first_burst = 0;          // io: frames to inject once at start (testpmd's tx_first)
};

// Paces one sender on the TSC: a token bucket whose due time moves one interval per frame sent. The TSC is
// read without a syscall, but on a VM whose kernel marks it unstable (restored from a snapshot, moved to
// another host; the kernel keeps time on kvm-clock there) it can jump by seconds or hours. The due time is never
// more than one interval ahead of the clock when the frames due were sent, so a due time further ahead means
// the clock went back: the bucket starts again from now, instead of stopping the sender until the TSC catches
// up. A clock that leapt forward, or a ring that stayed full, leaves at most `depth` frames owed, not a burst
// at full speed for hours.
class Pacer {
 public:
  // interval: TSC ticks per frame (0: unpaced, every call may send max); depth: frames the bucket may owe.
  Pacer(double interval, uint64_t depth) : interval_(interval), depth_(depth) {}
  // Frames due at now, at most max.
  uint32_t due(uint64_t now, uint32_t max);
  // n of them were sent.
  void sent(uint32_t n) { next_ += static_cast<uint64_t>(n * interval_); }

 private:
  double interval_;
  uint64_t depth_;
  uint64_t next_ = 0;  // TSC at which the next frame is due; 0: not started
};

// Latency histogram: 8 sub-buckets per power of two of nanoseconds.
constexpr int kLatBuckets = 64 * 8;

struct GenPortStats {
  Counter tx_packets, tx_bytes, rx_packets, rx_bytes, tx_ring_full, rx_stamped;
  Counter lat[kLatBuckets];
};

class Generator {
 public:
  // idle_sleep_us > 0: after a pass that received and sent nothing, sleep that long instead of spinning, as a
  // guest's interrupt-driven receive does; lets a sink share a CPU with the sender that feeds the switch.
  explicit Generator(int cpu = -1, uint32_t idle_sleep_us = 0) : cpu_(cpu), idle_sleep_us_(idle_sleep_us) {}
  ~Generator() { stop(); }
  void add_port(const GenPortConfig& c);
  void start();
  void stop();
  bool running() const { return running_.load(); }
  size_t port_count() const { return ports_.size(); }
  const GenPortStats& stats(size_t i) const { return *ports_[i].stats; }
  static double tsc_per_ns();
  // Latency quantile q (0..1) in nanoseconds from a histogram, 0 when empty.
  static double quantile(const GenPortStats& s, double q);

 private:
  struct PortState {
    GenPortConfig cfg;
    std::unique_ptr<GenPortStats> stats;
    uint64_t seq = 0;
    Pacer pacer{0, 0};  // set in add_port from rate_pps
    size_t size_i = 0;
    std::vector<std::vector<uint8_t>> scratch;  // frames being built for one burst
  };
  void run();
  void send_generated(PortState& p, uint64_t now);
  int cpu_;
  uint32_t idle_sleep_us_;
  std::vector<PortState> ports_;
  std::atomic<bool> running_{false};
  std::thread th_;
};

}  // namespace vs
