// Packed virtqueues (virtio 1.1 2.7) through the switch, driven by the packed frontend of packed_front.h on a
// switch without poll threads (poll_once() runs here, nothing races the test): forwarding between packed and
// split ports, chained, indirect and mergeable buffers, wrap-around, event suppression, the vring base.
#include <cstring>

#include "packed_front.h"

using namespace vt;

static const uint8_t A[6] = {0x02, 0, 0, 0, 0, 0xa};
static const uint8_t B[6] = {0x02, 0, 0, 0, 0, 0xb};
static const uint8_t BCAST[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

static vs::SwitchOptions manual() {
  vs::SwitchOptions o;
  o.threads = 0;
  return o;
}

static std::vector<uint8_t> numbered(const uint8_t* dst, const uint8_t* src, uint32_t len, uint32_t n) {
  auto f = frame(dst, src, len);
  for (uint32_t i = 14; i < len; i++) f[i] = static_cast<uint8_t>(n + i);
  return f;
}

// Two packed guests a and b.
struct PackedPair {
  vs::Switch sw{manual()};
  vs::Driver da{{}}, db{{}};
  PackedFront a{da}, b{db};
  uint32_t pa, pb;
  explicit PackedPair(uint64_t features = kPackedFeatures) {
    pa = sw.add_port({"a", 0, 1, 1500});
    pb = sw.add_port({"b", 0, 1, 1500});
    a.wire(sw, pa, features);
    b.wire(sw, pb, features);
    a.fill_rx();
    b.fill_rx();
  }
};

VT_TEST(packed_guests_switch_frames) {
  PackedPair p;
  VT_CHECK(p.a.send(frame(BCAST, A)));
  p.sw.poll_once();
  auto got = p.b.recv();
  VT_CHECK(got.size() == 1 && got[0].size() == 64 && std::memcmp(got[0].data() + 6, A, 6) == 0);
  VT_CHECK(p.a.recv().empty());  // no hairpin
  auto f = numbered(A, B, 1000, 7);
  VT_CHECK(p.b.send(f));
  p.sw.poll_once();
  got = p.a.recv();
  VT_CHECK(got.size() == 1 && got[0] == f);
  VT_CHECK(p.a.reclaim() == 1 && p.b.reclaim() == 1);  // transmit buffers came back used
  auto sa = stats(p.sw, p.pa), sb = stats(p.sw, p.pb);
  VT_CHECK(sa.rx_packets == 1 && sa.tx_packets == 1 && sb.rx_packets == 1 && sb.tx_packets == 1);
  for (uint64_t d : sa.drops) VT_CHECK(d == 0);
}

// VIRTIO_F_IN_ORDER (virtio 1.1 2.7.9): a burst of transmit chains comes back as one used descriptor, in the slot of
// the first chain with the buffer id of the last; without it, one used descriptor per chain.
VT_TEST(in_order_transmit_burst_comes_back_as_one_used_descriptor) {
  for (bool in_order : {false, true}) {
    PackedPair p(kPackedFeatures | (in_order ? 1ull << vs::VIRTIO_F_IN_ORDER : 0));
    const uint16_t first = p.a.avail_idx(1);
    for (int i = 0; i < 5; i++) VT_CHECK(p.a.send(frame(B, A)));  // buffer ids 0..4, in slots first..first+4
    p.sw.poll_once();
    VT_CHECK(p.b.recv().size() == 5);
    auto used = [&](uint16_t slot) {
      const uint16_t f = __atomic_load_n(&p.a.desc(1)[slot].flags, __ATOMIC_ACQUIRE);
      return (f & vs::VRING_PACKED_DESC_F_AVAIL) && (f & vs::VRING_PACKED_DESC_F_USED);  // wrap counter 1
    };
    VT_CHECK(used(first));
    VT_CHECK(p.a.desc(1)[first].id == (in_order ? 4 : 0));
    for (uint16_t k = 1; k < 5; k++) {
      VT_CHECK(used(first + k) == !in_order);
      if (!in_order) VT_CHECK(p.a.desc(1)[first + k].id == k);
    }
    VT_CHECK(stats(p.sw, p.pa).rx_packets == 5);
  }
}

VT_TEST(packed_and_split_guests_talk) {
  vs::Switch sw{manual()};
  vs::Driver dp{{}}, ds{{}};
  PackedFront pk{dp};
  uint32_t pp = sw.add_port({"packed", 0, 1, 1500}), ps = sw.add_port({"split", 0, 1, 1500});
  pk.wire(sw, pp);
  pk.fill_rx();
  wire(sw, ps, ds);
  for (uint32_t i = 0; i < 100; i++) {
    auto f = numbered(B, A, 60 + i * 13, i);
    VT_CHECK(pk.send(f));
    sw.poll_once();
    std::vector<std::vector<uint8_t>> got;
    VT_CHECK(recv(ds, 1, 1000, &got) == 1 && got[0] == f);
    auto g = numbered(A, B, 1514 - i * 7, i);
    VT_CHECK(send(ds, g) == 1);
    sw.poll_once();
    auto back = pk.recv();
    VT_CHECK(back.size() == 1 && back[0] == g);
  }
  VT_CHECK(stats(sw, pp).rx_packets == 100 && stats(sw, pp).tx_packets == 100);
  VT_CHECK(stats(sw, ps).rx_packets == 100 && stats(sw, ps).tx_packets == 100);
}

// Many laps of a small ring, of a size that is not a power of two, in bursts: the wrap counters flip each lap.
VT_TEST(packed_ring_wraps_around) {
  vs::Switch sw{manual()};
  vs::Driver da{{}}, db{{}};
  PackedFront a{da, 7}, b{db, 7};
  uint32_t pa = sw.add_port({"a", 0, 1, 1500}), pb = sw.add_port({"b", 0, 1, 1500});
  a.wire(sw, pa);
  b.wire(sw, pb);
  b.fill_rx();
  uint32_t sent = 0, got = 0;
  for (int round = 0; round < 60; round++) {
    for (int k = 0; k < 1 + round % 5; k++) {
      VT_CHECK(a.send(numbered(B, A, 100, sent)));
      sent++;
    }
    sw.poll_once();
    for (auto& f : b.recv()) {
      VT_CHECK(f == numbered(B, A, 100, got));
      got++;
    }
  }
  VT_CHECK(got == sent && sent > 7 * 20);
  VT_CHECK(stats(sw, pa).rx_packets == sent && stats(sw, pb).tx_packets == sent);
}

VT_TEST(chained_and_indirect_transmit_buffers) {
  PackedPair p;
  auto f1 = numbered(B, A, 200, 1), f2 = numbered(B, A, 300, 2), f3 = numbered(B, A, 400, 3);
  VT_CHECK(p.a.send(f1, PackedFront::kTwo));
  VT_CHECK(p.a.send(f2, PackedFront::kIndirect));
  VT_CHECK(p.a.send(f3, PackedFront::kOne));
  p.sw.poll_once();
  auto got = p.b.recv();
  VT_CHECK(got.size() == 3 && got[0] == f1 && got[1] == f2 && got[2] == f3);
  VT_CHECK(p.a.reclaim() == 3);
}

// Receive buffers smaller than the frame: with MRG_RXBUF it spans several, num_buffers says how many.
VT_TEST(mergeable_receive_buffers) {
  vs::Switch sw{manual()};
  vs::Driver da{{}}, db{{}};
  PackedFront a{da}, b{db};
  uint32_t pa = sw.add_port({"a", 0, 1, 1500}), pb = sw.add_port({"b", 0, 1, 1500});
  a.wire(sw, pa);
  b.wire(sw, pb);
  b.fill_rx(0, 256);
  auto f = numbered(B, A, 1400, 9);
  VT_CHECK(a.send(f));
  sw.poll_once();
  std::vector<uint16_t> nbuf;
  auto got = b.recv(0, 256, &nbuf);
  VT_CHECK(got.size() == 1 && got[0] == f && nbuf[0] == (1400 + 12 + 255) / 256);
  // Without MRG_RXBUF a buffer too small drops the frame and says so.
  vs::Switch sw2{manual()};
  vs::Driver dc{{}}, dd{{}};
  PackedFront c{dc}, d{dd};
  const uint64_t plain = (1ull << vs::VIRTIO_F_VERSION_1) | (1ull << vs::VIRTIO_F_RING_PACKED);
  uint32_t pc = sw2.add_port({"c", 0, 1, 1500}), pd = sw2.add_port({"d", 0, 1, 1500});
  c.wire(sw2, pc, plain);
  d.wire(sw2, pd, plain);
  d.fill_rx(0, 256);
  VT_CHECK(c.send(f));
  sw2.poll_once();
  VT_CHECK(d.recv(0, 256).empty());
  VT_CHECK(stats(sw2, pd).drops[vs::kDropRxBufferTooSmall] == 1);
}

// 2.7.10: the device notifies as the driver event suppression structure says.
VT_TEST(used_buffer_notifications_follow_driver_event_suppression) {
  PackedPair p(kPackedFeatures | (1ull << vs::VIRTIO_RING_F_EVENT_IDX));
  const int call = p.db.call_fd(0);
  signalled(call);
  // DISABLE (as wired): frames arrive, no call.
  VT_CHECK(p.a.send(frame(B, A)));
  p.sw.poll_once();
  VT_CHECK(p.b.recv().size() == 1 && !signalled(call));
  // ENABLE: a call per burst.
  p.b.driver_event(0)->flags = vs::RING_EVENT_FLAGS_ENABLE;
  VT_CHECK(p.a.send(frame(B, A)));
  p.sw.poll_once();
  VT_CHECK(signalled(call) && p.b.recv().size() == 1);
  // DESC: a call only once the used descriptor at the given slot (and wrap) is written. b's receive ring has its
  // next used slot at 2; ask for slot 4.
  p.b.driver_event(0)->off_wrap = 4 | vs::kPackedWrapBit;
  p.b.driver_event(0)->flags = vs::RING_EVENT_FLAGS_DESC;
  for (int i = 0; i < 2; i++) {
    VT_CHECK(p.a.send(frame(B, A)));
    p.sw.poll_once();
    VT_CHECK(!signalled(call));  // slots 2 and 3
  }
  VT_CHECK(p.a.send(frame(B, A)));
  p.sw.poll_once();
  VT_CHECK(signalled(call));  // slot 4
  VT_CHECK(p.a.send(frame(B, A)));
  p.sw.poll_once();
  VT_CHECK(!signalled(call));
  VT_CHECK(p.b.recv().size() == 4);
  // The same slot on the other lap is not this one.
  p.b.driver_event(0)->off_wrap = 7;  // wrap 0: the second lap
  VT_CHECK(p.a.send(frame(B, A)));
  p.sw.poll_once();
  VT_CHECK(!signalled(call));
}

// The device event suppression structure: kicks off while the rings are polled.
VT_TEST(kicks_are_suppressed_through_the_device_event_structure) {
  PackedPair p;
  VT_CHECK(p.a.device_event(1)->flags == vs::RING_EVENT_FLAGS_DISABLE);
  VT_CHECK(p.a.device_event(0)->flags == vs::RING_EVENT_FLAGS_DISABLE);
}

// GET_VRING_BASE stops a ring and says where it stood (slot and wrap counter, avail and used); SET_VRING_BASE
// resumes it there.
VT_TEST(vring_base_carries_the_wrap_counters) {
  vs::Switch sw{manual()};
  vs::Driver da{{}}, db{{}};
  PackedFront a{da, 8}, b{db, 8};
  uint32_t pa = sw.add_port({"a", 0, 1, 1500}), pb = sw.add_port({"b", 0, 1, 1500});
  a.wire(sw, pa);
  b.wire(sw, pb);
  b.fill_rx();
  for (int i = 0; i < 11; i++) {
    VT_CHECK(a.send(frame(B, A)));
    sw.poll_once();
    VT_CHECK(b.recv().size() == 1);
  }
  uint32_t base;
  VT_CHECK(sw.get_vring_base(pa, 1, &base).ok());
  VT_CHECK(base == (3u | 3u << 16));  // 11 descriptors on a ring of 8: slot 3 of the second lap (wrap 0)
  VT_CHECK(base == (uint32_t(a.avail_idx(1)) | uint32_t(a.avail_idx(1)) << 16) && !a.avail_wrap(1));
  // Resumed where it stopped: the frontend sends the same state back.
  VT_CHECK(sw.set_vring_base(pa, 1, base).ok());
  VT_CHECK(sw.set_vring_fd(pa, 1, 0, dup(da.kick_fd(1))).ok());
  for (int i = 0; i < 10; i++) {
    VT_CHECK(a.send(frame(B, A)));
    sw.poll_once();
    VT_CHECK(b.recv().size() == 1);
  }
  VT_CHECK(!sw.set_vring_base(pa, 1, base).ok());  // running: refused
  VT_CHECK(sw.get_vring_base(pa, 1, &base).ok());
  VT_CHECK(!sw.set_vring_base(pa, 1, 8).ok());  // slot 8 is outside a ring of 8
  VT_CHECK(sw.set_vring_base(pa, 1, 5 | vs::kPackedWrapBit).ok());
}

VT_TEST(packed_setup_rules) {
  vs::Switch sw{manual()};
  vs::Driver d{{}};
  PackedFront f{d};
  uint32_t p = sw.add_port({"p", 0, 1, 1500});
  VT_CHECK(sw.set_features(p, kPackedFeatures).ok());
  VT_CHECK(sw.set_vring_num(p, 0, 300).ok());  // packed: any size
  VT_CHECK(!sw.set_vring_num(p, 0, 32769).ok());
  f.wire(sw, p);
  // The layout cannot change under a running ring.
  VT_CHECK(!sw.set_features(p, kFeatures).ok());
  VT_CHECK(sw.set_features(p, kPackedFeatures).ok());
}

// Offloads go through the same stages as for split rings: a TCP GSO frame from a packed guest is cut into
// segments for a packed guest that cannot take it.
VT_TEST(gso_frame_from_a_packed_guest_is_segmented_for_a_packed_guest_without_tso) {
  vs::Switch sw{manual()};
  vs::Driver da{{}}, db{{}};
  PackedFront a{da}, b{db};
  uint32_t pa = sw.add_port({"a", 0, 1, 1500}), pb = sw.add_port({"b", 0, 1, 1500});
  a.wire(sw, pa, kPackedFeatures | (1ull << vs::VIRTIO_NET_F_HOST_TSO4) | (1ull << vs::VIRTIO_NET_F_CSUM));
  b.wire(sw, pb);
  b.fill_rx();
  // Ethernet + IPv4 + TCP + 1800 bytes of payload, MSS 1000: segments of 1000 and 800 bytes.
  const uint32_t payload = 1800, hlen = 14 + 20 + 20;
  std::vector<uint8_t> f(hlen + payload);
  for (uint32_t i = 0; i < payload; i++) f[hlen + i] = uint8_t(i * 7 + 3);
  std::copy(B, B + 6, f.begin());
  std::copy(A, A + 6, f.begin() + 6);
  f[12] = 0x08, f[13] = 0x00;
  uint8_t* ip = f.data() + 14;
  ip[0] = 0x45, ip[8] = 64, ip[9] = 6;
  ip[12] = 169, ip[13] = 254, ip[15] = 1, ip[16] = 169, ip[17] = 254, ip[19] = 2;
  uint8_t* tcp = ip + 20;
  tcp[12] = 5 << 4, tcp[13] = 0x18;
  vs::VirtioNetHdr h{};
  h.flags = vs::VIRTIO_NET_HDR_F_NEEDS_CSUM;
  h.gso_type = vs::VIRTIO_NET_HDR_GSO_TCPV4;
  h.gso_size = 1000;
  h.hdr_len = hlen;
  h.csum_start = 34;
  h.csum_offset = 16;
  VT_CHECK(a.send(f, PackedFront::kTwo, 1, &h));
  sw.poll_once();
  auto got = b.recv();
  VT_CHECK(got.size() == 2 && got[0].size() == hlen + 1000 && got[1].size() == hlen + 800);
  VT_CHECK(std::memcmp(got[1].data() + hlen, f.data() + hlen + 1000, 800) == 0);
  VT_CHECK(stats(sw, pb).tx_packets == 2 && stats(sw, pb).drops[vs::kDropOffload] == 0);
}

// Two queue pairs: frames from transmit queue k go to receive queue k, each pair a packed ring of its own.
VT_TEST(multiqueue_packed_guests_use_every_queue) {
  vs::Switch sw{manual()};
  vs::DriverOptions o;
  o.queue_pairs = 2;
  vs::Driver da{o}, db{o};
  PackedFront a{da}, b{db};
  uint32_t pa = sw.add_port({"a", 0, 2, 1500}), pb = sw.add_port({"b", 0, 2, 1500});
  a.wire(sw, pa);
  b.wire(sw, pb);
  b.fill_rx(0);
  b.fill_rx(2);
  for (int pair = 0; pair < 2; pair++) {
    for (uint32_t i = 0; i < 20; i++) VT_CHECK(a.send(numbered(B, A, 100, i + 100 * pair), PackedFront::kOne, 2 * pair + 1));
    sw.poll_once();
    auto got = b.recv(2 * pair);
    VT_CHECK(got.size() == 20 && got[19] == numbered(B, A, 100, 19 + 100 * pair));
    VT_CHECK(b.recv(2 - 2 * pair).empty());  // nothing on the other pair's queue
  }
  auto s = stats(sw, pb);
  VT_CHECK(s.queues[0].packets == 20 && s.queues[2].packets == 20);
}

// Our own driver (native/driver) speaks packed rings too: what the generator and benches drive.
VT_TEST(our_driver_speaks_packed_rings) {
  vs::Switch sw{manual()};
  vs::DriverOptions o;
  o.queue_size = 64;
  o.packed = true;
  vs::Driver a{o}, b{o};
  uint32_t pa = sw.add_port({"a", 0, 1, 1500}), pb = sw.add_port({"b", 0, 1, 1500});
  wire(sw, pa, a);  // negotiates RING_PACKED for a packed Driver
  wire(sw, pb, b);
  uint32_t got = 0;
  for (uint32_t round = 0; round < 40; round++) {
    auto f = numbered(B, A, 60 + round, round);
    VT_CHECK(send(a, f, 10) == 10);
    sw.poll_once();
    std::vector<std::vector<uint8_t>> frames;
    got += recv(b, 10, 100, &frames);
    for (auto& g : frames) VT_CHECK(g == f);
    VT_CHECK(a.reclaim_tx(1) == 10);
  }
  VT_CHECK(got == 400 && stats(sw, pb).tx_packets == 400);  // 400 frames: six laps of a 64-slot ring
}

int main() { return vt::run_all(); }
