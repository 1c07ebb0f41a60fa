// The dirty log of live migration: every byte the switch writes into a guest's memory while logging is on
// lies in a page whose bit is set (guest memory compared before and after), nothing is logged while it is
// off, and a bad log is refused without harm.
#include <sys/mman.h>
#include <sys/socket.h>
#include <fcntl.h>

#include <cstring>

#include "harness.h"

using namespace vt;

namespace {

const uint8_t A[6] = {0x02, 0, 0, 0, 0, 0xa};
const uint8_t B[6] = {0x02, 0, 0, 0, 0, 0xb};
const uint8_t BCAST[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

// A log as QEMU makes one: a memfd with one bit per 4 KiB page of the guest's memory.
struct Log {
  int fd = -1;
  uint64_t size = 0;
  uint8_t* bits = nullptr;
  explicit Log(uint64_t mem_size) {
    size = (mem_size / vs::kLogPage + 7) / 8;
    fd = memfd_create("test-dirty-log", MFD_CLOEXEC);
    VT_CHECK(fd >= 0 && ftruncate(fd, static_cast<off_t>(size)) == 0);
    bits = static_cast<uint8_t*>(mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
    VT_CHECK(bits != MAP_FAILED);
  }
  ~Log() {
    munmap(bits, size);
    close(fd);
  }
  bool page(uint64_t gpa) const { return (bits[gpa / vs::kLogPage / 8] >> (gpa / vs::kLogPage % 8)) & 1; }
  uint64_t count() const {
    uint64_t n = 0;
    for (uint64_t i = 0; i < size; i++) n += __builtin_popcount(bits[i]);
    return n;
  }
  void clear() { std::memset(bits, 0, size); }
};

std::vector<uint8_t> snapshot(const vs::Driver& d) {
  const uint8_t* p = reinterpret_cast<const uint8_t*>(d.mem_uva());
  return std::vector<uint8_t>(p, p + d.mem_size());
}

// Bytes that changed since `before`; every one must lie in a logged page. Returns how many changed.
uint64_t check_covered(const vs::Driver& d, const std::vector<uint8_t>& before, const Log& log) {
  const uint8_t* now = reinterpret_cast<const uint8_t*>(d.mem_uva());
  uint64_t changed = 0;
  for (uint64_t i = 0; i < d.mem_size(); i++) {
    if (now[i] == before[i]) continue;
    changed++;
    if (!log.page(i)) throw Failure{"byte at gpa " + std::to_string(i) + " written but its page is not logged"};
  }
  return changed;
}

// What QEMU sends when migration starts: the log, LOG_ALL, and VHOST_VRING_F_LOG on every ring.
void start_logging(vs::Switch& sw, uint32_t id, vs::Driver& d, const Log& log, uint64_t features) {
  VT_CHECK(sw.set_log_base(id, dup(log.fd), log.size, 0).ok());
  VT_CHECK(sw.set_features(id, features | (1ull << vs::VHOST_F_LOG_ALL)).ok());
  for (int q = 0; q < d.vring_count(); q++)
    VT_CHECK(sw.set_vring_addr(id, q, d.desc_uva(q), d.used_uva(q), d.avail_uva(q), vs::VHOST_VRING_F_LOG,
                               d.used_uva(q) - d.mem_uva())
                 .ok());
}

void stop_logging(vs::Switch& sw, uint32_t id, vs::Driver& d, uint64_t features) {
  VT_CHECK(sw.set_features(id, features).ok());
  for (int q = 0; q < d.vring_count(); q++)
    VT_CHECK(sw.set_vring_addr(id, q, d.desc_uva(q), d.used_uva(q), d.avail_uva(q)).ok());
}

struct Pair {
  vs::Switch sw;
  vs::Driver a, b;
  uint32_t pa, pb;
  uint64_t features;
  // buf_b: the size of b's receive buffers (a sends from buffers large enough for any frame here).
  Pair(uint64_t f, uint32_t buf_b, int threads = 0, bool packed = false)
      : sw([&] {
          vs::SwitchOptions o;
          o.threads = threads;
          o.idle_us = 200000;
          return o;
        }()),
        a(vs::DriverOptions{256, 1, 16384, 0, packed}),
        b(vs::DriverOptions{256, 1, buf_b, 0, packed}),
        features(f) {
    pa = sw.add_port({"a", 0, 1, 9000, false, nullptr});
    pb = sw.add_port({"b", 0, 1, 9000, false, nullptr});
    wire(sw, pa, a, f);
    wire(sw, pb, b, f);
  }
  // a sends frames of these sizes to b (broadcast first, then unicast once b is learned), b one back.
  void traffic(const std::vector<uint32_t>& sizes) {
    std::vector<std::vector<uint8_t>> frames;
    frames.push_back(frame(BCAST, A, 60, 0x11));
    for (uint32_t s : sizes) frames.push_back(frame(B, A, s, 0x22));
    std::vector<const uint8_t*> ptrs;
    std::vector<uint32_t> lens;
    for (auto& f : frames) ptrs.push_back(f.data()), lens.push_back(static_cast<uint32_t>(f.size()));
    VT_CHECK(a.tx_burst(1, ptrs.data(), lens.data(), static_cast<uint32_t>(ptrs.size())) == ptrs.size());
    auto back = frame(A, B, 100, 0x33);
    const uint8_t* bp = back.data();
    uint32_t bl = static_cast<uint32_t>(back.size());
    VT_CHECK(b.tx_burst(1, &bp, &bl, 1) == 1);
  }
};

const uint64_t kMrg = (1ull << vs::VIRTIO_F_VERSION_1) | (1ull << vs::VIRTIO_NET_F_MRG_RXBUF);

}  // namespace

VT_TEST(logged_writes_cover_every_changed_byte) {
  // 512-byte buffers: the 1500 and 4000 byte frames span mergeable chains of several buffers.
  Pair p(kMrg, 512);
  VT_CHECK(p.sw.fdb_add(vs::Fdb::key(B, 0), p.pb).ok());
  Log la(p.a.mem_size()), lb(p.b.mem_size());
  start_logging(p.sw, p.pa, p.a, la, p.features);
  start_logging(p.sw, p.pb, p.b, lb, p.features);
  p.traffic({60, 1500, 4000, 9000});
  // The frontend's own writes (descriptors, buffers, avail) are done: what changes now is the switch's.
  auto before_a = snapshot(p.a), before_b = snapshot(p.b);
  VT_CHECK(p.sw.poll_once() == 6);
  uint64_t changed_b = check_covered(p.b, before_b, lb);
  uint64_t changed_a = check_covered(p.a, before_a, la);
  VT_CHECK(changed_b > 60 + 1500 + 4000 + 9000);  // headers, frames and used entries
  VT_CHECK(changed_a >= 100);
  // The used ring pages are logged even where a write left a byte as it was.
  VT_CHECK(lb.page(p.b.used_uva(0) - p.b.mem_uva()) && la.page(p.a.used_uva(1) - p.a.mem_uva()));
  // One used entry per receive chain: 1 + 1 + 3 + 8 + 18 buffers of 512 bytes for frames of 60, 60, 1500, 4000
  // and 9000 bytes behind a 12-byte header, every one covered above.
  VT_CHECK(p.b.used(0)->idx == 31);
  uint64_t outside, size;
  bool logging;
  VT_CHECK(p.sw.log_info(p.pb, &size, &outside, &logging) && logging && size == lb.size && outside == 0);
}

// Packed rings: the used descriptors (written over the descriptor ring), the buffers and the device event
// suppression structure are what the switch writes, and each is covered.
VT_TEST(packed_rings_logged_writes_cover_every_changed_byte) {
  Pair p(kMrg, 512, 0, true);
  VT_CHECK(p.sw.fdb_add(vs::Fdb::key(B, 0), p.pb).ok());
  Log la(p.a.mem_size()), lb(p.b.mem_size());
  start_logging(p.sw, p.pa, p.a, la, p.features | (1ull << vs::VIRTIO_F_RING_PACKED));
  start_logging(p.sw, p.pb, p.b, lb, p.features | (1ull << vs::VIRTIO_F_RING_PACKED));
  p.traffic({60, 1500, 4000, 9000});
  auto before_a = snapshot(p.a), before_b = snapshot(p.b);
  VT_CHECK(p.sw.poll_once() == 6);
  uint64_t changed_b = check_covered(p.b, before_b, lb);
  uint64_t changed_a = check_covered(p.a, before_a, la);
  VT_CHECK(changed_b > 60 + 1500 + 4000 + 9000);  // headers, frames and used descriptors
  VT_CHECK(changed_a >= 100);
  VT_CHECK(lb.page(p.b.desc_uva(0) - p.b.mem_uva()) && la.page(p.a.desc_uva(1) - p.a.mem_uva()));
  // Logging off again: nothing more is marked.
  stop_logging(p.sw, p.pb, p.b, p.features | (1ull << vs::VIRTIO_F_RING_PACKED));
  lb.clear();
  VT_CHECK(recv(p.b, 31) == 31);  // one per receive buffer used: 1 + 1 + 3 + 8 + 18, as above
  p.traffic({60});
  VT_CHECK(p.sw.poll_once() == 3);
  VT_CHECK(lb.count() == 0);
}

VT_TEST(nothing_is_logged_with_logging_off) {
  Pair p(kMrg, 2048);
  Log la(p.a.mem_size()), lb(p.b.mem_size());
  // A log is mapped, but neither LOG_ALL nor VHOST_VRING_F_LOG is on: nothing may be written to it.
  VT_CHECK(p.sw.set_log_base(p.pa, dup(la.fd), la.size, 0).ok());
  VT_CHECK(p.sw.set_log_base(p.pb, dup(lb.fd), lb.size, 0).ok());
  p.traffic({60, 1500});
  VT_CHECK(p.sw.poll_once() == 4);
  VT_CHECK(recv(p.b, 3) == 3);
  VT_CHECK(la.count() == 0 && lb.count() == 0);
  // On, then off again (the source's migration was cancelled): the log stays untouched from then on.
  start_logging(p.sw, p.pb, p.b, lb, p.features);
  p.traffic({60});
  VT_CHECK(p.sw.poll_once() == 3);
  VT_CHECK(lb.count() > 0);
  stop_logging(p.sw, p.pb, p.b, p.features);
  lb.clear();
  VT_CHECK(recv(p.b, 2) == 2);
  p.traffic({60, 1500});
  VT_CHECK(p.sw.poll_once() == 4);
  VT_CHECK(recv(p.b, 3) == 3);
  VT_CHECK(lb.count() == 0);
}

VT_TEST(used_ring_only_with_vring_flag_and_buffers_only_with_log_all) {
  Pair p(kMrg, 2048);
  Log lb(p.b.mem_size());
  VT_CHECK(p.sw.set_log_base(p.pb, dup(lb.fd), lb.size, 0).ok());
  // VHOST_VRING_F_LOG without LOG_ALL: the used ring, not the buffers.
  for (int q = 0; q < 2; q++)
    VT_CHECK(p.sw.set_vring_addr(p.pb, q, p.b.desc_uva(q), p.b.used_uva(q), p.b.avail_uva(q), vs::VHOST_VRING_F_LOG,
                                 p.b.used_uva(q) - p.b.mem_uva())
                 .ok());
  p.traffic({60});
  VT_CHECK(p.sw.poll_once() == 3);
  VT_CHECK(lb.page(p.b.used_uva(0) - p.b.mem_uva()));
  VT_CHECK(!lb.page(p.b.buf_gpa(0, 0)));
  // Unknown address flags are refused.
  VT_CHECK(!p.sw.set_vring_addr(p.pb, 0, p.b.desc_uva(0), p.b.used_uva(0), p.b.avail_uva(0), 2, 0).ok());
}

VT_TEST(avail_event_written_before_sleeping_is_logged) {
  const uint64_t f = kMrg | (1ull << vs::VIRTIO_RING_F_EVENT_IDX);
  Pair p(f, 2048, 1);
  Log la(p.a.mem_size());
  start_logging(p.sw, p.pa, p.a, la, p.features);
  p.traffic({60, 60, 60});
  VT_CHECK(recv(p.b, 4) == 4);
  VT_CHECK(recv(p.a, 1) == 1);
  // The switch is done with a's frames; what it writes next is avail_event, when it goes to sleep.
  while (!p.sw.thread_counters(0).sleeping.load()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  const uint64_t avail_event = p.a.used_uva(1) - p.a.mem_uva() + 4 + 8ull * p.a.queue_size();
  uint16_t v;
  std::memcpy(&v, reinterpret_cast<const uint8_t*>(p.a.mem_uva()) + avail_event, 2);
  VT_CHECK(v == 4);  // four frames taken from a's transmit ring
  VT_CHECK(la.page(avail_event));
}

VT_TEST(bad_logs_are_refused) {
  Pair p(kMrg, 2048);
  Log good(p.a.mem_size());
  VT_CHECK(p.sw.set_log_base(p.pa, -1, good.size, 0).message().find("no fd") != std::string::npos);
  VT_CHECK(p.sw.set_log_base(p.pa, dup(good.fd), 0, 0).message().find("size is 0") != std::string::npos);
  VT_CHECK(p.sw.set_log_base(p.pa, dup(good.fd), 4096, ~0ull - 100).message().find("overflows") != std::string::npos);
  VT_CHECK(p.sw.set_log_base(p.pa, dup(good.fd), good.size + 1, 0).message().find("smaller") != std::string::npos);
  VT_CHECK(p.sw.set_log_base(p.pa, dup(good.fd), good.size, 4096).message().find("smaller") != std::string::npos);
  VT_CHECK(p.sw.set_log_base(p.pa, dup(good.fd), vs::kMaxLogSize + 1, 0).message().find("limit") != std::string::npos);
  int sv[2];
  VT_CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
  VT_CHECK(p.sw.set_log_base(p.pa, sv[0], good.size, 0).message().find("regular file") != std::string::npos);
  close(sv[1]);
  VT_CHECK(p.sw.set_log_base(99, dup(good.fd), good.size, 0).code() == vs::StatusCode::kNotFound);
  uint64_t size, outside;
  bool logging;
  VT_CHECK(p.sw.log_info(p.pa, &size, &outside, &logging) && size == 0 && !logging);
  // The port still forwards.
  p.traffic({60});
  VT_CHECK(p.sw.poll_once() == 3);
  VT_CHECK(recv(p.b, 2) == 2);
}

VT_TEST(log_is_replaced_and_a_truncated_log_stops_only_its_port) {
  Pair p(kMrg, 2048);
  Log l1(p.b.mem_size()), l2(p.b.mem_size());
  start_logging(p.sw, p.pb, p.b, l1, p.features);
  p.traffic({60});
  VT_CHECK(p.sw.poll_once() == 3);
  VT_CHECK(l1.count() > 0);
  VT_CHECK(p.sw.set_log_base(p.pb, dup(l2.fd), l2.size, 0).ok());
  l1.clear();
  VT_CHECK(recv(p.b, 2) == 2);
  p.traffic({60});
  VT_CHECK(p.sw.poll_once() == 3);
  VT_CHECK(l1.count() == 0 && l2.count() > 0);
  // The frontend shrinks the log file under us: the port stops (as for truncated guest memory), the switch lives.
  VT_CHECK(ftruncate(l2.fd, 0) == 0);
  VT_CHECK(recv(p.b, 2) == 2);
  p.traffic({60});
  p.sw.poll_once();
  VT_CHECK(stats(p.sw, p.pb).broken);
  VT_CHECK(!stats(p.sw, p.pa).broken);
}

int main() { return run_all(); }
