// The driver (guest) side of virtio-net split rings, or packed ones (packed_queue.h), in shared memory we create
// (memfd): what our packet generator and tests use to be a vhost-user frontend. One region, guest physical
// address = offset in it. A packed ring sits where a split one keeps its descriptor table, its driver and device
// event suppression structures where the split one keeps avail and used. Hostile tests also use it to write raw
// descriptors and indices (split rings).
//
// What it trusts: the memory is ours (mapped here, never truncated by us), so every ring part and buffer lies at an
// offset the constructor laid out inside it. What the device writes back is not trusted to index anything: a used
// id is checked against the queue size before it names a buffer, a used length is clamped to the buffer size.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/virtio.h"
#include "driver/packed_queue.h"

namespace vs {

struct DriverOptions {
  uint32_t queue_size = 256;
  uint32_t queue_pairs = 1;
  uint32_t buf_size = 2048;  // one buffer per descriptor, header included
  uint64_t features = 0;     // negotiated features (decides the header length)
  bool packed = false;       // packed virtqueues (VIRTIO_F_RING_PACKED) instead of split ones
};

class Driver {
 public:
  // On failure, ok() is false and error() says why.
  explicit Driver(const DriverOptions& o);
  ~Driver();
  Driver(const Driver&) = delete;
  Driver& operator=(const Driver&) = delete;
  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }

  // What SET_MEM_TABLE and SET_VRING_* need: one region, the ring addresses as our own virtual addresses.
  int mem_fd() const { return memfd_; }
  uint64_t mem_size() const { return size_; }
  uint64_t mem_uva() const { return reinterpret_cast<uint64_t>(base_); }
  uint64_t desc_uva(int q) const { return mem_uva() + vq_[q].desc_off; }
  uint64_t avail_uva(int q) const { return mem_uva() + vq_[q].avail_off; }
  uint64_t used_uva(int q) const { return mem_uva() + vq_[q].used_off; }
  int kick_fd(int q) const { return vq_[q].kick_fd; }
  int call_fd(int q) const { return vq_[q].call_fd; }
  uint32_t queue_size() const { return o_.queue_size; }
  bool packed() const { return o_.packed; }
  int vring_count() const { return static_cast<int>(vq_.size()); }
  uint32_t hdr_len() const { return hdr_len_; }
  void set_features(uint64_t f);

  // Posts every receive buffer of receive queue q (call once the ring is started).
  void fill_rx(int q);
  // Sends frames (Ethernet header onwards) on transmit queue q, each behind hdr (null: a zero header, no
  // offloads). Returns how many fit in the ring.
  uint32_t tx_burst(int q, const uint8_t* const* frames, const uint32_t* lens, uint32_t n,
                    const VirtioNetHdr* hdr = nullptr);
  // Receives up to max frames from receive queue q: data points into our buffer (valid until the next
  // rx_burst on q), len excludes the virtio-net header. Buffers are re-posted at the next call.
  uint32_t rx_burst(int q, const uint8_t** data, uint32_t* lens, uint32_t max);
  // Frees transmit descriptors the device has used; returns how many.
  uint32_t reclaim_tx(int q);
  uint32_t tx_free(int q) const { return static_cast<uint32_t>(vq_[q].free.size()); }

  // --- raw access for hostile tests ---
  VringDesc* desc(int q) { return reinterpret_cast<VringDesc*>(base_ + vq_[q].desc_off); }
  VringAvail* avail(int q) { return reinterpret_cast<VringAvail*>(base_ + vq_[q].avail_off); }
  VringUsed* used(int q) { return reinterpret_cast<VringUsed*>(base_ + vq_[q].used_off); }
  uint64_t buf_gpa(int q, uint32_t i) const { return vq_[q].buf_off + uint64_t(i) * o_.buf_size; }
  uint8_t* buf(int q, uint32_t i) { return base_ + buf_gpa(q, i); }
  void kick(int q);
  // Makes head available without touching the descriptor table (for hand-built chains).
  void push_avail(int q, uint16_t head);
  void set_avail_idx(int q, uint16_t idx);

 private:
  struct Vq {
    uint64_t desc_off, avail_off, used_off, buf_off;
    uint16_t avail_idx = 0;  // shadow of avail->idx
    uint16_t last_used = 0;
    std::vector<uint16_t> free;     // transmit: free descriptors
    std::vector<uint16_t> pending;  // receive: buffers handed to the caller, re-posted next time
    int kick_fd = -1, call_fd = -1;
    PackedQueue pq;  // packed rings: the ring's state (the fields above that are split-only stay unused)
  };
  // The receive and transmit paths with packed rings (same contracts as the public ones).
  void fill_rx_packed(int q);
  uint32_t reclaim_packed(int q);
  uint32_t rx_packed(int q, const uint8_t** data, uint32_t* lens, uint32_t max);
  void publish_avail(int q);
  DriverOptions o_;
  std::string error_;
  int memfd_ = -1;
  uint8_t* base_ = nullptr;
  uint64_t size_ = 0;
  uint32_t hdr_len_ = 12;
  std::vector<Vq> vq_;
};

}  // namespace vs
