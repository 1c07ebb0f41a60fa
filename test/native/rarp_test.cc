// SEND_RARP after a live migration: the switch announces the guest from its new port, so that the FDB and
// every other port of the VLAN learn where it is before the guest itself sends anything.
#include <cstring>

#include "harness.h"

using namespace vt;

static const uint8_t G[6] = {0x52, 0x54, 0, 0, 0x10, 0x01};
static const uint8_t P[6] = {0x02, 0, 0, 0, 0, 0xb};

VT_TEST(rarp_moves_the_fdb_entry_and_floods_the_vlan) {
  vs::Switch sw{vs::SwitchOptions{}};
  vs::Driver src{{}}, dst{{}}, peer{{}}, other_vlan{{}};
  uint32_t ps = sw.add_port({"src", 0, 1, 1500}), pd = sw.add_port({"dst", 0, 1, 1500});
  uint32_t pp = sw.add_port({"peer", 0, 1, 1500}), po = sw.add_port({"other", 7, 1, 1500});
  wire(sw, ps, src);
  wire(sw, pd, dst);
  wire(sw, pp, peer);
  wire(sw, po, other_vlan);
  // The guest speaks on its old port: learned there.
  VT_CHECK(send(src, frame(P, G)) == 1);
  VT_CHECK(recv(peer, 1) == 1 && recv(dst, 1) == 1);  // P is unknown yet: flooded
  VT_CHECK(sw.fdb().lookup(vs::Fdb::key(G, 0)) == ps);
  // It is migrated: the destination QEMU asks the switch to announce it on the new port.
  VT_CHECK(sw.send_rarp(pd, G).ok());
  VT_CHECK(sw.fdb().lookup(vs::Fdb::key(G, 0)) == pd);
  std::vector<std::vector<uint8_t>> got;
  VT_CHECK(recv(peer, 1, 1000, &got) == 1);
  const auto& f = got[0];
  VT_CHECK(f.size() == 60 && f[0] == 0xff && std::memcmp(f.data() + 6, G, 6) == 0);
  VT_CHECK(f[12] == 0x80 && f[13] == 0x35 && f[21] == 3);                 // RARP, reverse request
  VT_CHECK(std::memcmp(f.data() + 22, G, 6) == 0 && std::memcmp(f.data() + 32, G, 6) == 0);
  VT_CHECK(recv(src, 1) == 1);              // the old port is in the VLAN too (its guest may be gone already)
  VT_CHECK(recv(dst, 1, 100) == 0);         // not back to the guest itself
  VT_CHECK(recv(other_vlan, 1, 100) == 0);  // nor outside its VLAN
  // Traffic toward the guest now goes to its new port only.
  VT_CHECK(send(peer, frame(G, P)) == 1);
  VT_CHECK(recv(dst, 1) == 1);
  VT_CHECK(recv(src, 1, 100) == 0);
  const uint8_t mcast[6] = {0x01, 0, 0x5e, 0, 0, 1};
  VT_CHECK(!sw.send_rarp(pd, mcast).ok());
  VT_CHECK(sw.send_rarp(99, G).code() == vs::StatusCode::kNotFound);
}

int main() { return run_all(); }
