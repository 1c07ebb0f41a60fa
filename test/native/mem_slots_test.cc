// Memory hot-plug (ADD_MEM_REG / REM_MEM_REG): frames go to receive buffers in a region added while the port
// runs; removing the region pauses the rings it held, without breaking them, and a bad region is refused.
#include <sys/mman.h>

#include <cstring>

#include "harness.h"

using namespace vt;

namespace {

const uint8_t A[6] = {0x02, 0, 0, 0, 0, 0xa};
const uint8_t B[6] = {0x02, 0, 0, 0, 0, 0xb};

// A second memory file, the DIMM: placed in guest physical space after the driver's own memory.
struct Dimm {
  int fd;
  uint64_t size = 2 << 20;
  uint8_t* host;
  uint64_t gpa;
  explicit Dimm(uint64_t at) : gpa(at) {
    fd = memfd_create("test-dimm", MFD_CLOEXEC);
    VT_CHECK(fd >= 0 && ftruncate(fd, static_cast<off_t>(size)) == 0);
    host = static_cast<uint8_t*>(mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
    VT_CHECK(host != MAP_FAILED);
  }
  ~Dimm() {
    munmap(host, size);
    close(fd);
  }
  vs::MemRegionSpec spec() const { return {gpa, size, reinterpret_cast<uint64_t>(host), 0, dup(fd)}; }
};

}  // namespace

VT_TEST(buffers_in_an_added_region_receive_frames_and_removal_pauses_the_port) {
  vs::SwitchOptions o;
  o.threads = 0;
  vs::Switch sw(o);
  vs::Driver a{{}}, b{{}};
  uint32_t pa = sw.add_port({"a", 0, 1, 1500}), pb = sw.add_port({"b", 0, 1, 1500});
  wire(sw, pa, a);
  // b's memory comes region by region, as QEMU sends it with CONFIGURE_MEM_SLOTS.
  b.set_features(kFeatures);
  VT_CHECK(sw.set_features(pb, kFeatures).ok());
  VT_CHECK(sw.add_mem_region(pb, {0, b.mem_size(), b.mem_uva(), 0, dup(b.mem_fd())}).ok());
  for (int q = 0; q < 2; q++) {
    VT_CHECK(sw.set_vring_num(pb, q, b.queue_size()).ok());
    VT_CHECK(sw.set_vring_addr(pb, q, b.desc_uva(q), b.used_uva(q), b.avail_uva(q)).ok());
    VT_CHECK(sw.set_vring_base(pb, q, 0).ok());
    VT_CHECK(sw.set_vring_fd(pb, q, 0, dup(b.kick_fd(q))).ok());
    VT_CHECK(sw.set_vring_enable(pb, q, true).ok());
  }
  Dimm dimm(b.mem_size() + (16 << 20));
  VT_CHECK(sw.add_mem_region(pb, dimm.spec()).ok());
  // b posts one receive buffer that lies in the DIMM.
  b.desc(0)[0] = {dimm.gpa + 4096, 2048, vs::VRING_DESC_F_WRITE, 0};
  b.push_avail(0, 0);
  auto f = frame(B, A, 200, 0x5a);
  VT_CHECK(send(a, f) == 1);
  VT_CHECK(sw.poll_once() == 1);
  VT_CHECK(b.used(0)->idx == 1 && b.used(0)->ring[0].len == 12 + 200);
  VT_CHECK(std::memcmp(dimm.host + 4096 + 12, f.data(), 200) == 0);
  VT_CHECK(stats(sw, pb).tx_packets == 1);

  // The DIMM goes: buffers there are no longer reachable (the descriptor now points outside memory).
  VT_CHECK(sw.remove_mem_region(pb, dimm.gpa, dimm.size, reinterpret_cast<uint64_t>(dimm.host)).ok());
  VT_CHECK(!sw.remove_mem_region(pb, dimm.gpa, dimm.size, reinterpret_cast<uint64_t>(dimm.host)).ok());
  b.desc(0)[1] = {dimm.gpa + 8192, 2048, vs::VRING_DESC_F_WRITE, 0};
  b.push_avail(0, 1);
  VT_CHECK(send(a, f) == 1);
  sw.poll_once();
  VT_CHECK(b.used(0)->idx == 1);
  VT_CHECK(stats(sw, pb).broken);  // a receive chain outside memory: as for any bad chain

  // The base region goes (QEMU removes before it adds when it moves one): rings pause, then resume when it returns.
  vs::Switch sw2(o);
  vs::Driver c{{}}, d{{}};
  uint32_t pc = sw2.add_port({"c", 0, 1, 1500}), pd = sw2.add_port({"d", 0, 1, 1500});
  wire(sw2, pc, c);
  wire(sw2, pd, d);
  VT_CHECK(sw2.remove_mem_region(pd, 0, d.mem_size(), d.mem_uva()).ok());
  VT_CHECK(send(c, frame(B, A)) == 1);
  VT_CHECK(sw2.poll_once() == 1);
  VT_CHECK(d.used(0)->idx == 0);
  VT_CHECK(!stats(sw2, pd).broken);
  VT_CHECK(sw2.add_mem_region(pd, {0, d.mem_size(), d.mem_uva(), 0, dup(d.mem_fd())}).ok());
  VT_CHECK(send(c, frame(B, A)) == 1);
  VT_CHECK(sw2.poll_once() == 1);
  VT_CHECK(recv(d, 1) == 1);
  VT_CHECK(!stats(sw2, pd).broken);
}

VT_TEST(bad_added_regions_are_refused) {
  vs::SwitchOptions o;
  o.threads = 0;
  vs::Switch sw(o);
  vs::Driver a{{}};
  uint32_t pa = sw.add_port({"a", 0, 1, 1500});
  wire(sw, pa, a);
  // Overlapping the existing region, in guest or user addresses.
  VT_CHECK(sw.add_mem_region(pa, {4096, 4096, a.mem_uva() + a.mem_size() + (1 << 30), 0, dup(a.mem_fd())})
               .message().find("overlaps") != std::string::npos);
  VT_CHECK(sw.add_mem_region(pa, {a.mem_size() << 4, 4096, a.mem_uva() + 4096, 0, dup(a.mem_fd())})
               .message().find("overlaps") != std::string::npos);
  Dimm dimm(1ull << 33);
  vs::MemRegionSpec big = dimm.spec();
  big.size = dimm.size * 2;  // longer than its file
  VT_CHECK(sw.add_mem_region(pa, big).message().find("smaller") != std::string::npos);
  VT_CHECK(sw.add_mem_region(99, dimm.spec()).code() == vs::StatusCode::kNotFound);
  // Up to kMaxMemSlots regions, then refused.
  size_t n = 1;
  std::vector<std::unique_ptr<Dimm>> dimms;
  for (; n < vs::kMaxMemSlots; n++) {
    dimms.emplace_back(new Dimm((1ull << 34) + n * (4 << 20)));
    VT_CHECK(sw.add_mem_region(pa, dimms.back()->spec()).ok());
  }
  Dimm one_more(1ull << 36);
  VT_CHECK(sw.add_mem_region(pa, one_more.spec()).message().find("already") != std::string::npos);
  VT_CHECK(!sw.remove_mem_region(pa, 1, 2, 3).ok());
}

// QEMU sends ADD_MEM_REG and REM_MEM_REG once per vhost device: a NIC with two queue pairs adds each region
// twice and removes it twice. The second add is the same region (not an overlap), and the region stays until the
// last remove.
VT_TEST(the_same_region_added_once_per_queue_pair_is_counted_not_refused) {
  vs::SwitchOptions o;
  o.threads = 0;
  vs::Switch sw(o);
  vs::Driver b{{}};
  uint32_t pb = sw.add_port({"b", 0, 2, 1500});
  Dimm dimm(64 << 20);
  VT_CHECK(sw.add_mem_region(pb, dimm.spec()).ok());
  VT_CHECK(sw.add_mem_region(pb, dimm.spec()).ok());  // queue pair 1's device
  vs::MemRegionSpec moved = dimm.spec();
  moved.mmap_offset = 4096;  // same addresses, another part of the file: a real overlap
  VT_CHECK(!sw.add_mem_region(pb, moved).ok());
  VT_CHECK(sw.remove_mem_region(pb, dimm.gpa, dimm.size, reinterpret_cast<uint64_t>(dimm.host)).ok());
  // Still there: a ring on it translates.
  VT_CHECK(sw.set_vring_num(pb, 0, 256).ok());
  VT_CHECK(sw.set_vring_addr(pb, 0, reinterpret_cast<uint64_t>(dimm.host), reinterpret_cast<uint64_t>(dimm.host) + 8192,
                             reinterpret_cast<uint64_t>(dimm.host) + 4096).ok());
  VT_CHECK(sw.remove_mem_region(pb, dimm.gpa, dimm.size, reinterpret_cast<uint64_t>(dimm.host)).ok());
  VT_CHECK(!sw.remove_mem_region(pb, dimm.gpa, dimm.size, reinterpret_cast<uint64_t>(dimm.host)).ok());  // gone
}

int main() { return run_all(); }
