#include "driver/packed_queue.h"

#include <atomic>

namespace vs {

void PackedQueue::init(VringPackedDesc* ring, VringPackedEvent* driver, VringPackedEvent* device, uint16_t num) {
  ring_ = ring;
  device_ = device;
  num_ = num;
  avail_idx_ = used_idx_ = 0;
  avail_wrap_ = used_wrap_ = true;
  free_ = num;
  // SAFETY: ring, driver and device lie in the Driver's own mapping, laid out for num descriptors (driver.cc).
  for (uint16_t i = 0; i < num; i++) ring_[i] = {};  // flags 0: nothing available for wrap counter 1
  // We poll our rings, so we never want used buffer notifications.
  driver->off_wrap = 0;
  driver->flags = RING_EVENT_FLAGS_DISABLE;
}

bool PackedQueue::post(uint16_t id, uint64_t addr, uint32_t len, bool writable) {
  if (free_ == 0) return false;
  // SAFETY: avail_idx_ < num_: it wraps to 0 when it reaches num_.
  VringPackedDesc& d = ring_[avail_idx_];
  d.addr = addr;
  d.len = len;
  d.id = id;
  uint16_t f = avail_wrap_ ? VRING_PACKED_DESC_F_AVAIL : VRING_PACKED_DESC_F_USED;
  if (writable) f |= VRING_DESC_F_WRITE;
  __atomic_store_n(&d.flags, f, __ATOMIC_RELEASE);  // the flags last: the device reads them first
  if (++avail_idx_ == num_) avail_idx_ = 0, avail_wrap_ = !avail_wrap_;
  free_--;
  return true;
}

bool PackedQueue::next_used(uint16_t* id, uint32_t* len) {
  if (free_ == num_) return false;  // nothing outstanding: the slot holds what we made available long ago
  // SAFETY: used_idx_ < num_, as avail_idx_. The id and length the device wrote are the caller's to check.
  const VringPackedDesc& d = ring_[used_idx_];
  const uint16_t f = __atomic_load_n(&d.flags, __ATOMIC_ACQUIRE);
  if (static_cast<bool>(f & VRING_PACKED_DESC_F_AVAIL) != used_wrap_ ||
      static_cast<bool>(f & VRING_PACKED_DESC_F_USED) != used_wrap_)
    return false;
  *id = d.id;
  *len = d.len;
  // Every chain we post is one descriptor, so the next used one is in the next slot.
  if (++used_idx_ == num_) used_idx_ = 0, used_wrap_ = !used_wrap_;
  free_++;
  return true;
}

bool PackedQueue::kick_wanted() const {
  std::atomic_thread_fence(std::memory_order_seq_cst);
  // SAFETY: the device event structure init() was given, in the Driver's own mapping.
  return __atomic_load_n(&device_->flags, __ATOMIC_RELAXED) != RING_EVENT_FLAGS_DISABLE;
}

}  // namespace vs
