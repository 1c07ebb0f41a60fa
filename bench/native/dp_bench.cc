// The data plane on its own, without Node or vhost-user sockets: two driver ports in the reference io loop
// (generator thread on one CPU, poll thread on another), to measure Mpps and cycles per packet of the
// forwarding path itself. Build and run: scripts/native-bench.sh [size] [seconds] [frames in flight]
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "../../test/native/harness.h"
#include "driver/generator.h"
#include "switch/switch.h"

using namespace vs;

int main(int argc, char** argv) {
  uint32_t size = argc > 1 ? atoi(argv[1]) : 64;
  int seconds = argc > 2 ? atoi(argv[2]) : 5;
  uint32_t inflight = argc > 3 ? atoi(argv[3]) : 512;
  SwitchOptions so;
  so.cpus = {1};
  Switch sw(so);
  DriverOptions dopt;
  dopt.queue_size = 1024;
  Driver a(dopt), b(dopt);
  uint32_t pa = sw.add_port({"a", 0, 1, 1500}), pb = sw.add_port({"b", 0, 1, 1500});
  vt::wire(sw, pa, a);  // the handshake's effect, without the socket (test/native/harness.h)
  vt::wire(sw, pb, b);
  Generator g(0);
  GenPortConfig ca, cb;
  ca.driver = &a;
  ca.role = GenRole::kIo;
  ca.peer = 1;
  ca.sizes = {size};
  ca.first_burst = inflight / 2;
  ca.src_mac[0] = 2, ca.src_mac[5] = 0xa, ca.dst_mac[0] = 2, ca.dst_mac[5] = 0xb;
  cb = ca;
  cb.driver = &b;
  cb.peer = 0;
  std::swap(cb.src_mac, cb.dst_mac);
  g.add_port(ca);
  g.add_port(cb);
  g.start();
  std::this_thread::sleep_for(std::chrono::seconds(1));  // warm up
  auto rx = [&] { return g.stats(0).rx_packets.get() + g.stats(1).rx_packets.get(); };
  const ThreadCounters& tc = sw.thread_counters(0);
  uint64_t r0 = rx(), b0 = tc.busy_cycles.get(), p0 = tc.packets.get(), i0 = tc.idle_cycles.get();
  auto t0 = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(std::chrono::seconds(seconds));
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  uint64_t r1 = rx(), b1 = tc.busy_cycles.get(), p1 = tc.packets.get(), i1 = tc.idle_cycles.get();
  g.stop();
  double mpps = (r1 - r0) / s / 1e6;
  std::printf("{\"size\":%u,\"mpps\":%.3f,\"gbps\":%.3f,\"cyclesPerPacket\":%.1f,\"busyShare\":%.3f}\n", size, mpps,
              mpps * 1e6 * (size + 20) * 8 / 1e9, p1 > p0 ? double(b1 - b0) / (p1 - p0) : 0.0,
              double(b1 - b0) / double((b1 - b0) + (i1 - i0) + 1));
  sw.close();
  return 0;
}
