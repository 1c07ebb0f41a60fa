// A packed-ring frontend for native tests (virtio 1.1 2.7, the driver's side), laid over a vs::Driver's memory
// and eventfds: the descriptor ring where the Driver keeps its descriptor table, the driver event suppression
// structure where it keeps its avail ring, the device's where it keeps its used ring. Buffer id i uses the
// Driver's buffer i of that queue. Hostile tests write raw descriptors through desc() and put().
#pragma once
#include <sys/eventfd.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "harness.h"

namespace vt {

constexpr uint64_t kPackedFeatures = kFeatures | (1ull << vs::VIRTIO_F_RING_PACKED);

class PackedFront {
 public:
  struct Piece {  // one descriptor to make available
    uint64_t addr;
    uint32_t len;
    uint16_t flags;  // NEXT / WRITE / INDIRECT; AVAIL and USED are added
  };

  // num: the queue size told to the switch (at most the Driver's, which lays the memory out).
  explicit PackedFront(vs::Driver& d, uint16_t num = 0) : d_(d), num_(num ? num : d.queue_size()) {
    q_.resize(d.vring_count());
    for (int q = 0; q < d.vring_count(); q++) {
      std::memset(d.desc(q), 0, 16ull * num_);
      driver_event(q)->flags = vs::RING_EVENT_FLAGS_DISABLE;  // we poll
      q_[q].ndesc.assign(num_, 0);
      for (uint16_t i = 0; i < num_; i++) q_[q].free.push_back(static_cast<uint16_t>(num_ - 1 - i));
    }
  }

  vs::VringPackedDesc* desc(int q) { return reinterpret_cast<vs::VringPackedDesc*>(d_.desc(q)); }
  vs::VringPackedEvent* driver_event(int q) { return reinterpret_cast<vs::VringPackedEvent*>(d_.avail(q)); }
  vs::VringPackedEvent* device_event(int q) { return reinterpret_cast<vs::VringPackedEvent*>(d_.used(q)); }
  uint16_t num() const { return num_; }
  uint16_t avail_idx(int q) const { return q_[q].avail_idx; }
  bool avail_wrap(int q) const { return q_[q].avail_wrap; }

  // The vhost-user handshake for packed rings, done directly; base: what SET_VRING_BASE carries.
  void wire(vs::Switch& sw, uint32_t id, uint64_t features = kPackedFeatures, uint32_t base = 0x80008000u) {
    d_.set_features(features);
    VT_CHECK(sw.set_features(id, features).ok());
    VT_CHECK(sw.set_mem_table(id, {{0, d_.mem_size(), d_.mem_uva(), 0, dup(d_.mem_fd())}}).ok());
    for (int q = 0; q < d_.vring_count(); q++) {
      VT_CHECK(sw.set_vring_num(id, q, num_).ok());
      // desc: the descriptor ring; "used": the device event area; "avail": the driver event area.
      VT_CHECK(sw.set_vring_addr(id, q, d_.desc_uva(q), d_.used_uva(q), d_.avail_uva(q)).ok());
      VT_CHECK(sw.set_vring_base(id, q, base).ok());
      q_[q].avail_idx = q_[q].used_idx = base & 0x7fff;
      q_[q].avail_wrap = q_[q].used_wrap = base & 0x8000;
      VT_CHECK(sw.set_vring_fd(id, q, 1, dup(d_.call_fd(q))).ok());
      VT_CHECK(sw.set_vring_fd(id, q, 0, dup(d_.kick_fd(q))).ok());
      VT_CHECK(sw.set_vring_enable(id, q, true).ok());
    }
  }

  // Makes one chain available: every descriptor but the head first, the head's flags last (2.7.13).
  void put(int q, uint16_t id, const std::vector<Piece>& chain) {
    Q& s = q_[q];
    uint16_t slot = s.avail_idx;
    bool wrap = s.avail_wrap;
    uint16_t head_flags = 0;
    for (size_t i = 0; i < chain.size(); i++) {
      uint16_t f = chain[i].flags | (wrap ? vs::VRING_PACKED_DESC_F_AVAIL : vs::VRING_PACKED_DESC_F_USED);
      vs::VringPackedDesc& dd = desc(q)[slot];
      dd.addr = chain[i].addr;
      dd.len = chain[i].len;
      dd.id = id;
      if (i == 0) head_flags = f;
      else __atomic_store_n(&dd.flags, f, __ATOMIC_RELEASE);
      if (++slot == num_) slot = 0, wrap = !wrap;
    }
    __atomic_store_n(&desc(q)[s.avail_idx].flags, head_flags, __ATOMIC_RELEASE);
    if (id < num_) s.ndesc[id] = static_cast<uint16_t>(chain.size());
    s.avail_idx = slot;
    s.avail_wrap = wrap;
  }

