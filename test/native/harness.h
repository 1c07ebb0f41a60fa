// A tiny test harness for the native data plane, built without Node (scripts/native-test.sh), so it can
// run under AddressSanitizer and UndefinedBehaviorSanitizer.
#pragma once
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <cstdio>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "driver/driver.h"
#include "switch/switch.h"

namespace vt {

inline int g_passed = 0, g_failed = 0;
inline std::vector<std::pair<std::string, std::function<void()>>>& tests() {
  static std::vector<std::pair<std::string, std::function<void()>>> t;
  return t;
}
struct Register {
  Register(const char* name, std::function<void()> fn) { tests().emplace_back(name, std::move(fn)); }
};
struct Failure {
  std::string what;
};

#define VT_TEST(name)                                        \
  static void name();                                        \
  static vt::Register name##_reg(#name, name);               \
  static void name()
#define VT_CHECK(cond)                                                                                   \
  do {                                                                                                   \
    if (!(cond)) throw vt::Failure{std::string(__FILE__) + ":" + std::to_string(__LINE__) + ": " #cond}; \
  } while (0)

inline int run_all() {
  for (auto& [name, fn] : tests()) {
    try {
      fn();
      g_passed++;
      std::printf("ok   %s\n", name.c_str());
    } catch (const Failure& f) {
      g_failed++;
      std::printf("FAIL %s: %s\n", name.c_str(), f.what.c_str());
    }
  }
  std::printf("%d passed, %d failed\n", g_passed, g_failed);
  return g_failed ? 1 : 0;
}

constexpr uint64_t kFeatures = (1ull << vs::VIRTIO_F_VERSION_1) | (1ull << vs::VIRTIO_NET_F_MRG_RXBUF);

// Does what the vhost-user handshake does, directly: the fds are dup'ed because the switch owns what it gets.
// A packed Driver negotiates VIRTIO_F_RING_PACKED and starts its rings at slot 0 with wrap counters 1.
inline void wire(vs::Switch& sw, uint32_t id, vs::Driver& d, uint64_t features = kFeatures, bool post_rx = true) {
  if (d.packed()) features |= 1ull << vs::VIRTIO_F_RING_PACKED;
  const uint32_t base = d.packed() ? 0x80008000u : 0;
  d.set_features(features);
  VT_CHECK(sw.set_features(id, features).ok());
  VT_CHECK(sw.set_mem_table(id, {{0, d.mem_size(), d.mem_uva(), 0, dup(d.mem_fd())}}).ok());
  for (int q = 0; q < d.vring_count(); q++) {
    VT_CHECK(sw.set_vring_num(id, q, d.queue_size()).ok());
    VT_CHECK(sw.set_vring_addr(id, q, d.desc_uva(q), d.used_uva(q), d.avail_uva(q)).ok());
    VT_CHECK(sw.set_vring_base(id, q, base).ok());
    VT_CHECK(sw.set_vring_fd(id, q, 1, dup(d.call_fd(q))).ok());
    VT_CHECK(sw.set_vring_fd(id, q, 0, dup(d.kick_fd(q))).ok());
    VT_CHECK(sw.set_vring_enable(id, q, true).ok());
    if (q % 2 == 0 && post_rx) d.fill_rx(q);
  }
}

inline std::vector<uint8_t> frame(const uint8_t* dst, const uint8_t* src, uint32_t len = 64, uint8_t fill = 0) {
  std::vector<uint8_t> f(len < 14 ? 14 : len, fill);
  std::copy(dst, dst + 6, f.begin());
  std::copy(src, src + 6, f.begin() + 6);
  f[12] = 0x88;
  f[13] = 0xb5;  // IEEE local experimental ethertype
  f.resize(len);  // runts are cut after the header is written
  return f;
}

inline uint32_t send(vs::Driver& d, const std::vector<uint8_t>& f, uint32_t count = 1) {
  uint32_t sent = 0;
  for (uint32_t i = 0; i < count; i++) {
    const uint8_t* p = f.data();
    uint32_t len = static_cast<uint32_t>(f.size());
    sent += d.tx_burst(1, &p, &len, 1);
  }
  return sent;
}

// Receives until want frames arrived or the time is up; returns how many arrived.
inline uint32_t recv(vs::Driver& d, uint32_t want, int ms = 1000, std::vector<std::vector<uint8_t>>* out = nullptr) {
  uint32_t got = 0;
  auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (got < want && std::chrono::steady_clock::now() < end) {
    const uint8_t* data[32];
    uint32_t lens[32];
    uint32_t n = d.rx_burst(0, data, lens, 32);
    for (uint32_t i = 0; i < n; i++)
      if (out) out->emplace_back(data[i], data[i] + lens[i]);
    got += n;
    if (!n) std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  return got;
}

// Moves the frame last posted on d's transmit queue so that it crosses a page boundary 1 KiB in (as a guest may
// place it), then cuts d's memory file at that boundary: the switch can take the frame (its header is readable)
// and faults copying the rest. Returns the cut. From here on the test must not touch d's memory past it.
inline uint64_t cut_through_last_frame(vs::Driver& d) {
  const vs::VringAvail* avail = d.avail(1);
  const uint16_t id = avail->ring[(avail->idx - 1) & (d.queue_size() - 1)];
  vs::VringDesc* desc = d.desc(1);
  const uint64_t len = desc[id].len;
  const uint64_t cut = (desc[id].addr + len + 4095) & ~uint64_t(4095);  // the first page boundary past it
  uint8_t* base = reinterpret_cast<uint8_t*>(d.mem_uva());
  std::memmove(base + cut - 1024, base + desc[id].addr, len);
  desc[id].addr = cut - 1024;
  VT_CHECK(ftruncate(d.mem_fd(), static_cast<off_t>(cut)) == 0);
  return cut;
}

inline vs::PortStatsSnapshot stats(vs::Switch& sw, uint32_t id) {
  vs::PortStatsSnapshot s;
  sw.port_stats(id, &s);
  return s;
}

}  // namespace vt
