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
    uint64_t next_tsc = 0;  // token bucket: time the next frame is due
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