  // Sends a frame (Ethernet header onwards) behind hdr (null: a zero virtio-net header): in one descriptor, the
  // header and the frame in two, or (indirect) through an indirect table of two. False when no buffer id is free.
  enum Layout { kOne, kTwo, kIndirect };
  bool send(const std::vector<uint8_t>& f, Layout how = kOne, int q = 1, const vs::VirtioNetHdr* hdr = nullptr) {
    reclaim(q);
    Q& s = q_[q];
    if (s.free.empty()) return false;
    const uint16_t id = s.free.back();
    s.free.pop_back();
    const uint32_t h = d_.hdr_len();
    uint8_t* b = d_.buf(q, id);
    if (hdr) std::memcpy(b, hdr, h);
    else std::memset(b, 0, h);
    std::memcpy(b + h, f.data(), f.size());
    const uint64_t gpa = d_.buf_gpa(q, id);
    const uint32_t len = h + static_cast<uint32_t>(f.size());
    if (how == kOne) {
      put(q, id, {{gpa, len, 0}});
    } else if (how == kTwo) {
      put(q, id, {{gpa, h, vs::VRING_DESC_F_NEXT}, {gpa + h, len - h, 0}});
    } else {
      // The table at the end of the buffer (buffers are 2 KiB, frames here are short).
      auto* t = reinterpret_cast<vs::VringPackedDesc*>(b + 2048 - 32);
      t[0] = {gpa, h, 0, 0};
      t[1] = {gpa + h, len - h, 0, 0};
      put(q, id, {{gpa + 2048 - 32, 32, vs::VRING_DESC_F_INDIRECT}});
    }
    d_.kick(q);
    return true;
  }

  // Posts receive buffers (each `len` bytes of its buffer) until every free id is posted.
  void fill_rx(int q = 0, uint32_t len = 2048) {
    Q& s = q_[q];
    while (!s.free.empty()) {
      uint16_t id = s.free.back();
      s.free.pop_back();
      put(q, id, {{d_.buf_gpa(q, id), len, vs::VRING_DESC_F_WRITE}});
    }
  }

  struct Used {
    uint16_t id;
    uint32_t len;
    uint16_t flags;
  };
  // The next used descriptor, if the device wrote one: moves past the chain's slots.
  bool next_used(int q, Used* u) {
    Q& s = q_[q];
    const uint16_t f = __atomic_load_n(&desc(q)[s.used_idx].flags, __ATOMIC_ACQUIRE);
    const bool avail = f & vs::VRING_PACKED_DESC_F_AVAIL, used = f & vs::VRING_PACKED_DESC_F_USED;
    if (avail != s.used_wrap || used != s.used_wrap) return false;
    *u = {desc(q)[s.used_idx].id, desc(q)[s.used_idx].len, f};
    uint16_t n = u->id < num_ && s.ndesc[u->id] ? s.ndesc[u->id] : 1;
    uint32_t i = s.used_idx + n;
    if (i >= num_) i -= num_, s.used_wrap = !s.used_wrap;
    s.used_idx = static_cast<uint16_t>(i);
    return true;
  }
  uint32_t reclaim(int q = 1) {
    Used u;
    uint32_t n = 0;
    while (next_used(q, &u)) {
      if (u.id < num_) q_[q].free.push_back(u.id);
      n++;
    }
    return n;
  }

  // Receives what the device wrote, joining mergeable buffers; each frame without its virtio-net header.
  // The buffers are posted again (len bytes each).
  std::vector<std::vector<uint8_t>> recv(int q = 0, uint32_t len = 2048, std::vector<uint16_t>* num_buffers = nullptr) {
    std::vector<std::vector<uint8_t>> out;
    Used u;
    const uint32_t h = d_.hdr_len();
    while (next_used(q, &u)) {
      VT_CHECK(u.id < num_ && (u.flags & vs::VRING_DESC_F_WRITE));
      const uint8_t* b = d_.buf(q, u.id);
      vs::VirtioNetHdr hdr;
      std::memcpy(&hdr, b, sizeof hdr);
      std::vector<uint8_t> f(b + h, b + u.len);
      q_[q].free.push_back(u.id);
      for (uint16_t k = 1; k < hdr.num_buffers; k++) {
        VT_CHECK(next_used(q, &u));
        const uint8_t* m = d_.buf(q, u.id);
        f.insert(f.end(), m, m + u.len);
        q_[q].free.push_back(u.id);
      }
      if (num_buffers) num_buffers->push_back(hdr.num_buffers);
      out.push_back(std::move(f));
    }
    fill_rx(q, len);
    return out;
  }

 private:
  struct Q {
    uint16_t avail_idx = 0, used_idx = 0;
    bool avail_wrap = true, used_wrap = true;
    std::vector<uint16_t> free;   // buffer ids not made available
    std::vector<uint16_t> ndesc;  // per id: slots its chain took
  };
  vs::Driver& d_;
  uint16_t num_;
  std::vector<Q> q_;
};

// Whether an eventfd was written since the last look (and clears it).
inline bool signalled(int fd) {
  eventfd_t v;
  return eventfd_read(fd, &v) == 0 && v > 0;
}

}  // namespace vt
