// The generator's pacing (driver/generator.h Pacer) against a TSC that misbehaves as it does on a VM whose kernel
// marks it unstable: a jump back must not stop the sender, a leap forward must not make it send for hours.
#include "driver/generator.h"
#include "harness.h"

using namespace vt;

constexpr uint64_t kStart = 10'000'000'000'000ull;  // a TSC over an hour after boot at 2 GHz
constexpr double kInterval = 1000;                  // ticks per frame

// Frames sent over `calls` calls of due() at `step` ticks apart from `from`, sending all that was due.
static uint64_t run(vs::Pacer& p, uint64_t from, uint64_t step, int calls, uint32_t max = 32) {
  uint64_t total = 0;
  for (int i = 0; i < calls; i++) {
    uint32_t n = p.due(from + i * step, max);
    p.sent(n);
    total += n;
  }
  return total;
}

VT_TEST(pacer_sends_at_its_rate) {
  vs::Pacer p(kInterval, 1000);
  // 100 calls a tenth of an interval apart, then 100 an interval apart: one frame per interval either way.
  uint64_t a = run(p, kStart, 100, 1000);
  VT_CHECK(a >= 99 && a <= 101);
  uint64_t b = run(p, kStart + 100'000, 1000, 100);
  VT_CHECK(b >= 99 && b <= 101);
}

VT_TEST(pacer_makes_up_a_short_stall) {
  vs::Pacer p(kInterval, 1000);
  run(p, kStart, 1000, 10);
  // The ring took nothing for 50 intervals: what is owed goes out in bursts of at most max.
  uint32_t n = p.due(kStart + 60'000, 32);
  VT_CHECK(n == 32);
  p.sent(n);
  n = p.due(kStart + 60'000, 32);
  VT_CHECK(n >= 18 && n <= 20);
}

VT_TEST(pacer_goes_on_after_the_clock_jumps_back) {
  vs::Pacer p(kInterval, 1000);
  run(p, kStart, 1000, 100);
  // The TSC is now half an hour behind where it was: frames are due at once, and at the rate after.
  const uint64_t back = kStart - 3'600'000'000'000ull;
  VT_CHECK(p.due(back, 32) >= 1);
  uint64_t after = run(p, back, 1000, 100);
  VT_CHECK(after >= 99 && after <= 101);
}

VT_TEST(pacer_owes_at_most_its_depth_after_the_clock_leaps) {
  vs::Pacer p(kInterval, 1000);
  run(p, kStart, 1000, 100);
  // Half an hour ahead: no more than depth frames are owed, then the rate again.
  const uint64_t leap = kStart + 3'600'000'000'000ull;
  uint64_t owed = 0;
  for (int i = 0; i < 100; i++) {
    uint32_t n = p.due(leap, 32);
    p.sent(n);
    owed += n;
  }
  VT_CHECK(owed >= 1000 && owed <= 1001);
  uint64_t after = run(p, leap + 1000, 1000, 100);
  VT_CHECK(after >= 99 && after <= 101);
}

VT_TEST(pacer_without_a_rate_sends_what_the_ring_takes) {
  vs::Pacer p(0, 0);
  VT_CHECK(p.due(kStart, 32) == 32);
  VT_CHECK(p.due(0, 7) == 7);
}

int main() { return run_all(); }
