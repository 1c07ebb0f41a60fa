// Packet capture in the data plane: records are the frames as the switch saw them, in pcap layout; a full ring
// drops and counts, and forwarding goes on untouched; snaplen and direction are honoured.
#include <cstring>
#include <vector>

#include "switch/capture.h"
#include "harness.h"

using namespace vt;

static const uint8_t A[6] = {0x02, 0, 0, 0, 0, 0xa};
static const uint8_t B[6] = {0x02, 0, 0, 0, 0, 0xb};

struct Record {
  uint32_t incl, orig;
  std::vector<uint8_t> data;
};

// Two wired guests a and b on a switch without poll threads (poll_once() runs here, nothing races the test).
struct Pair {
  vs::Switch sw{[] {
    vs::SwitchOptions o;
    o.threads = 0;
    return o;
  }()};
  vs::Driver a{{}}, b{{}};
  uint32_t pa = sw.add_port({"a", 0, 1, 1500}), pb = sw.add_port({"b", 0, 1, 1500});
  Pair() {
    wire(sw, pa, a);
    wire(sw, pb, b);
  }
};

static std::vector<Record> drain(vs::Switch& sw, uint32_t port, uint64_t* captured = nullptr, uint64_t* dropped = nullptr) {
  std::vector<uint8_t> buf(8 << 20);
  size_t n = 0;
  uint32_t records = 0;
  uint64_t c = 0, d = 0;
  VT_CHECK(sw.read_capture(port, buf.data(), buf.size(), UINT32_MAX, &n, &records, &c, &d));
  if (captured) *captured = c;
  if (dropped) *dropped = d;
  std::vector<Record> out;
  for (size_t o = 0; o < n;) {
    uint32_t h[4];
    std::memcpy(h, buf.data() + o, 16);
    out.push_back({h[2], h[3], std::vector<uint8_t>(buf.data() + o + 16, buf.data() + o + 16 + h[2])});
    o += 16 + h[2];
  }
  VT_CHECK(out.size() == records);
  return out;
}

VT_TEST(capture_records_frames_both_ways_as_sent) {
  Pair rig;
  auto& [sw, a, b, pa, pb] = rig;
  VT_CHECK(sw.start_capture(pa, 1 << 20, 65535, vs::CaptureRing::kIn | vs::CaptureRing::kOut).ok());
  VT_CHECK(!sw.start_capture(pa, 1 << 20, 65535, vs::CaptureRing::kIn).ok());  // one at a time
  auto ab = frame(B, A, 200, 0x11), ba = frame(A, B, 300, 0x22);
  VT_CHECK(send(a, ab) == 1);
  sw.poll_once();
  VT_CHECK(recv(b, 1) == 1);
  VT_CHECK(send(b, ba) == 1);
  sw.poll_once();
  VT_CHECK(recv(a, 1) == 1);
  auto r = drain(sw, pa);
  VT_CHECK(r.size() == 2);
  VT_CHECK(r[0].incl == 200 && r[0].orig == 200 && r[0].data == ab);  // in: what a sent
  VT_CHECK(r[1].incl == 300 && r[1].data == ba);                      // out: what a was given
  VT_CHECK(sw.stop_capture(pa).ok());
  std::vector<uint8_t> buf(1 << 20);
  size_t n;
  uint32_t recs;
  uint64_t c, d;
  VT_CHECK(!sw.read_capture(pa, buf.data(), buf.size(), 10, &n, &recs, &c, &d));
}

VT_TEST(a_full_capture_ring_drops_and_counts_and_forwarding_goes_on) {
  Pair rig;
  auto& [sw, a, b, pa, pb] = rig;
  VT_CHECK(sw.start_capture(pa, 64 * 1024, 65535, vs::CaptureRing::kIn).ok());
  auto f = frame(B, A, 1000, 0x33);
  uint32_t got = 0;
  for (int i = 0; i < 500; i++) {
    VT_CHECK(send(a, f) == 1);
    sw.poll_once();
    got += recv(b, 1, 100);
  }
  VT_CHECK(got == 500);  // every frame forwarded although the capture could keep few
  uint64_t captured = 0, dropped = 0;
  auto r = drain(sw, pa, &captured, &dropped);
  std::printf("     captured %llu, dropped %llu\n", (unsigned long long)captured, (unsigned long long)dropped);
  VT_CHECK(captured == r.size() && captured + dropped == 500 && dropped > 400);
}

VT_TEST(snaplen_and_direction) {
  Pair rig;
  auto& [sw, a, b, pa, pb] = rig;
  VT_CHECK(sw.start_capture(pa, 1 << 20, 64, vs::CaptureRing::kOut).ok());
  VT_CHECK(send(a, frame(B, A, 600)) == 1);  // in: not captured
  sw.poll_once();
  VT_CHECK(recv(b, 1) == 1);
  auto big = frame(A, B, 600, 0x44);
  VT_CHECK(send(b, big) == 1);
  sw.poll_once();
  VT_CHECK(recv(a, 1) == 1);
  auto r = drain(sw, pa);
  VT_CHECK(r.size() == 1 && r[0].incl == 64 && r[0].orig == 600);
  VT_CHECK(std::memcmp(r[0].data.data(), big.data(), 64) == 0);
  VT_CHECK(!sw.start_capture(pb, 1 << 20, 10, vs::CaptureRing::kIn).ok());  // snaplen too small
  VT_CHECK(!sw.start_capture(pb, 1 << 20, 100, 0).ok());                    // no direction
}

// The capture copies from the sender's memory under its ring's lock; a sender whose memory file is cut short
// faults there. The lock must be let go (else the next frame to that port spins for ever) and the capture goes on.
VT_TEST(a_fault_while_capturing_releases_the_capture_lock) {
  vs::SwitchOptions o;
  o.threads = 0;
  vs::Switch sw(o);
  vs::DriverOptions dopt;
  dopt.buf_size = 3072;
  vs::Driver evil{dopt}, a{{}}, b{{}};
  uint32_t pe = sw.add_port({"evil", 0, 1, 3500}), pa = sw.add_port({"a", 0, 1, 3500}), pb = sw.add_port({"b", 0, 1, 3500});
  wire(sw, pe, evil);
  wire(sw, pa, a);
  wire(sw, pb, b);
  VT_CHECK(sw.fdb_add(vs::Fdb::key(B, 0), pb).ok());
  VT_CHECK(sw.start_capture(pb, 1 << 20, 65535, vs::CaptureRing::kOut).ok());
  VT_CHECK(send(evil, frame(B, A, 3000, 0x55)) == 1);
  cut_through_last_frame(evil);  // the copy into b's capture faults on the frame's tail
  sw.poll_once();
  VT_CHECK(stats(sw, pe).broken);
  // An honest frame to b: captured, delivered.
  auto ok = frame(B, A, 100, 0x66);
  VT_CHECK(send(a, ok) == 1);
  sw.poll_once();
  VT_CHECK(recv(b, 1) == 1);
  auto r = drain(sw, pb);
  VT_CHECK(r.size() == 1 && r[0].data == ok);
  VT_CHECK(sw.remove_port(pe).ok());
}

int main() { return run_all(); }
