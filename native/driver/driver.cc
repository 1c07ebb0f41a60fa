#include "driver/driver.h"

#include <cerrno>
#include <cstring>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>

namespace vs {

static uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) & ~(a - 1); }

Driver::Driver(const DriverOptions& o) : o_(o) {
  uint32_t n = o_.queue_size;
  if (n == 0 || n > kMaxQueueSize || (!o_.packed && (n & (n - 1)))) {
    error_ = "queue size must be a power of 2 up to 32768 (packed rings: any size)";
    return;
  }
  if (o_.buf_size < 64 || o_.queue_pairs == 0 || o_.queue_pairs > 64) {
    error_ = "bad buffer size or queue pair count";
    return;
  }
  uint64_t off = 4096;  // leave page 0 unused so that a zero address is never a valid buffer
  vq_.resize(2 * o_.queue_pairs);
  for (Vq& v : vq_) {
    v.desc_off = align_up(off, 4096);
    v.avail_off = v.desc_off + 16ull * n;
    v.used_off = align_up(v.avail_off + 6 + 2ull * n, 4096);
    v.buf_off = align_up(v.used_off + 6 + 8ull * n, 4096);
    off = v.buf_off + uint64_t(n) * o_.buf_size;
  }
  size_ = align_up(off, 2 << 20);
  memfd_ = memfd_create("vhost-switch-driver", MFD_CLOEXEC);
  if (memfd_ < 0 || ftruncate(memfd_, static_cast<off_t>(size_)) < 0) {
    error_ = std::string("memfd: ") + std::strerror(errno);
    return;
  }
  void* p = mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_SHARED, memfd_, 0);
  if (p == MAP_FAILED) {
    error_ = std::string("mmap: ") + std::strerror(errno);
    return;
  }
  base_ = static_cast<uint8_t*>(p);
  for (size_t q = 0; q < vq_.size(); q++) {
    Vq& v = vq_[q];
    v.kick_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    v.call_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (o_.packed)
      v.pq.init(reinterpret_cast<VringPackedDesc*>(desc(static_cast<int>(q))),
                reinterpret_cast<VringPackedEvent*>(avail(static_cast<int>(q))),
                reinterpret_cast<VringPackedEvent*>(used(static_cast<int>(q))), static_cast<uint16_t>(n));
    else
      avail(static_cast<int>(q))->flags = VRING_AVAIL_F_NO_INTERRUPT;  // we poll: no interrupts wanted
    if (q % 2 == 1)
      for (uint32_t i = 0; i < n; i++) v.free.push_back(static_cast<uint16_t>(n - 1 - i));
  }
  set_features(o_.features);
}

Driver::~Driver() {
  for (Vq& v : vq_) {
    if (v.kick_fd >= 0) close(v.kick_fd);
    if (v.call_fd >= 0) close(v.call_fd);
  }
  if (base_) munmap(base_, size_);
  if (memfd_ >= 0) close(memfd_);
}

void Driver::set_features(uint64_t f) {
  o_.features = f;
  hdr_len_ = (has_feature(f, VIRTIO_F_VERSION_1) || has_feature(f, VIRTIO_NET_F_MRG_RXBUF)) ? 12 : 10;
}

void Driver::publish_avail(int q) {
  // SAFETY: avail(q) lies in our mapping, where the constructor laid out 6 + 2 * queue_size bytes for it.
  __atomic_store_n(&avail(q)->idx, vq_[q].avail_idx, __ATOMIC_RELEASE);
}

void Driver::kick(int q) {
  if (o_.packed) {
    if (vq_[q].pq.kick_wanted()) eventfd_write(vq_[q].kick_fd, 1);
    return;
  }
  std::atomic_thread_fence(std::memory_order_seq_cst);
  // SAFETY: used(q) lies in our mapping (6 + 8 * queue_size bytes laid out for it).
  if (__atomic_load_n(&used(q)->flags, __ATOMIC_RELAXED) & VRING_USED_F_NO_NOTIFY) return;
  eventfd_write(vq_[q].kick_fd, 1);
}

void Driver::push_avail(int q, uint16_t head) {
  Vq& v = vq_[q];
  // SAFETY: the slot is masked into our avail ring; head is the test's, not an index of ours.
  avail(q)->ring[v.avail_idx & (o_.queue_size - 1)] = head;
  v.avail_idx++;
  publish_avail(q);
}

void Driver::set_avail_idx(int q, uint16_t idx) {
  vq_[q].avail_idx = idx;
  publish_avail(q);
}

void Driver::fill_rx(int q) {
  if (o_.packed) return fill_rx_packed(q);
  Vq& v = vq_[q];
  VringDesc* d = desc(q);
  for (uint32_t i = 0; i < o_.queue_size; i++) {
    // SAFETY: i < queue_size: a descriptor, an avail slot (masked) and a buffer the constructor laid out.
    d[i] = {buf_gpa(q, i), o_.buf_size, VRING_DESC_F_WRITE, 0};
    avail(q)->ring[v.avail_idx & (o_.queue_size - 1)] = static_cast<uint16_t>(i);
    v.avail_idx++;
  }
  publish_avail(q);
}

