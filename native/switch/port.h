// A switch port backed by a vhost-user frontend: its guest memory, negotiated features and virtqueues.
// Queue 2k is the guest's receive queue k (the switch enqueues), 2k+1 its transmit queue k (the switch
// dequeues). Mutated only while every poll thread is parked (Engine::exec), read freely by poll threads.
#pragma once
#include <bitset>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "switch/capture.h"
#include "core/dirty_log.h"
#include "core/guest_memory.h"
#include "ports/nic.h"
#include "switch/port_security.h"
#include "core/packed_vring.h"
#include "core/vring.h"

namespace vs {

enum class PortKind { kVhost, kNic, kTap };

constexpr uint16_t kMaxVlan = 4094;  // VLAN ids 1..4094 (0 and 4095 are reserved by 802.1Q)
using VlanSet = std::bitset<kMaxVlan + 2>;

struct PortConfig {
  std::string name;
  uint16_t vlan = 0;  // access port: its VLAN (0: the untagged default domain); trunk: the native (untagged) one
  uint16_t queue_pairs = 1;
  uint32_t mtu = 1500;
  bool trunk = false;  // carries the allowed VLANs tagged besides `vlan` (a NIC's wire, or a guest's own VLANs)
  std::shared_ptr<const PortSecurity> security;  // null: port security off
  VlanSet allowed_vlans = VlanSet().set().reset(0).reset(kMaxVlan + 1);  // trunks only; all by default
  // queue_threads[q]: the poll thread of the port's queue q (a guest's queue pair, a NIC queue); missing or -1:
  // placed by the switch (the thread with the fewest queues when the queue first appears).
  std::vector<int> queue_threads;
};

struct Port {
  uint32_t id;
  PortConfig cfg;
  PortKind kind = PortKind::kVhost;
  std::vector<std::unique_ptr<NicQueue>> nicq;  // kNic / kTap: the queues, each polled by one thread
  uint64_t features = 0;
  uint32_t hdr_len = 12;  // virtio-net header size for the negotiated features
  std::unique_ptr<GuestMemory> mem;
  std::unique_ptr<DirtyLog> dirty_log;  // SET_LOG_BASE; written only while features carry VHOST_F_LOG_ALL
  // 2 * queue_pairs, each allocated as a PackedVring so that it can be either layout (packed_vring.h)
  std::vector<std::unique_ptr<PackedVring>> vrings;
  // Derived on every reconfiguration: the started receive queues (broken ones included), those enabled first. Frames spread over
  // the first rx_spread of them (all when none was enabled); whether a queue is enabled is checked per frame,
  // since enabling and disabling one does not reconfigure (SET_VRING_ENABLE does not park the poll threads).
  std::vector<Vring*> rx_ready;
  size_t rx_spread = 0;
  // A running capture (capture.h), or null. Set and cleared only inside exec(), while the poll threads are parked.
  std::unique_ptr<CaptureRing> capture;

  Port(uint32_t id_, PortConfig c, PortKind k = PortKind::kVhost) : id(id_), cfg(std::move(c)), kind(k) {
    if (kind == PortKind::kVhost)
      for (int i = 0; i < 2 * cfg.queue_pairs; i++) {
        vrings.emplace_back(new PackedVring());
        vrings.back()->queue_pair = static_cast<uint16_t>(i / 2);
      }
  }
  ~Port() {
    for (auto& v : vrings) v->close_fds();
  }
  bool has(int bit) const { return has_feature(features, bit); }
  bool packed() const { return has(VIRTIO_F_RING_PACKED); }
  void set_features(uint64_t f) {
    features = f;
    hdr_len = (has(VIRTIO_F_VERSION_1) || has(VIRTIO_NET_F_MRG_RXBUF)) ? 12 : 10;
    for (auto& v : vrings) {
      v->event_idx = has(VIRTIO_RING_F_EVENT_IDX);
      v->packed = packed();
      v->in_order = has(VIRTIO_F_IN_ORDER);
    }
  }
  // Frontend gone or RESET_OWNER: everything back to the state of a fresh connection.
  void reset() {
    for (auto& v : vrings) {
      v->close_fds();
      v->forget_translation();
      v->stop_and_reset_state();
      v->enabled = false;
      v->addr_set = false;
      v->addr_flags = 0;
      v->log_guest_addr = 0;
      v->log = {};
      v->num = 0;
      v->last_avail_idx = v->used_idx = v->published_used = v->cached_avail = 0;
      v->avail_wrap = v->used_wrap = v->published_wrap = true;
      v->unsignalled = 0;
      v->packed = false;
    }
    mem.reset();
    dirty_log.reset();
    features = 0;
    hdr_len = 12;
    rx_ready.clear();
    rx_spread = 0;
  }
  // What each ring logs: its buffers with VHOST_F_LOG_ALL, its used ring with VHOST_VRING_F_LOG, nothing without
  // a log and memory.
  void refresh_log() {
    for (auto& v : vrings) {
      v->log = {};
      if (!dirty_log || !mem) continue;
      v->log.bufs = has(VHOST_F_LOG_ALL);
      v->log.used = (v->addr_flags & VHOST_VRING_F_LOG) != 0;
      if (v->log.bufs || v->log.used) {
        v->log.log = dirty_log.get();
        v->log.mem = mem.get();
      }
    }
  }
  void refresh_rx_ready() {
    rx_ready.clear();
    for (bool enabled : {true, false})
      for (size_t i = 0; i < vrings.size(); i += 2)
        if (vrings[i]->started && vrings[i]->desc && vrings[i]->is_enabled() == enabled)
          rx_ready.push_back(vrings[i].get());  // broken ones too: enqueue counts what they cannot take
    rx_spread = 0;
    while (rx_spread < rx_ready.size() && rx_ready[rx_spread]->is_enabled()) rx_spread++;
    if (rx_spread == 0) rx_spread = rx_ready.size();
  }
};

}  // namespace vs
