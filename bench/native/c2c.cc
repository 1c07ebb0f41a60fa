// Core-to-core round trip: two threads, pinned to the generator's and the DUT's CPU, pass one cache line back and
// forth. Every vhost-user frame crosses between those CPUs a few times (ring indices, descriptors, buffers), so the
// time a cache line takes to move between them bounds what any DUT can forward in the bench's loop. On a VM the
// figure depends on where the hypervisor runs the two vCPUs, which can change while a run goes on: the bench
// measures it beside every sample.
//   c2c CPU_A CPU_B [TRIALS]   prints "c2c round trip ns: min M median D"
#include <pthread.h>
#include <sched.h>
#include <time.h>
#include <x86intrin.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

namespace {

alignas(64) std::atomic<uint64_t> line{0};

bool pin(int cpu) {
  cpu_set_t s;
  CPU_ZERO(&s);
  CPU_SET(cpu, &s);
  return pthread_setaffinity_np(pthread_self(), sizeof s, &s) == 0;
}

double now_ns() {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e9 + t.tv_nsec;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: c2c CPU_A CPU_B [TRIALS]\n");
    return 2;
  }
  const int a = atoi(argv[1]), b = atoi(argv[2]);
  const int trials = argc > 3 ? atoi(argv[3]) : 100;
  const int rounds = 1000;
  // The line holds a counter: A writes odd values, B answers with the next even one.
  std::thread peer([&] {
    if (!pin(b)) std::exit(3);
    for (uint64_t v = 1; v < 2ull * trials * rounds; v += 2) {
      while (line.load(std::memory_order_acquire) != v) _mm_pause();
      line.store(v + 1, std::memory_order_release);
    }
  });
  if (!pin(a)) return 3;
  std::vector<double> per;
  uint64_t v = 0;
  for (int t = 0; t < trials; t++) {
    double t0 = now_ns();
    for (int i = 0; i < rounds; i++, v += 2) {
      line.store(v + 1, std::memory_order_release);
      while (line.load(std::memory_order_acquire) != v + 2) _mm_pause();
    }
    per.push_back((now_ns() - t0) / rounds);
  }
  peer.join();
  std::sort(per.begin(), per.end());
  // The minimum is the topology; the median adds whatever else ran on the two CPUs.
  std::printf("c2c round trip ns: min %.0f median %.0f\n", per.front(), per[per.size() / 2]);
  return 0;
}
