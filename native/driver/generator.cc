#include "driver/generator.h"

#include <pthread.h>
#include <x86intrin.h>

#include <chrono>
#include <cmath>
#include <cstring>

namespace vs {

namespace {

constexpr uint32_t kStampMagic = 0x76737467;  // "vstg"
constexpr uint32_t kStampOff = 14;            // right after the Ethernet header
constexpr uint32_t kBurstMax = 32;

int lat_bucket(uint64_t ns) {
  if (ns < 8) return static_cast<int>(ns);
  int lg = 63 - __builtin_clzll(ns);
  int sub = static_cast<int>((ns >> (lg - 3)) & 7);
  int b = lg * 8 + sub;
  return b < kLatBuckets ? b : kLatBuckets - 1;
}
double bucket_ns(int b) {
  if (b < 8) return b;
  int lg = b / 8, sub = b % 8;
  return std::ldexp(1.0, lg) * (1.0 + sub / 8.0);
}

}  // namespace

double Generator::tsc_per_ns() {
  static double v = [] {
    auto t0 = std::chrono::steady_clock::now();
    uint64_t c0 = __rdtsc();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    uint64_t c1 = __rdtsc();
    double ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
    return (c1 - c0) / ns;
  }();
  return v;
}

double Generator::quantile(const GenPortStats& s, double q) {
  uint64_t total = 0;
  for (int i = 0; i < kLatBuckets; i++) total += s.lat[i].get();
  if (!total) return 0;
  uint64_t want = static_cast<uint64_t>(std::ceil(q * total)), seen = 0;
  for (int i = 0; i < kLatBuckets; i++) {
    seen += s.lat[i].get();
    if (seen >= want && seen) return bucket_ns(i);
  }
  return bucket_ns(kLatBuckets - 1);
}

uint32_t Pacer::due(uint64_t now, uint32_t max) {
  if (interval_ <= 0) return max;
  const double ahead = 2 * interval_ + 1;  // one interval, and rounding
  if (next_ == 0 || static_cast<double>(next_) > static_cast<double>(now) + ahead) next_ = now;  // started, or the clock went back
  if (now < next_) return 0;
  const double owed = static_cast<double>(now - next_) / interval_;
  if (owed > static_cast<double>(depth_)) next_ = now - static_cast<uint64_t>(depth_ * interval_);
  const uint64_t d = static_cast<uint64_t>(static_cast<double>(now - next_) / interval_) + 1;
  return d < max ? static_cast<uint32_t>(d) : max;
}

void Generator::add_port(const GenPortConfig& c) {
  PortState p;
  p.cfg = c;
  // A second of frames owed at most: a ring full for longer, or a clock that leapt, is not made up at full speed.
  if (c.rate_pps) p.pacer = Pacer(tsc_per_ns() * 1e9 / static_cast<double>(c.rate_pps), c.rate_pps);
  if (p.cfg.sizes.empty()) p.cfg.sizes.push_back(64);
  for (uint32_t& s : p.cfg.sizes) s = s < 60 ? 60 : (s > 9000 ? 9000 : s);
  p.stats = std::make_unique<GenPortStats>();
  p.scratch.resize(kBurstMax);
  ports_.push_back(std::move(p));
}

void Generator::start() {
  if (running_.exchange(true)) return;
  tsc_per_ns();
  th_ = std::thread([this] { run(); });
  if (cpu_ >= 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu_, &set);
    pthread_setaffinity_np(th_.native_handle(), sizeof set, &set);
  }
}

void Generator::stop() {
  if (!running_.exchange(false)) return;
  th_.join();
}

