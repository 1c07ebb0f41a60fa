// A guest that lies in its descriptors: the switch drops and counts, never reads outside the guest's
// memory (ASan would say), and keeps switching for the other ports.
#include <cstring>

#include "harness.h"

using namespace vt;

static const uint8_t A[6] = {0x02, 0, 0, 0, 0, 0xa};
static const uint8_t B[6] = {0x02, 0, 0, 0, 0, 0xb};
static const uint8_t E[6] = {0x02, 0, 0, 0, 0, 0xe};
static const uint8_t BCAST[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

struct Net {
  vs::Switch sw{vs::SwitchOptions{}};
  vs::Driver a{{}}, b{{}}, evil{{}};
  uint32_t pa, pb, pe;
  Net() {
    pa = sw.add_port({"a", 0, 1, 1500});
    pb = sw.add_port({"b", 0, 1, 1500});
    pe = sw.add_port({"evil", 0, 1, 1500});
    wire(sw, pa, a);
    wire(sw, pb, b);
    wire(sw, pe, evil);
  }
  // The healthy ports still talk.
  bool healthy() {
    bool ok = send(a, frame(B, A)) == 1 && recv(b, 1) >= 1;
    while (recv(evil, 64, 20)) {
    }
    return ok;
  }
  void post(uint16_t head) {
    evil.push_avail(1, head);
    evil.kick(1);
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
  }
};

VT_TEST(descriptor_outside_guest_memory) {
  Net n;
  n.evil.desc(1)[0] = {n.evil.mem_size() - 8, 64, 0, 0};  // crosses the end of the region
  n.post(0);
  n.evil.desc(1)[1] = {~0ull - 10, 64, 0, 0};  // wraps the address space
  n.post(1);
  n.evil.desc(1)[2] = {0, 0xffffffffu, 0, 0};  // 4 GiB
  n.post(2);
  VT_CHECK(stats(n.sw, n.pe).drops[vs::kDropBadDescriptor] == 3);
  VT_CHECK(n.healthy());
}

VT_TEST(descriptor_chain_that_loops) {
  Net n;
  n.evil.desc(1)[3] = {n.evil.buf_gpa(1, 3), 64, vs::VRING_DESC_F_NEXT, 4};
  n.evil.desc(1)[4] = {n.evil.buf_gpa(1, 4), 64, vs::VRING_DESC_F_NEXT, 3};
  n.post(3);
  n.evil.desc(1)[5] = {n.evil.buf_gpa(1, 5), 64, vs::VRING_DESC_F_NEXT, 60000};  // next out of the table
  n.post(5);
  VT_CHECK(stats(n.sw, n.pe).drops[vs::kDropBadDescriptor] == 2);
  VT_CHECK(n.healthy());
}

VT_TEST(nested_and_malformed_indirect_tables) {
  Net n;
  // An indirect table (in buffer 10) whose entry is itself indirect.
  auto* table = reinterpret_cast<vs::VringDesc*>(n.evil.buf(1, 10));
  table[0] = {n.evil.buf_gpa(1, 11), 32, vs::VRING_DESC_F_INDIRECT, 0};
  n.evil.desc(1)[6] = {n.evil.buf_gpa(1, 10), 16, vs::VRING_DESC_F_INDIRECT, 0};
  n.post(6);
  n.evil.desc(1)[7] = {n.evil.buf_gpa(1, 10), 15, vs::VRING_DESC_F_INDIRECT, 0};  // not a multiple of 16
  n.post(7);
  // An indirect table that loops inside itself.
  table[0] = {n.evil.buf_gpa(1, 12), 64, vs::VRING_DESC_F_NEXT, 1};
  table[1] = {n.evil.buf_gpa(1, 12), 64, vs::VRING_DESC_F_NEXT, 0};
  n.evil.desc(1)[8] = {n.evil.buf_gpa(1, 10), 32, vs::VRING_DESC_F_INDIRECT, 0};
  n.post(8);
  VT_CHECK(stats(n.sw, n.pe).drops[vs::kDropBadDescriptor] == 3);
  VT_CHECK(n.healthy());
}

VT_TEST(valid_indirect_chain_is_forwarded) {
  Net n;
  auto f = frame(BCAST, E);
  auto* table = reinterpret_cast<vs::VringDesc*>(n.evil.buf(1, 20));
  std::memset(n.evil.buf(1, 21), 0, 12);                 // header alone
  std::memcpy(n.evil.buf(1, 22), f.data(), f.size());  // frame
  table[0] = {n.evil.buf_gpa(1, 21), 12, vs::VRING_DESC_F_NEXT, 1};
  table[1] = {n.evil.buf_gpa(1, 22), 64, 0, 0};
  n.evil.desc(1)[9] = {n.evil.buf_gpa(1, 20), 32, vs::VRING_DESC_F_INDIRECT, 0};
  n.post(9);
  VT_CHECK(recv(n.a, 1) == 1);
  VT_CHECK(recv(n.b, 1) == 1);
}

VT_TEST(avail_index_jump_breaks_only_that_ring) {
  Net n;
  n.evil.set_avail_idx(1, 5000);  // more than the queue size ahead
  n.evil.kick(1);
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  auto s = stats(n.sw, n.pe);
  VT_CHECK(s.broken);
  VT_CHECK(s.drops[vs::kDropRingBroken] == 1);
  VT_CHECK(n.healthy());
  // Reset by the frontend (GET_VRING_BASE, SET_VRING_BASE, kick again) brings it back.
  uint32_t base;
  VT_CHECK(n.sw.get_vring_base(n.pe, 1, &base).ok());
  n.evil.set_avail_idx(1, 0);
  VT_CHECK(n.sw.set_vring_base(n.pe, 1, 0).ok());
  VT_CHECK(n.sw.set_vring_fd(n.pe, 1, 0, dup(n.evil.kick_fd(1))).ok());
  VT_CHECK(!stats(n.sw, n.pe).broken);
}

VT_TEST(receive_chain_outside_memory_breaks_receive_ring) {
  Net n;
  // Replace evil's posted receive buffers with one pointing past its memory.
  n.evil.desc(0)[0] = {n.evil.mem_size() + 4096, 2048, vs::VRING_DESC_F_WRITE, 0};
  VT_CHECK(send(n.a, frame(E, A)) == 1);  // unknown unicast: floods to b and evil
  VT_CHECK(recv(n.b, 1) == 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  auto s = stats(n.sw, n.pe);
  VT_CHECK(s.broken && s.drops[vs::kDropBadDescriptor] == 1);
  VT_CHECK(n.healthy());
}

VT_TEST(bad_ring_setup_is_refused) {
  vs::Switch sw{vs::SwitchOptions{}};
  vs::Driver d{{}};
  uint32_t p = sw.add_port({"p", 0, 1, 1500});
  VT_CHECK(!sw.set_vring_num(p, 0, 300).ok());     // not a power of two
  VT_CHECK(!sw.set_vring_num(p, 0, 65536).ok());   // too large
  VT_CHECK(!sw.set_vring_fd(p, 0, 0, -1).ok());    // kick before memory and addresses
  VT_CHECK(sw.set_mem_table(p, {{0, d.mem_size(), d.mem_uva(), 0, dup(d.mem_fd())}}).ok());
  VT_CHECK(sw.set_vring_num(p, 0, 256).ok());
  VT_CHECK(!sw.set_vring_addr(p, 0, d.mem_uva() + d.mem_size() - 8, d.used_uva(0), d.avail_uva(0)).ok());
  VT_CHECK(!sw.set_vring_addr(p, 0, d.desc_uva(0) + 1, d.used_uva(0), d.avail_uva(0)).ok());  // misaligned
  // Memory tables: overlapping, huge, larger than the file, no regions.
  VT_CHECK(!sw.set_mem_table(p, {{0, d.mem_size(), d.mem_uva(), 0, dup(d.mem_fd())},
                                 {4096, 4096, d.mem_uva() + d.mem_size(), 0, dup(d.mem_fd())}})
                .ok());
  VT_CHECK(!sw.set_mem_table(p, {{0, 1ull << 50, d.mem_uva(), 0, dup(d.mem_fd())}}).ok());
  VT_CHECK(!sw.set_mem_table(p, {{0, d.mem_size(), d.mem_uva(), 4096, dup(d.mem_fd())}}).ok());
  VT_CHECK(!sw.set_mem_table(p, {}).ok());
  VT_CHECK(!sw.set_mem_table(p, {{0, 4096, 0, 0, -1}}).ok());  // bad fd
}

VT_TEST(port_removed_under_traffic) {
  Net n;
  std::atomic<bool> stop{false};
  std::thread sender([&] {
    while (!stop) {
      send(n.a, frame(BCAST, A));
      send(n.evil, frame(BCAST, E));
      const uint8_t* d[32];
      uint32_t l[32];
      n.b.rx_burst(0, d, l, 32);
      n.a.rx_burst(0, d, l, 32);
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  VT_CHECK(n.sw.remove_port(n.pe).ok());
  vs::PortStatsSnapshot gone;
  VT_CHECK(!n.sw.port_stats(n.pe, &gone));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  stop = true;
  sender.join();
  VT_CHECK(n.healthy());
}

VT_TEST(memory_file_truncated_under_the_switch) {
  // The frontend shrinks its memory file after SET_MEM_TABLE: the switch's next touch of those pages raises
  // SIGBUS. The switch must stop that port, not die, and keep switching for the others.
  vs::Switch sw{vs::SwitchOptions{}};
  vs::Driver a{{}}, b{{}}, evil{{}};
  uint32_t pa = sw.add_port({"a", 0, 1, 1500}), pb = sw.add_port({"b", 0, 1, 1500});
  uint32_t pe = sw.add_port({"evil", 0, 1, 1500});
  wire(sw, pa, a);
  wire(sw, pb, b);
  wire(sw, pe, evil);
  VT_CHECK(ftruncate(evil.mem_fd(), 4096) == 0);  // from here on, never touch evil's rings ourselves
  // A broadcast floods into evil's receive ring (now gone) and to b. (b may see it twice: the burst that
  // faulted is taken again from the start.)
  VT_CHECK(send(a, frame(BCAST, A)) == 1);
  VT_CHECK(recv(b, 1) >= 1);
  recv(b, 8, 50);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  VT_CHECK(stats(sw, pe).broken);
  // Still switching: a and b talk both ways.
  VT_CHECK(send(b, frame(A, B)) == 1);
  VT_CHECK(recv(a, 1) == 1);
  VT_CHECK(send(a, frame(B, A)) == 1);
  VT_CHECK(recv(b, 1) == 1);
  // A ring restarted on the truncated memory is refused, not a crash of the control thread.
  uint32_t base;
  VT_CHECK(sw.get_vring_base(pe, 0, &base).ok());
  VT_CHECK(!sw.set_vring_fd(pe, 0, 0, dup(evil.kick_fd(0))).ok());
  VT_CHECK(sw.remove_port(pe).ok());
}

int main() { return run_all(); }
