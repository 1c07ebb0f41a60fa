// The driver's side of one packed virtqueue (virtio 1.1 2.7) in memory the Driver owns: making chains available
// against its wrap counter, and reading back the used descriptors the device wrote. No chains longer than one
// descriptor: what our generator and tests need.
#pragma once
#include <cstdint>
#include <vector>

#include "core/virtio.h"

namespace vs {

class PackedQueue {
 public:
  // ring: 16 * num bytes; driver and device: the event suppression structures (2.7.14).
  void init(VringPackedDesc* ring, VringPackedEvent* driver, VringPackedEvent* device, uint16_t num);
  // Makes buffer id available as one descriptor; false when the ring has no free slot.
  bool post(uint16_t id, uint64_t addr, uint32_t len, bool writable);
  // The next used descriptor, if the device wrote one: its buffer id and the bytes written.
  bool next_used(uint16_t* id, uint32_t* len);
  // Whether the device wants kicks (its event suppression structure), after a full fence.
  bool kick_wanted() const;
  uint16_t free_slots() const { return free_; }

 private:
  VringPackedDesc* ring_ = nullptr;
  VringPackedEvent* device_ = nullptr;
  uint16_t num_ = 0;
  uint16_t avail_idx_ = 0, used_idx_ = 0;
  bool avail_wrap_ = true, used_wrap_ = true;
  uint16_t free_ = 0;  // slots not made available, or used and read back
};

}  // namespace vs
