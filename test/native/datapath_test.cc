// Forwarding behaviour of the native switch, driven by our virtio driver: learning, flooding, VLANs,
// offload header handling, and hostile descriptors.
#include <cstring>

#include "harness.h"

using namespace vt;

static const uint8_t A[6] = {0x02, 0, 0, 0, 0, 0xa};
static const uint8_t B[6] = {0x02, 0, 0, 0, 0, 0xb};
static const uint8_t C[6] = {0x02, 0, 0, 0, 0, 0xc};
static const uint8_t BCAST[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

struct Trio {
  vs::Switch sw{vs::SwitchOptions{}};
  vs::Driver a{{}}, b{{}}, c{{}};
  uint32_t pa, pb, pc;
  explicit Trio(uint16_t vlan_c = 0) {
    pa = sw.add_port({"a", 0, 1, 1500});
    pb = sw.add_port({"b", 0, 1, 1500});
    pc = sw.add_port({"c", vlan_c, 1, 1500});
    wire(sw, pa, a);
    wire(sw, pb, b);
    wire(sw, pc, c);
  }
};

VT_TEST(broadcast_floods_then_unicast_is_learned) {
  Trio t;
  VT_CHECK(send(t.a, frame(BCAST, A)) == 1);
  VT_CHECK(recv(t.b, 1) == 1);
  VT_CHECK(recv(t.c, 1) == 1);
  VT_CHECK(recv(t.a, 1, 50) == 0);  // no hairpin
  // b answers a: a was learned, so only a gets it.
  VT_CHECK(send(t.b, frame(A, B)) == 1);
  std::vector<std::vector<uint8_t>> got;
  VT_CHECK(recv(t.a, 1, 1000, &got) == 1);
  VT_CHECK(got[0].size() == 64 && std::memcmp(got[0].data() + 6, B, 6) == 0);
  VT_CHECK(recv(t.c, 1, 50) == 0);
  VT_CHECK(stats(t.sw, t.pa).rx_packets == 1 && stats(t.sw, t.pa).tx_packets == 1);
  VT_CHECK(stats(t.sw, t.pb).rx_packets == 1 && stats(t.sw, t.pb).tx_packets == 1);
}

VT_TEST(unknown_unicast_floods_and_fdb_ages) {
  vs::SwitchOptions o;
  o.aging = 1;
  vs::Switch sw(o);
  vs::Driver a{{}}, b{{}};
  uint32_t pa = sw.add_port({"a", 0, 1, 1500}), pb = sw.add_port({"b", 0, 1, 1500});
  wire(sw, pa, a);
  wire(sw, pb, b);
  VT_CHECK(send(a, frame(C, A)) == 1);
  VT_CHECK(recv(b, 1) == 1);
  VT_CHECK(sw.fdb().lookup(vs::Fdb::key(A, 0)) == pa);
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  VT_CHECK(sw.fdb().lookup(vs::Fdb::key(A, 0)) == vs::kNoPort);
}

VT_TEST(vlans_are_isolated) {
  Trio t(10);
  VT_CHECK(send(t.a, frame(BCAST, A)) == 1);
  VT_CHECK(recv(t.b, 1) == 1);
  VT_CHECK(recv(t.c, 1, 100) == 0);
  VT_CHECK(send(t.c, frame(BCAST, C)) == 1);
  VT_CHECK(recv(t.a, 1, 100) == 0 && recv(t.b, 1, 100) == 0);
  // A tagged frame on an access port is dropped and counted.
  auto tagged = frame(BCAST, C);
  tagged[12] = 0x81;
  tagged[13] = 0x00;
  VT_CHECK(send(t.c, tagged) == 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  VT_CHECK(stats(t.sw, t.pc).drops[vs::kDropVlanFilter] == 1);
}

VT_TEST(static_entry_is_not_moved_by_learning) {
  Trio t;
  VT_CHECK(t.sw.fdb_add(vs::Fdb::key(A, 0), t.pc).ok());
  VT_CHECK(send(t.a, frame(BCAST, A)) == 1);  // would learn A on a
  VT_CHECK(recv(t.b, 1) == 1);
  VT_CHECK(t.sw.fdb().lookup(vs::Fdb::key(A, 0)) == t.pc);
}

VT_TEST(mtu_and_runt_are_dropped_and_counted) {
  Trio t;
  VT_CHECK(send(t.a, frame(BCAST, A, 1600)) == 1);
  VT_CHECK(send(t.a, frame(BCAST, A, 10)) == 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  auto s = stats(t.sw, t.pa);
  VT_CHECK(s.drops[vs::kDropMtu] == 1);
  VT_CHECK(s.drops[vs::kDropRunt] == 1);
  VT_CHECK(recv(t.b, 1, 50) == 0);
}

VT_TEST(no_rx_buffer_is_counted_not_blocking) {
  vs::Switch sw{vs::SwitchOptions{}};
  vs::Driver a{{}}, b{{}};
  uint32_t pa = sw.add_port({"a", 0, 1, 1500}), pb = sw.add_port({"b", 0, 1, 1500});
  wire(sw, pa, a);
  wire(sw, pb, b);
  // b never takes its frames: after its 256 buffers are full the rest are dropped and counted.
  for (int i = 0; i < 400; i++) {
    while (send(a, frame(BCAST, A)) == 0) std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  auto s = stats(sw, pb);
  VT_CHECK(s.tx_packets == 256);
  VT_CHECK(s.drops[vs::kDropNoRxBuffer] == 400 - 256);
}

VT_TEST(checksum_is_filled_in_for_a_port_without_guest_csum) {
  vs::Switch sw{vs::SwitchOptions{}};
  vs::Driver a{{}}, b{{}};
  uint32_t pa = sw.add_port({"a", 0, 1, 1500}), pb = sw.add_port({"b", 0, 1, 1500});
  wire(sw, pa, a, kFeatures | (1ull << vs::VIRTIO_NET_F_CSUM));
  wire(sw, pb, b);
  // Hand-build a frame with NEEDS_CSUM: the checksum of bytes [20, 64) goes at 20 + 6.
  auto f = frame(BCAST, A, 64, 0x11);
  f[26] = f[27] = 0;
  uint8_t* buf = a.buf(1, 0);
  vs::VirtioNetHdr h{};
  h.flags = vs::VIRTIO_NET_HDR_F_NEEDS_CSUM;
  h.csum_start = 20;
  h.csum_offset = 6;
  std::memcpy(buf, &h, 12);
  std::memcpy(buf + 12, f.data(), f.size());
  a.desc(1)[0] = {a.buf_gpa(1, 0), 12 + 64, 0, 0};
  a.push_avail(1, 0);
  a.kick(1);
  std::vector<std::vector<uint8_t>> got;
  VT_CHECK(recv(b, 1, 1000, &got) == 1);
  // 44 bytes of 0x11 minus the two zeroed: 21 words of 0x1111 -> sum 0x16665 -> folded 0x6666 -> ~ 0x9999.
  VT_CHECK(got[0][26] == 0x99 && got[0][27] == 0x99);
}

static uint32_t ones(const uint8_t* p, size_t n, uint32_t sum = 0) {
  for (size_t i = 0; i + 1 < n; i += 2) sum += uint32_t(p[i] << 8 | p[i + 1]);
  if (n & 1) sum += uint32_t(p[n - 1] << 8);
  return sum;
}
static uint16_t folded(uint32_t s) {
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return uint16_t(s);
}

VT_TEST(tcp_gso_frame_is_segmented_for_a_port_without_tso) {
  vs::Switch sw{vs::SwitchOptions{}};
  vs::Driver a{{}}, b{{}};
  uint32_t pa = sw.add_port({"a", 0, 1, 1500}), pb = sw.add_port({"b", 0, 1, 1500});
  wire(sw, pa, a, kFeatures | (1ull << vs::VIRTIO_NET_F_HOST_TSO4) | (1ull << vs::VIRTIO_NET_F_CSUM));
  wire(sw, pb, b);
  // Ethernet + IPv4 + TCP + 2500 bytes of payload, MSS 1000: three segments of 1000, 1000 and 500 bytes.
  const uint32_t payload = 2500, hlen = 14 + 20 + 20;
  std::vector<uint8_t> f(hlen + payload);
  for (uint32_t i = 0; i < payload; i++) f[hlen + i] = uint8_t(i * 7 + 3);
  std::copy(B, B + 6, f.begin());
  std::copy(A, A + 6, f.begin() + 6);
  f[12] = 0x08, f[13] = 0x00;
  uint8_t* ip = f.data() + 14;
  ip[0] = 0x45, ip[8] = 64, ip[9] = 6, ip[4] = 0x12, ip[5] = 0x34;
  ip[12] = 169, ip[13] = 254, ip[14] = 0, ip[15] = 1, ip[16] = 169, ip[17] = 254, ip[18] = 0, ip[19] = 2;
  uint8_t* tcp = ip + 20;
  tcp[0] = 0x30, tcp[1] = 0x39, tcp[2] = 0x14, tcp[3] = 0x51;  // ports 12345 -> 5201
  tcp[4] = 0, tcp[5] = 0, tcp[6] = 0x10, tcp[7] = 0;           // seq 4096
  tcp[12] = 5 << 4, tcp[13] = 0x18;                             // ACK|PSH
  vs::VirtioNetHdr h{};
  h.flags = vs::VIRTIO_NET_HDR_F_NEEDS_CSUM;
  h.gso_type = vs::VIRTIO_NET_HDR_GSO_TCPV4;
  h.gso_size = 1000;
  h.hdr_len = hlen;
  h.csum_start = 34;
  h.csum_offset = 16;
  // Two descriptors: header and the first 1500 bytes, then the rest.
  uint8_t* b0 = a.buf(1, 0);
  std::memcpy(b0, &h, 12);
  std::memcpy(b0 + 12, f.data(), 1500);
  std::memcpy(a.buf(1, 1), f.data() + 1500, f.size() - 1500);
  a.desc(1)[0] = {a.buf_gpa(1, 0), 12 + 1500, vs::VRING_DESC_F_NEXT, 1};
  a.desc(1)[1] = {a.buf_gpa(1, 1), uint32_t(f.size() - 1500), 0, 0};
  a.push_avail(1, 0);
  a.kick(1);
  std::vector<std::vector<uint8_t>> got;
  VT_CHECK(recv(b, 3, 1000, &got) == 3);
  uint32_t expect_len[3] = {1000, 1000, 500};
  for (int i = 0; i < 3; i++) {
    const std::vector<uint8_t>& g = got[i];
    VT_CHECK(g.size() == hlen + expect_len[i]);
    const uint8_t* gi = g.data() + 14;
    const uint8_t* gt = gi + 20;
    VT_CHECK(folded(ones(gi, 20)) == 0xffff);                          // IPv4 header checksum
    VT_CHECK(uint32_t(gi[2] << 8 | gi[3]) == 40 + expect_len[i]);       // total length
    uint32_t seq = uint32_t(gt[4]) << 24 | uint32_t(gt[5]) << 16 | uint32_t(gt[6]) << 8 | gt[7];
    VT_CHECK(seq == 4096 + 1000u * i);
    uint32_t pseudo = ones(gi + 12, 8) + 6 + 20 + expect_len[i];
    VT_CHECK(folded(ones(gt, 20 + expect_len[i], pseudo)) == 0xffff);  // TCP checksum over the segment
    VT_CHECK(((gt[13] & 0x08) != 0) == (i == 2));                        // PSH on the last only
    VT_CHECK(std::memcmp(g.data() + hlen, f.data() + hlen + 1000 * i, expect_len[i]) == 0);
  }
  VT_CHECK(stats(sw, pb).drops[vs::kDropOffload] == 0);
}

VT_TEST(udp_gso_frame_to_a_port_without_it_is_dropped_and_counted) {
  vs::Switch sw{vs::SwitchOptions{}};
  vs::Driver a{{}}, b{{}};
  uint32_t pa = sw.add_port({"a", 0, 1, 1500}), pb = sw.add_port({"b", 0, 1, 1500});
  wire(sw, pa, a, kFeatures | (1ull << vs::VIRTIO_NET_F_HOST_UFO) | (1ull << vs::VIRTIO_NET_F_CSUM));
  wire(sw, pb, b);
  auto f = frame(BCAST, A, 100);
  uint8_t* buf = a.buf(1, 0);
  vs::VirtioNetHdr h{};
  h.flags = vs::VIRTIO_NET_HDR_F_NEEDS_CSUM;
  h.csum_start = 34;
  h.csum_offset = 6;
  h.gso_type = vs::VIRTIO_NET_HDR_GSO_UDP;
  h.gso_size = 1448;
  std::memcpy(buf, &h, 12);
  std::memcpy(buf + 12, f.data(), f.size());
  a.desc(1)[0] = {a.buf_gpa(1, 0), 12 + 100, 0, 0};
  a.push_avail(1, 0);
  a.kick(1);
  VT_CHECK(recv(b, 1, 100) == 0);
  VT_CHECK(stats(sw, pb).drops[vs::kDropOffload] == 1);
}

int main() { return run_all(); }
