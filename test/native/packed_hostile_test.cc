// A packed-ring guest that lies: buffer ids out of range or twice in flight, chains that never end, wrap
// counters that say a chain's tail is not there, indirect tables inside chains. Each is dropped and counted, the
// ring stopped where it cannot go on, and a packed and a split guest beside it keep talking.
#include <cstring>

#include "packed_front.h"

using namespace vt;

static const uint8_t A[6] = {0x02, 0, 0, 0, 0, 0xa};
static const uint8_t B[6] = {0x02, 0, 0, 0, 0, 0xb};
static const uint8_t E[6] = {0x02, 0, 0, 0, 0, 0xe};
static const uint8_t BCAST[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

struct Net {
  vs::Switch sw{[] {
    vs::SwitchOptions o;
    o.threads = 0;
    return o;
  }()};
  vs::Driver da{{}}, db{{}}, de{{}};
  PackedFront a{da}, evil{de};  // b is split
  uint32_t pa, pb, pe;
  Net() {
    pa = sw.add_port({"a", 0, 1, 1500});
    pb = sw.add_port({"b", 0, 1, 1500});
    pe = sw.add_port({"evil", 0, 1, 1500});
    a.wire(sw, pa);
    a.fill_rx();
    wire(sw, pb, db);
    evil.wire(sw, pe);
    evil.fill_rx();
  }
  // The packed guest and the split one still talk, both ways.
  bool healthy() {
    auto f = frame(B, A, 300, 1), g = frame(A, B, 200, 2);
    bool ok = a.send(f);
    sw.poll_once();
    std::vector<std::vector<uint8_t>> got;
    ok = ok && recv(db, 1, 100, &got) == 1 && got[0] == f;
    ok = ok && send(db, g) == 1;
    sw.poll_once();
    auto back = a.recv();
    ok = ok && back.size() == 1 && back[0] == g;
    evil.recv();
    return ok;
  }
  vs::PortStatsSnapshot s() { return stats(sw, pe); }
  uint64_t gpa(uint32_t i) { return de.buf_gpa(1, i); }
  // evil's transmit frame in buffer i: a zero header and a broadcast from E.
  uint64_t txbuf(uint32_t i) {
    std::memset(de.buf(1, i), 0, 12);
    auto f = frame(BCAST, E);
    std::memcpy(de.buf(1, i) + 12, f.data(), f.size());
    return gpa(i);
  }
};

VT_TEST(buffer_id_out_of_range_is_dropped_and_given_back) {
  Net n;
  n.evil.put(1, 256, {{n.txbuf(0), 76, 0}});
  n.evil.put(1, 0xffff, {{n.txbuf(1), 76, 0}});
  n.sw.poll_once();
  VT_CHECK(n.s().drops[vs::kDropBadDescriptor] == 2 && !n.s().broken);
  PackedFront::Used u;
  VT_CHECK(n.evil.next_used(1, &u) && u.id == 256);  // given back as the driver named it
  VT_CHECK(n.evil.next_used(1, &u) && u.id == 0xffff);
  VT_CHECK(n.healthy());
  // The ring goes on: a good frame after them is forwarded.
  VT_CHECK(n.evil.send(frame(BCAST, E)));
  n.sw.poll_once();
  VT_CHECK(n.a.recv().size() == 1);
}

VT_TEST(chain_that_never_ends_breaks_the_ring) {
  Net n;
  std::vector<PackedFront::Piece> chain(n.evil.num(), {n.txbuf(0), 16, vs::VRING_DESC_F_NEXT});
  n.evil.put(1, 3, chain);  // every slot of the ring, each with NEXT
  n.sw.poll_once();
  auto s = n.s();
  VT_CHECK(s.broken && s.drops[vs::kDropBadDescriptor] == 1 && s.drops[vs::kDropRingBroken] == 1);
  VT_CHECK(n.healthy());
}

VT_TEST(wrap_counter_that_lies_about_a_chains_tail_breaks_the_ring) {
  Net n;
  // A two-descriptor chain whose head is available and whose tail carries the previous lap's flags.
  auto* d = n.evil.desc(1);
  d[1] = {n.txbuf(1), 64, 5, vs::VRING_PACKED_DESC_F_USED};  // wrap 0's available, not wrap 1's
  d[0] = {n.txbuf(0), 12, 5, 0};
  __atomic_store_n(&d[0].flags, static_cast<uint16_t>(vs::VRING_DESC_F_NEXT | vs::VRING_PACKED_DESC_F_AVAIL),
                   __ATOMIC_RELEASE);
  n.sw.poll_once();
  VT_CHECK(n.s().broken && n.s().drops[vs::kDropBadDescriptor] == 1);
  VT_CHECK(n.healthy());
  // The frontend resets the ring: stop, new base, kick. It runs again.
  uint32_t base;
  VT_CHECK(n.sw.get_vring_base(n.pe, 1, &base).ok());
  std::memset(d, 0, 16ull * n.evil.num());
  VT_CHECK(n.sw.set_vring_base(n.pe, 1, vs::kPackedWrapBit).ok());
  VT_CHECK(n.sw.set_vring_fd(n.pe, 1, 0, dup(n.de.kick_fd(1))).ok());
  VT_CHECK(!n.s().broken);
  n.evil.put(1, 9, {{n.txbuf(9), 76, 0}});  // slot 0, wrap 1: where the frontend's own view still is
  n.sw.poll_once();
  VT_CHECK(n.a.recv().size() == 1 && n.s().drops[vs::kDropBadDescriptor] == 1);
}

VT_TEST(indirect_tables_in_chains_and_bad_tables_are_dropped) {
  Net n;
  auto* table = reinterpret_cast<vs::VringPackedDesc*>(n.de.buf(1, 20));
  table[0] = {n.txbuf(21), 76, 0, 0};
  // An indirect table as the second descriptor of a chain, and one with NEXT.
  n.evil.put(1, 1, {{n.txbuf(1), 12, vs::VRING_DESC_F_NEXT}, {n.gpa(20), 16, vs::VRING_DESC_F_INDIRECT}});
  n.evil.put(1, 2, {{n.gpa(20), 16, vs::VRING_DESC_F_INDIRECT | vs::VRING_DESC_F_NEXT}, {n.txbuf(2), 76, 0}});
  // A table whose entry is itself indirect, and one that is not a whole number of descriptors.
  auto* nested = reinterpret_cast<vs::VringPackedDesc*>(n.de.buf(1, 22));
  nested[0] = {n.gpa(20), 16, 0, vs::VRING_DESC_F_INDIRECT};
  n.evil.put(1, 3, {{n.gpa(22), 16, vs::VRING_DESC_F_INDIRECT}});
  n.evil.put(1, 4, {{n.gpa(20), 15, vs::VRING_DESC_F_INDIRECT}});
  // A table outside guest memory.
  n.evil.put(1, 5, {{n.de.mem_size() - 8, 32, vs::VRING_DESC_F_INDIRECT}});
  n.sw.poll_once();
  VT_CHECK(n.s().drops[vs::kDropBadDescriptor] == 5 && !n.s().broken);
  VT_CHECK(n.evil.reclaim() == 5);  // every one given back
  VT_CHECK(n.healthy());
  // A good table is forwarded.
  n.evil.put(1, 6, {{n.gpa(20), 16, vs::VRING_DESC_F_INDIRECT}});
  n.sw.poll_once();
  VT_CHECK(n.a.recv().size() == 1);
}

VT_TEST(receive_buffer_id_twice_in_flight_breaks_the_receive_ring) {
  Net n;
  // evil's receive ring: drop what fill_rx posted by resetting it, then post two small chains with one id.
  uint32_t base;
  VT_CHECK(n.sw.get_vring_base(n.pe, 0, &base).ok());
  std::memset(n.evil.desc(0), 0, 16ull * n.evil.num());
  VT_CHECK(n.sw.set_vring_base(n.pe, 0, vs::kPackedWrapBit).ok());
  VT_CHECK(n.sw.set_vring_fd(n.pe, 0, 0, dup(n.de.kick_fd(0))).ok());
  PackedFront fresh{n.de};
  fresh.put(0, 7, {{n.de.buf_gpa(0, 0), 128, vs::VRING_DESC_F_WRITE}});
  fresh.put(0, 7, {{n.de.buf_gpa(0, 1), 128, vs::VRING_DESC_F_WRITE}});
  VT_CHECK(n.a.send(frame(E, A, 200)));  // unknown unicast: to b and evil; evil needs both chains
  n.sw.poll_once();
  auto s = n.s();
  VT_CHECK(s.broken && s.drops[vs::kDropBadDescriptor] == 1);
  VT_CHECK(recv(n.db, 1, 100) == 1);
  VT_CHECK(n.healthy());
}

VT_TEST(receive_chain_the_device_may_not_write_breaks_the_receive_ring) {
  Net n;
  uint32_t base;
  VT_CHECK(n.sw.get_vring_base(n.pe, 0, &base).ok());
  std::memset(n.evil.desc(0), 0, 16ull * n.evil.num());
  VT_CHECK(n.sw.set_vring_base(n.pe, 0, vs::kPackedWrapBit).ok());
  VT_CHECK(n.sw.set_vring_fd(n.pe, 0, 0, dup(n.de.kick_fd(0))).ok());
  PackedFront fresh{n.de};
  fresh.put(0, 1, {{n.de.buf_gpa(0, 0), 2048, 0}});  // device-readable
  VT_CHECK(n.a.send(frame(BCAST, A)));
  n.sw.poll_once();
  VT_CHECK(n.s().broken && n.s().drops[vs::kDropBadDescriptor] == 1);
  VT_CHECK(recv(n.db, 1, 100) == 1);
  VT_CHECK(n.healthy());
}

VT_TEST(ring_restarted_on_truncated_memory_is_refused) {
  // SET_VRING_KICK touches the ring (its device event structure) on the control thread: with the memory file cut
  // under it, that is a refusal, not a SIGBUS that ends the switch.
  Net n;
  uint32_t base;
  VT_CHECK(n.sw.get_vring_base(n.pe, 0, &base).ok());
  VT_CHECK(ftruncate(n.de.mem_fd(), 4096) == 0);  // from here on, never touch evil's rings ourselves
  VT_CHECK(n.sw.set_vring_fd(n.pe, 0, 0, dup(n.de.kick_fd(0))).code() == vs::StatusCode::kInvalidArgument);
  VT_CHECK(n.sw.remove_port(n.pe).ok());
  auto f = frame(B, A, 300, 1);
  VT_CHECK(n.a.send(f));
  n.sw.poll_once();
  VT_CHECK(recv(n.db, 1, 100) == 1);
}

int main() { return vt::run_all(); }
