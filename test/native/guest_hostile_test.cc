// A guest that lies in its virtio-net headers, races the switch on its own frames, or builds legal rings the
// switch finds awkward: what is checked is what is delivered, offloads only as negotiated, a fault in another
// port's memory leaves the sender's ring consistent, and odd but legal rings keep working.
#include <fcntl.h>
#include <sys/mman.h>

#include <cstdlib>
#include <cstring>
#include <set>

#include "switch/datapath.h"
#include "switch/frame.h"
#include "switch/tx_header.h"
#include "harness.h"

using namespace vt;

static const uint8_t A[6] = {0x02, 0, 0, 0, 0, 0xa};
static const uint8_t B[6] = {0x02, 0, 0, 0, 0, 0xb};
static const uint8_t E[6] = {0x02, 0, 0, 0, 0, 0xe};
static const uint8_t BCAST[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

static uint64_t bit(int b) { return 1ull << b; }

// An Ethernet + IPv4 + TCP frame with `payload` bytes of data (checksums left zero: offloads fill them).
static std::vector<uint8_t> tcp4(const uint8_t* dst, const uint8_t* src, uint32_t payload) {
  std::vector<uint8_t> f(14 + 20 + 20 + payload, 0x5a);
  std::memcpy(f.data(), dst, 6);
  std::memcpy(f.data() + 6, src, 6);
  f[12] = 0x08, f[13] = 0x00;
  uint8_t* ip = f.data() + 14;
  std::memset(ip, 0, 20);
  ip[0] = 0x45, ip[8] = 64, ip[9] = 6;
  uint16_t tot = static_cast<uint16_t>(20 + 20 + payload);
  ip[2] = uint8_t(tot >> 8), ip[3] = uint8_t(tot);
  ip[12] = 169, ip[13] = 254, ip[14] = 0, ip[15] = 1;
  ip[16] = 169, ip[17] = 254, ip[18] = 0, ip[19] = 2;
  uint8_t* tcp = ip + 20;
  std::memset(tcp, 0, 20);
  tcp[0] = 0x30, tcp[1] = 0x39, tcp[2] = 0x00, tcp[3] = 0x50;
  tcp[12] = 5 << 4;
  tcp[13] = 0x10;  // ACK
  return f;
}

static vs::VirtioNetHdr tso4(uint16_t mss) {
  vs::VirtioNetHdr h{};
  h.flags = vs::VIRTIO_NET_HDR_F_NEEDS_CSUM;
  h.gso_type = vs::VIRTIO_NET_HDR_GSO_TCPV4;
  h.gso_size = mss;
  h.hdr_len = 54;
  h.csum_start = 34;
  h.csum_offset = 16;
  return h;
}

static uint32_t send_hdr(vs::Driver& d, const vs::VirtioNetHdr& h, const std::vector<uint8_t>& f) {
  const uint8_t* p = f.data();
  uint32_t len = static_cast<uint32_t>(f.size());
  return d.tx_burst(1, &p, &len, 1, &h);
}

// Runs forward() on f as if the poll thread had just taken it from src (threads = 0: nothing races us).
static void forward_now(vs::Switch& sw, uint32_t src, vs::Frame& f) {
  static vs::PollContext c;
  c.sw = &sw;
  c.thread = 0;
  c.now = 0;
  vs::VringCounters in;
  vs::FwdCache cache;
  vs::forward(c, *sw.port_by_id(src), in, cache, f);
  vs::flush_rx(c);
}

// The guest rewrote its frame after the switch checked it: f.eth holds what was checked, the buffer what the
// guest wrote since. Whatever is delivered must carry the checked bytes.
VT_TEST(delivery_writes_the_checked_ethernet_header) {
  vs::SwitchOptions o;
  o.threads = 0;
  vs::Switch sw(o);
  vs::Driver a{{}}, b{{}};
  uint32_t pa = sw.add_port({"a", 10, 1, 1500}), pb = sw.add_port({"b", 10, 1, 1500});
  wire(sw, pa, a);
  wire(sw, pb, b);
  auto checked = frame(BCAST, A, 64, 0x11);
  auto now = checked;
  now[12] = 0x81, now[13] = 0x00, now[14] = 0x00, now[15] = 0x07;  // tagged for VLAN 7 behind the filter's back
  for (int pieces : {1, 2}) {
    vs::Buf bufs[2] = {{now.data(), 64}, {nullptr, 0}};
    if (pieces == 2) bufs[0] = {now.data(), 13}, bufs[1] = {now.data() + 13, 51};  // the slow path
    vs::Frame f{};
    f.bufs = bufs;
    f.nbufs = pieces;
    f.off = 0;
    f.len = 64;
    f.vlan = 10;
    std::memcpy(f.eth, checked.data(), sizeof f.eth);
    forward_now(sw, pa, f);
    std::vector<std::vector<uint8_t>> got;
    VT_CHECK(recv(b, 1, 200, &got) == 1);
    VT_CHECK(got[0].size() == 64 && got[0] == checked);
  }
}

VT_TEST(software_segmentation_uses_the_checked_ethernet_header) {
  vs::SwitchOptions o;
  o.threads = 0;
  vs::Switch sw(o);
  vs::Driver a{{}}, b{{}};
  uint32_t pa = sw.add_port({"a", 0, 1, 1500}), pb = sw.add_port({"b", 0, 1, 1500});
  wire(sw, pa, a);
  wire(sw, pb, b);  // no GUEST_TSO4: the switch cuts the frame
  auto checked = tcp4(BCAST, A, 300);
  auto now = checked;
  now[12] = 0x81, now[13] = 0x00;
  vs::Buf buf{now.data(), static_cast<uint32_t>(now.size())};
  vs::Frame f{};
  f.bufs = &buf;
  f.nbufs = 1;
  f.len = now.size();
  f.hdr = tso4(100);
  std::memcpy(f.eth, checked.data(), sizeof f.eth);
  forward_now(sw, pa, f);
  std::vector<std::vector<uint8_t>> got;
  VT_CHECK(recv(b, 3, 200, &got) == 3);
  for (auto& g : got) VT_CHECK(g.size() == 154 && g[12] == 0x08 && g[13] == 0x00);
}

// A second vCPU flips the ethertype of the frames in flight between untagged and 802.1Q while the switch takes
// them from an access port: no tagged frame may come out.
VT_TEST(ethertype_rewritten_during_forwarding_never_gets_a_tag_through) {
  vs::Switch sw{vs::SwitchOptions{}};
  vs::Driver a{{}}, b{{}};
  uint32_t pa = sw.add_port({"a", 10, 1, 1500}), pb = sw.add_port({"b", 10, 1, 1500});
  wire(sw, pa, a);
  wire(sw, pb, b);
  std::atomic<bool> stop{false};
  std::thread flipper([&] {
    for (uint32_t n = 0; !stop.load(std::memory_order_relaxed); n++)
      for (uint32_t i = 0; i < a.queue_size(); i++)
        // 0x8100 or 0x88b5 as the bytes at offset 12, one store (the offset is even).
        __atomic_store_n(reinterpret_cast<uint16_t*>(a.buf(1, i) + a.hdr_len() + 12),
                         uint16_t(n & 1 ? 0x0081 : 0xb588), __ATOMIC_RELAXED);
  });
  uint32_t tagged = 0, got_total = 0;
  auto f = frame(B, A);
  for (int round = 0; round < 400; round++) {
    uint32_t sent = 0;
    for (int i = 0; i < 32; i++) sent += send(a, f);
    std::vector<std::vector<uint8_t>> got;
    recv(b, sent, 20, &got);
    for (auto& g : got) tagged += g[12] == 0x81 && g[13] == 0x00;
    got_total += static_cast<uint32_t>(got.size());
  }
  stop = true;
  flipper.join();
  std::printf("     %u frames through, %u tagged, %llu dropped by the VLAN filter\n", got_total, tagged,
              (unsigned long long)stats(sw, pa).drops[vs::kDropVlanFilter]);
  VT_CHECK(got_total > 0);
  VT_CHECK(tagged == 0);
}

// 5.1.6.2.2: DATA_VALID from a driver means nothing; passed on, a receiver with GUEST_CSUM would skip its check.
VT_TEST(data_valid_from_a_driver_is_not_passed_on) {
  vs::Switch sw{vs::SwitchOptions{}};
  vs::Driver a{{}}, b{{}};
  uint32_t pa = sw.add_port({"a", 0, 1, 1500}), pb = sw.add_port({"b", 0, 1, 1500});
  wire(sw, pa, a, kFeatures | bit(vs::VIRTIO_NET_F_CSUM));
  wire(sw, pb, b, kFeatures | bit(vs::VIRTIO_NET_F_GUEST_CSUM));
  vs::VirtioNetHdr h{};
  h.flags = vs::VIRTIO_NET_HDR_F_DATA_VALID;
  VT_CHECK(send_hdr(a, h, tcp4(B, A, 20)) == 1);
  const uint8_t* data[1];
  uint32_t lens[1];
  auto end = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  uint32_t n = 0;
  while (!n && std::chrono::steady_clock::now() < end) n = b.rx_burst(0, data, lens, 1);
  VT_CHECK(n == 1);
  vs::VirtioNetHdr got;
  std::memcpy(&got, data[0] - b.hdr_len(), sizeof got);
  VT_CHECK(got.flags == 0);
}

// 5.1.6.2.1: no checksum or segmentation offload the port did not negotiate, and no gso_size that turns one
// frame into tens of thousands.
VT_TEST(offloads_are_honoured_only_as_negotiated) {
  vs::Switch sw{vs::SwitchOptions{}};
  vs::Driver plain{{}}, tso{{}}, b{{}};
  uint32_t pp = sw.add_port({"plain", 0, 1, 1500}), pt = sw.add_port({"tso", 0, 1, 1500});
  uint32_t pb = sw.add_port({"b", 0, 1, 1500});
  wire(sw, pp, plain);
  wire(sw, pt, tso, kFeatures | bit(vs::VIRTIO_NET_F_CSUM) | bit(vs::VIRTIO_NET_F_HOST_TSO4));
  wire(sw, pb, b);
  vs::VirtioNetHdr csum{};
  csum.flags = vs::VIRTIO_NET_HDR_F_NEEDS_CSUM;
  csum.csum_start = 34;
  csum.csum_offset = 16;
  VT_CHECK(send_hdr(plain, csum, tcp4(B, A, 20)) == 1);  // NEEDS_CSUM without CSUM
  VT_CHECK(send_hdr(plain, tso4(1000), tcp4(B, A, 3000)) == 1);  // TSO without HOST_TSO4
  vs::VirtioNetHdr ufo = tso4(1000);
  ufo.gso_type = vs::VIRTIO_NET_HDR_GSO_UDP;
  VT_CHECK(send_hdr(tso, ufo, tcp4(B, E, 1400)) == 1);  // UFO without HOST_UFO
  vs::VirtioNetHdr ecn = tso4(1000);
  ecn.gso_type |= vs::VIRTIO_NET_HDR_GSO_ECN;
  VT_CHECK(send_hdr(tso, ecn, tcp4(B, E, 1400)) == 1);  // ECN without HOST_ECN
  VT_CHECK(send_hdr(tso, tso4(1), tcp4(B, E, 1400)) == 1);  // gso_size 1
  VT_CHECK(send_hdr(tso, tso4(vs::kMinGsoSize - 1), tcp4(B, E, 1400)) == 1);
  vs::VirtioNetHdr nocsum = tso4(1000);
  nocsum.flags = 0;
  VT_CHECK(send_hdr(tso, nocsum, tcp4(B, E, 1400)) == 1);  // GSO without NEEDS_CSUM
  VT_CHECK(send_hdr(tso, tso4(2000), tcp4(B, E, 1400)) == 1);  // MSS above the MTU
  // What is negotiated and sane still works: 1400 bytes at the smallest MSS we take are 16 segments.
  VT_CHECK(send_hdr(tso, tso4(vs::kMinGsoSize), tcp4(B, E, 1400)) == 1);
  std::vector<std::vector<uint8_t>> got;
  VT_CHECK(recv(b, 16, 1000, &got) == 16);
  VT_CHECK(recv(b, 1, 100) == 0);
  auto sp = stats(sw, pp), st = stats(sw, pt);
  VT_CHECK(sp.drops[vs::kDropOffloadNotNegotiated] == 2);
  VT_CHECK(st.drops[vs::kDropOffloadNotNegotiated] == 2);
  VT_CHECK(st.drops[vs::kDropBadHeader] == 4);
  VT_CHECK(sp.rx_packets == 2 && st.rx_packets == 7);
}

// A 64 KB broadcast at the smallest MSS is ~745 segments for each port of the flood: the queue that sends it
// may not hold the poll pass, so the other queues of the thread get their turn every pass.
VT_TEST(one_gso_frame_cannot_hold_the_poll_thread) {
  vs::SwitchOptions o;
  o.threads = 0;
  vs::Switch sw(o);
  vs::DriverOptions big;
  big.queue_size = 64;
  big.buf_size = 66 * 1024;
  vs::Driver a{{}}, b{{}}, evil{big};
  uint32_t pa = sw.add_port({"a", 0, 1, 1500}), pb = sw.add_port({"b", 0, 1, 1500});
  uint32_t pe = sw.add_port({"evil", 0, 1, 1500});
  wire(sw, pa, a);
  wire(sw, pb, b);
  wire(sw, pe, evil, kFeatures | bit(vs::VIRTIO_NET_F_CSUM) | bit(vs::VIRTIO_NET_F_HOST_TSO4));
  VT_CHECK(sw.fdb_add(vs::Fdb::key(B, 0), pb).ok());
  auto huge = tcp4(BCAST, E, 65000);
  for (int i = 0; i < 32; i++) VT_CHECK(send_hdr(evil, tso4(vs::kMinGsoSize), huge) == 1);
  auto small = frame(B, A);
  for (int pass = 0; pass < 20; pass++) {
    for (int i = 0; i < 16; i++) VT_CHECK(send(a, small) == 1);
    sw.poll_once();
    uint32_t honest = 0;
    const uint8_t* data[64];
    uint32_t lens[64];
    for (uint32_t n; (n = b.rx_burst(0, data, lens, 64));)
      for (uint32_t i = 0; i < n; i++) honest += data[i][12] == 0x88;
    while (a.rx_burst(0, data, lens, 64)) {
    }
    VT_CHECK(honest == 16);  // every honest frame of the pass went through in the pass
    a.reclaim_tx(1);
  }
  uint16_t used = __atomic_load_n(&evil.used(1)->idx, __ATOMIC_ACQUIRE);
  std::printf("     evil frames taken in 20 passes: %u of 32\n", used);
  VT_CHECK(used >= 1 && used <= 2);
  // Not starved either: given passes, it sends everything.
  for (int pass = 0; pass < 20000 && __atomic_load_n(&evil.used(1)->idx, __ATOMIC_ACQUIRE) != 32; pass++) {
    sw.poll_once();
    const uint8_t* data[64];
    uint32_t lens[64];
    while (b.rx_burst(0, data, lens, 64) || a.rx_burst(0, data, lens, 64)) {
    }
  }
  VT_CHECK(__atomic_load_n(&evil.used(1)->idx, __ATOMIC_ACQUIRE) == 32);
}

// The destination's memory file is truncated: the fault comes in the middle of the sender's burst. The sender's
// ring must stay what virtio says: each id used once, used->idx == what was taken, never past avail->idx.
VT_TEST(fault_in_the_middle_of_a_burst_keeps_the_senders_ring_consistent) {
  vs::Switch sw{vs::SwitchOptions{}};
  vs::Driver a{{}}, b{{}}, evil{{}};
  uint32_t pa = sw.add_port({"a", 0, 1, 1500}), pb = sw.add_port({"b", 0, 1, 1500});
  uint32_t pe = sw.add_port({"evil", 0, 1, 1500});
  wire(sw, pa, a);
  wire(sw, pb, b);
  wire(sw, pe, evil);
  VT_CHECK(sw.fdb_add(vs::Fdb::key(B, 0), pb).ok());
  VT_CHECK(ftruncate(evil.mem_fd(), 4096) == 0);  // from here on, never touch evil's rings ourselves
  // Frames 0-3 to b alone, 4 floods (b, then evil: the fault), 5-7 to b again; one burst.
  std::vector<std::vector<uint8_t>> frames;
  for (int i = 0; i < 8; i++) frames.push_back(frame(i == 4 ? BCAST : B, A, 64, uint8_t(i)));
  const uint8_t* ptrs[8];
  uint32_t lens[8];
  for (int i = 0; i < 8; i++) ptrs[i] = frames[i].data(), lens[i] = 64;
  VT_CHECK(a.tx_burst(1, ptrs, lens, 8) == 8);
  std::vector<std::vector<uint8_t>> got;
  recv(b, 8, 1000, &got);
  recv(b, 8, 100, &got);
  VT_CHECK(stats(sw, pe).broken);
  const vs::VringUsed* used = a.used(1);
  uint16_t used_idx = __atomic_load_n(&used->idx, __ATOMIC_ACQUIRE);
  uint16_t avail_idx = a.avail(1)->idx;
  std::printf("     avail->idx %u, used->idx %u, b got %zu\n", avail_idx, used_idx, got.size());
  VT_CHECK(used_idx == 8 && avail_idx == 8);
  std::set<uint32_t> ids;
  for (int i = 0; i < 8; i++) ids.insert(used->ring[i].id);
  VT_CHECK(ids.size() == 8);
  // b got each frame once: 0-3, the broadcast (delivered before the fault), 5-7.
  VT_CHECK(got.size() == 8);
  std::set<uint8_t> seen;
  for (auto& g : got) seen.insert(g[20]);
  VT_CHECK(seen.size() == 8);
  // And the sender goes on.
  VT_CHECK(send(a, frame(B, A)) == 1);
  VT_CHECK(recv(b, 1) == 1);
  VT_CHECK(sw.remove_port(pe).ok());
}

// vhost-user "Ring states": a started ring that is disabled is still processed: its transmit frames are taken
// and discarded, not left for the guest to wait on forever.
VT_TEST(disabled_transmit_ring_is_drained_and_counted) {
  vs::Switch sw{vs::SwitchOptions{}};
  vs::Driver a{{}}, b{{}};
  uint32_t pa = sw.add_port({"a", 0, 1, 1500}), pb = sw.add_port({"b", 0, 1, 1500});
  wire(sw, pa, a);
  wire(sw, pb, b);
  VT_CHECK(sw.set_vring_enable(pa, 1, false).ok());
  VT_CHECK(send(a, frame(B, A), 5) == 5);
  auto end = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  while (__atomic_load_n(&a.used(1)->idx, __ATOMIC_ACQUIRE) != 5 && std::chrono::steady_clock::now() < end)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  VT_CHECK(__atomic_load_n(&a.used(1)->idx, __ATOMIC_ACQUIRE) == 5);
  VT_CHECK(recv(b, 1, 100) == 0);
  VT_CHECK(stats(sw, pa).drops[vs::kDropRingDisabled] == 5);
  VT_CHECK(sw.set_vring_enable(pa, 1, true).ok());
  VT_CHECK(send(a, frame(B, A)) == 1);
  VT_CHECK(recv(b, 1) == 1);
}

// A receive chain of 300 pieces is legal in a 512-entry ring but more than the switch's 256-piece scratch: the
// frame is dropped and counted, the chain returned, and the ring goes on working.
VT_TEST(receive_chain_longer_than_the_scratch_keeps_the_ring) {
  vs::Switch sw{vs::SwitchOptions{}};
  vs::DriverOptions o;
  o.queue_size = 512;
  vs::Driver a{{}}, b{o};
  uint32_t pa = sw.add_port({"a", 0, 1, 1500}), pb = sw.add_port({"b", 0, 1, 1500});
  wire(sw, pa, a);
  wire(sw, pb, b, kFeatures, false);
  vs::VringDesc* d = b.desc(0);
  for (uint16_t i = 0; i < 300; i++)
    d[i] = {b.buf_gpa(0, i), 8, uint16_t(vs::VRING_DESC_F_WRITE | (i < 299 ? vs::VRING_DESC_F_NEXT : 0)),
            uint16_t(i + 1)};
  d[300] = {b.buf_gpa(0, 300), 2048, vs::VRING_DESC_F_WRITE, 0};
  b.push_avail(0, 0);
  b.push_avail(0, 300);
  VT_CHECK(send(a, frame(B, A)) == 1);  // into the long chain: dropped
  VT_CHECK(send(a, frame(B, A)) == 1);  // into the next one
  std::vector<std::vector<uint8_t>> got;
  VT_CHECK(recv(b, 1, 1000, &got) == 1);
  auto s = stats(sw, pb);
  VT_CHECK(!s.broken);
  VT_CHECK(s.drops[vs::kDropBadDescriptor] == 1);
  VT_CHECK(b.used(0)->idx == 2 && b.used(0)->ring[0].id == 0 && b.used(0)->ring[0].len == 0);
}

// Guest memory is a memfd, tmpfs or hugetlbfs file: a file on another file system (here the root's ext4 or
// overlay; FUSE or NFS are the dangerous ones) is refused with a reason, and so is more than the per-port cap.
VT_TEST(guest_memory_must_be_memory_backed_and_capped) {
  vs::Switch sw{vs::SwitchOptions{}};
  uint32_t p = sw.add_port({"p", 0, 1, 1500});
  const uint64_t size = 2 << 20;
  char disk[] = "/var/tmp/harden-mem-XXXXXX";
  int fd = mkstemp(disk);
  VT_CHECK(fd >= 0);
  unlink(disk);
  VT_CHECK(ftruncate(fd, size) == 0);
  vs::Status err = sw.set_mem_table(p, {{0, size, 0x10000000, 0, fd}});
  std::printf("     %s\n", err.message().c_str());
  VT_CHECK(err.message().find("tmpfs") != std::string::npos);
  char shm[] = "/dev/shm/harden-mem-XXXXXX";
  fd = mkstemp(shm);
  VT_CHECK(fd >= 0);
  unlink(shm);
  VT_CHECK(ftruncate(fd, size) == 0);
  VT_CHECK(sw.set_mem_table(p, {{0, size, 0x10000000, 0, fd}}).ok());
  // A sparse memfd larger than the cap costs the frontend nothing; mapping it must be refused.
  fd = memfd_create("harden-cap", MFD_CLOEXEC);
  VT_CHECK(fd >= 0 && ftruncate(fd, static_cast<off_t>(vs::kMaxGuestMemory + size)) == 0);
  err = sw.set_mem_table(p, {{0, vs::kMaxGuestMemory / 2, 0x10000000, 0, dup(fd)},
                             {vs::kMaxGuestMemory, vs::kMaxGuestMemory / 2 + size, 0x10000000 + vs::kMaxGuestMemory,
                              vs::kMaxGuestMemory / 2, fd}});
  std::printf("     %s\n", err.message().c_str());
  VT_CHECK(err.message().find("limit") != std::string::npos);
}

int main() { return run_all(); }
