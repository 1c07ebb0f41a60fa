// Instructions per forwarded frame, on one thread and without timing noise: the poll pass is called
// directly (threads = 0). Run under callgrind (scripts/native-bench.sh --instructions) to see where they go.
// Arguments: frame size, rounds, and "packed" for packed virtqueues on both ports.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <x86intrin.h>

#include "../../test/native/harness.h"
#include "switch/switch.h"

using namespace vs;

int main(int argc, char** argv) {
  uint32_t size = argc > 1 ? atoi(argv[1]) : 64;
  int rounds = argc > 2 ? atoi(argv[2]) : 20000;
  SwitchOptions so;
  so.threads = 0;
  Switch sw(so);
  DriverOptions dopt;
  dopt.queue_size = 256;
  dopt.packed = argc > 3 && std::string(argv[3]) == "packed";
  Driver a(dopt), b(dopt);
  uint32_t pa = sw.add_port({"a", 0, 1, 1500}), pb = sw.add_port({"b", 0, 1, 1500});
  vt::wire(sw, pa, a);  // the handshake's effect, without the socket (test/native/harness.h)
  vt::wire(sw, pb, b);
  uint8_t fa[2048] = {2, 0, 0, 0, 0, 0xb, 2, 0, 0, 0, 0, 0xa, 0x88, 0xb5};
  uint8_t fb[2048] = {2, 0, 0, 0, 0, 0xa, 2, 0, 0, 0, 0, 0xb, 0x88, 0xb5};
  const uint8_t* fra[32];
  const uint8_t* frb[32];
  uint32_t lens[32];
  for (int i = 0; i < 32; i++) fra[i] = fa, frb[i] = fb, lens[i] = size;
  uint64_t forwarded = 0, poll_cycles = 0;
  for (int r = 0; r < rounds; r++) {
    // b answers a so that both MACs are learned and traffic is unicast in both directions.
    a.tx_burst(1, fra, lens, 32);
    b.tx_burst(1, frb, lens, 32);
    uint64_t t0 = __rdtsc();
    forwarded += sw.poll_once();
    poll_cycles += __rdtsc() - t0;
    const uint8_t* d[32];
    uint32_t l[32];
    a.rx_burst(0, d, l, 32);
    b.rx_burst(0, d, l, 32);
    a.reclaim_tx(1);
    b.reclaim_tx(1);
  }
  PortStatsSnapshot sa, sb;
  sw.port_stats(pa, &sa);
  sw.port_stats(pb, &sb);
  std::printf("forwarded %llu frames; delivered a=%llu b=%llu; %.1f TSC cycles per frame in the poll pass\n",
              (unsigned long long)forwarded, (unsigned long long)sa.tx_packets, (unsigned long long)sb.tx_packets,
              forwarded ? double(poll_cycles) / double(forwarded) : 0.0);
  sw.close();
  return 0;
}