uint32_t Driver::reclaim_tx(int q) {
  if (o_.packed) return reclaim_packed(q);
  Vq& v = vq_[q];
  uint16_t used_idx = __atomic_load_n(&used(q)->idx, __ATOMIC_ACQUIRE);
  uint32_t n = 0;
  while (v.last_used != used_idx) {
    // SAFETY: the slot is masked into our used ring; the id the device wrote is checked before it is kept.
    uint32_t id = used(q)->ring[v.last_used & (o_.queue_size - 1)].id;
    if (id < o_.queue_size) v.free.push_back(static_cast<uint16_t>(id));
    v.last_used++;
    n++;
  }
  return n;
}

uint32_t Driver::tx_burst(int q, const uint8_t* const* frames, const uint32_t* lens, uint32_t n,
                          const VirtioNetHdr* hdr) {
  Vq& v = vq_[q];
  if (v.free.size() < n) reclaim_tx(q);
  uint32_t sent = 0;
  VringDesc* d = desc(q);
  for (; sent < n && !v.free.empty(); sent++) {
    uint32_t len = lens[sent];
    if (len + hdr_len_ > o_.buf_size) len = o_.buf_size - hdr_len_;
    uint16_t id = v.free.back();
    v.free.pop_back();
    // SAFETY: id came from the free list (ids < queue_size), and hdr_len_ + len <= buf_size: inside buffer id.
    uint8_t* b = buf(q, id);
    if (hdr)
      std::memcpy(b, hdr, hdr_len_);
    else
      std::memset(b, 0, hdr_len_);
    std::memcpy(b + hdr_len_, frames[sent], len);
    if (o_.packed) {
      v.pq.post(id, buf_gpa(q, id), hdr_len_ + len, false);  // a free id has a free slot: one slot per id
      continue;
    }
    d[id] = {buf_gpa(q, id), hdr_len_ + len, 0, 0};
    avail(q)->ring[v.avail_idx & (o_.queue_size - 1)] = id;
    v.avail_idx++;
  }
  if (sent) {
    if (!o_.packed) publish_avail(q);
    kick(q);
  }
  return sent;
}

uint32_t Driver::rx_burst(int q, const uint8_t** data, uint32_t* lens, uint32_t max) {
  if (o_.packed) return rx_packed(q, data, lens, max);
  Vq& v = vq_[q];
  // Re-post the buffers the caller is done with.
  if (!v.pending.empty()) {
    for (uint16_t id : v.pending) {
      // SAFETY: the slot is masked into our avail ring.
      avail(q)->ring[v.avail_idx & (o_.queue_size - 1)] = id;
      v.avail_idx++;
    }
    v.pending.clear();
    publish_avail(q);
  }
  uint16_t used_idx = __atomic_load_n(&used(q)->idx, __ATOMIC_ACQUIRE);
  uint32_t n = 0;
  while (n < max && v.last_used != used_idx) {
    // SAFETY: the slot is masked into our used ring; the id and length the device wrote are checked below before
    // they point into buffer id.
    VringUsedElem e = used(q)->ring[v.last_used & (o_.queue_size - 1)];
    v.last_used++;
    if (e.id >= o_.queue_size) continue;  // a device bug; nothing to re-post
    uint32_t len = e.len > o_.buf_size ? o_.buf_size : e.len;
    v.pending.push_back(static_cast<uint16_t>(e.id));
    if (len < hdr_len_) continue;
    // SAFETY: e.id < queue_size and hdr_len_ <= len <= buf_size: the caller reads inside buffer e.id.
    data[n] = buf(q, e.id) + hdr_len_;
    lens[n] = len - hdr_len_;
    n++;
  }
  return n;
}

// --- packed rings: every buffer id is one descriptor, so ids and slots never run out apart ---

void Driver::fill_rx_packed(int q) {
  Vq& v = vq_[q];
  for (uint32_t i = 0; i < o_.queue_size; i++) v.pq.post(static_cast<uint16_t>(i), buf_gpa(q, i), o_.buf_size, true);
}

uint32_t Driver::reclaim_packed(int q) {
  Vq& v = vq_[q];
  uint32_t n = 0;
  uint16_t id;
  uint32_t len;
  while (v.pq.next_used(&id, &len)) {
    if (id < o_.queue_size) v.free.push_back(id);
    n++;
  }
  return n;
}

uint32_t Driver::rx_packed(int q, const uint8_t** data, uint32_t* lens, uint32_t max) {
  Vq& v = vq_[q];
  for (uint16_t id : v.pending) v.pq.post(id, buf_gpa(q, id), o_.buf_size, true);
  v.pending.clear();
  uint32_t n = 0;
  uint16_t id;
  uint32_t len;
  while (n < max && v.pq.next_used(&id, &len)) {
    if (id >= o_.queue_size) continue;  // a device bug; nothing to re-post
    v.pending.push_back(id);
    if (len > o_.buf_size) len = o_.buf_size;
    if (len < hdr_len_) continue;
    // SAFETY: id < queue_size and hdr_len_ <= len <= buf_size: the caller reads inside buffer id.
    data[n] = buf(q, id) + hdr_len_;
    lens[n] = len - hdr_len_;
    n++;
  }
  return n;
}

}  // namespace vs