void Generator::send_generated(PortState& p, uint64_t now) {
  const GenPortConfig& c = p.cfg;
  uint32_t want = p.pacer.due(now, kBurstMax);
  if (c.count && p.seq + want > c.count) want = static_cast<uint32_t>(c.count - p.seq);
  if (!want) return;
  const uint8_t* frames[kBurstMax];
  uint32_t lens[kBurstMax];
  uint64_t ts = __rdtsc();
  for (uint32_t i = 0; i < want; i++) {
    uint32_t len = c.sizes[(p.size_i + i) % c.sizes.size()];
    std::vector<uint8_t>& f = p.scratch[i];
    if (f.size() != len) {
      f.assign(len, 0);
      std::memcpy(f.data(), c.dst_mac, 6);
      std::memcpy(f.data() + 6, c.src_mac, 6);
      f[12] = 0x88;
      f[13] = 0xb5;
    }
    uint64_t seq = p.seq + i;
    // SAFETY: f holds len >= 60 bytes (sizes are clamped to 60..9000 when the port is added); the stamp ends at 34.
    std::memcpy(f.data() + kStampOff, &kStampMagic, 4);
    std::memcpy(f.data() + kStampOff + 4, &seq, 8);
    std::memcpy(f.data() + kStampOff + 12, &ts, 8);
    frames[i] = f.data();
    lens[i] = len;
  }
  uint32_t sent = c.driver->tx_burst(1, frames, lens, want);
  uint64_t bytes = 0;
  for (uint32_t i = 0; i < sent; i++) bytes += lens[i];
  p.stats->tx_packets.add(sent);
  p.stats->tx_bytes.add(bytes);
  if (sent < want) p.stats->tx_ring_full.add(want - sent);
  p.seq += sent;
  p.size_i += sent;
  p.pacer.sent(sent);
}

void Generator::run() {
  // testpmd's tx_first: prime the io loop with one burst per port.
  for (PortState& p : ports_) {
    for (uint32_t left = p.cfg.first_burst; left;) {
      GenPortConfig saved = p.cfg;
      p.cfg.count = p.seq + (left < kBurstMax ? left : kBurstMax);
      uint64_t before = p.seq;
      send_generated(p, __rdtsc());
      p.cfg = saved;
      uint64_t sent = p.seq - before;
      if (!sent) break;
      left -= static_cast<uint32_t>(sent);
    }
  }
  const double tpn = tsc_per_ns();
  while (running_.load(std::memory_order_relaxed)) {
    bool quiet = idle_sleep_us_ > 0;
    for (PortState& p : ports_) {
      const uint8_t* data[kBurstMax];
      uint32_t lens[kBurstMax];
      uint32_t n = p.cfg.driver->rx_burst(0, data, lens, kBurstMax);
      if (n) {
        quiet = false;
        uint64_t now = __rdtsc(), bytes = 0;
        for (uint32_t i = 0; i < n; i++) {
          bytes += lens[i];
          uint32_t magic;
          // SAFETY: both reads lie in the first kStampOff + 20 bytes of a frame rx_burst returned with that many.
          if (lens[i] >= kStampOff + 20 && (std::memcpy(&magic, data[i] + kStampOff, 4), magic == kStampMagic)) {
            uint64_t ts;
            std::memcpy(&ts, data[i] + kStampOff + 12, 8);
            if (now > ts) {
              p.stats->lat[lat_bucket(static_cast<uint64_t>((now - ts) / tpn))].inc();
              p.stats->rx_stamped.inc();
            }
          }
        }
        p.stats->rx_packets.add(n);
        p.stats->rx_bytes.add(bytes);
        if (p.cfg.role == GenRole::kIo && p.cfg.peer >= 0) {
          PortState& peer = ports_[p.cfg.peer];
          uint32_t sent = peer.cfg.driver->tx_burst(1, data, lens, n);
          uint64_t b = 0;
          for (uint32_t i = 0; i < sent; i++) b += lens[i];
          peer.stats->tx_packets.add(sent);
          peer.stats->tx_bytes.add(b);
          if (sent < n) peer.stats->tx_ring_full.add(n - sent);
        }
      }
      if (p.cfg.role == GenRole::kSource) quiet = false, send_generated(p, __rdtsc());
      p.cfg.driver->reclaim_tx(1);
    }
    if (quiet) std::this_thread::sleep_for(std::chrono::microseconds(idle_sleep_us_));
  }
}

}  // namespace vs
