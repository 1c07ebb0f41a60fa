#include "core/packed_vring.h"

#include <sys/eventfd.h>

namespace vs {

namespace {

// One piece of a chain: checked for direction and bounds, stored unless it has no bytes.
ChainStatus add_piece(const GuestMemory& mem, uint64_t addr, uint32_t len, bool writable, bool want_write,
                      Buf* bufs, int* n, uint64_t* sum, int max_bufs) {
  if (!len) return ChainStatus::kOk;
  if (writable != want_write) return ChainStatus::kWrongDirection;
  // SAFETY: gpa_to_host checked that the whole piece [addr, addr+len) lies inside one mapped region.
  uint8_t* p = mem.gpa_to_host(addr, len);
  if (!p) return ChainStatus::kOutOfBounds;
  if (*n == max_bufs) return ChainStatus::kTooManyBufs;
  bufs[(*n)++] = {p, len};
  *sum += len;
  return ChainStatus::kOk;
}

}  // namespace

ChainStatus PackedVring::walk_slow(const GuestMemory& mem, uint16_t idx, bool wrap, bool want_write, Buf* bufs,
                                   int* nbufs, uint64_t* total, int max_bufs, PackedChain* chain) const {
  ChainStatus err = ChainStatus::kOk;  // the first fault of a chain whose end is still being looked for
  int n = 0;
  uint64_t sum = 0;
  uint32_t count = 0;
  if (idx >= num) return ChainStatus::kOutOfBounds;
  for (;;) {
    // A chain is at most the queue size descriptors (each takes a slot of the ring, and a longer one would come
    // round to its own head): NEXT on every slot is a chain that never ends.
    if (count == num) return ChainStatus::kLoop;
    const uint16_t flags = load_flags(idx);
    // The driver makes a chain's head available last, so every other descriptor of it is available too:
    // one that is not says the wrap counters lie.
    if (!is_avail(flags, wrap)) return ChainStatus::kNotAvailable;
    VringPackedDesc d;
    // SAFETY: idx < num, inside the translated ring; one snapshot, the guest may rewrite it concurrently.
    std::memcpy(&d, &ring()[idx], sizeof d);
    count++;
    advance(&idx, &wrap, 1);
    const bool last = !(flags & VRING_DESC_F_NEXT);
    if (err == ChainStatus::kOk) {
      if (flags & VRING_DESC_F_INDIRECT) {
        // 2.7.7: an indirect table is a chain's only descriptor (not INDIRECT with NEXT, not inside a chain),
        // a whole number of descriptors, no more than the queue size, and holds no indirect table itself.
        if (count != 1 || !last || d.len == 0 || d.len % sizeof(VringPackedDesc) ||
            d.len / sizeof(VringPackedDesc) > num) {
          err = ChainStatus::kBadIndirect;
        } else {
          // SAFETY: gpa_to_host checked that the whole table [addr, addr+len) lies inside one mapped region.
          const uint8_t* t = mem.gpa_to_host(d.addr, d.len);
          if (!t) err = ChainStatus::kOutOfBounds;
          for (uint32_t i = 0; t && err == ChainStatus::kOk && i < d.len / sizeof(VringPackedDesc); i++) {
            VringPackedDesc e;
            // SAFETY: i < len / 16, inside the table checked above; read with memcpy, so alignment does not matter.
            std::memcpy(&e, t + i * sizeof e, sizeof e);
            if (e.flags & VRING_DESC_F_INDIRECT) {
              err = ChainStatus::kNestedIndirect;
              break;
            }
            // In a table the descriptors follow each other: NEXT is not looked at (2.7.7).
            err = add_piece(mem, e.addr, e.len, e.flags & VRING_DESC_F_WRITE, want_write, bufs, &n, &sum, max_bufs);
          }
        }
      } else {
        err = add_piece(mem, d.addr, d.len, flags & VRING_DESC_F_WRITE, want_write, bufs, &n, &sum, max_bufs);
      }
    }
    if (last) {
      // 2.7.6: the buffer id is in the chain's last descriptor.
      *chain = {d.id, static_cast<uint16_t>(count)};
      break;
    }
  }
  if (err == ChainStatus::kOk && chain->id >= num) err = ChainStatus::kBadId;
  if (err != ChainStatus::kOk) return err;
  *nbufs = n;
  *total = sum;
  return ChainStatus::kOk;
}

// Whether the used descriptors written since the last decision, the slots from published_used on, include the
// one the driver asked to hear about (RING_EVENT_FLAGS_DESC, 2.7.10). Positions are counted over two laps of
// the ring, the wrap counter telling which.
bool PackedVring::event_passed() const {
  if (unsignalled >= num) return true;  // a whole lap since: whatever it asked for was passed
  // SAFETY: the driver event structure is 4 bytes translate() checked.
  const uint16_t off_wrap = __atomic_load_n(&driver_event()->off_wrap, __ATOMIC_RELAXED);
  const uint32_t lap = 2u * num;
  auto pos = [this](uint32_t slot, bool wrap) { return wrap ? slot : slot + num; };
  const uint32_t event = pos(off_wrap & ~kPackedWrapBit, off_wrap & kPackedWrapBit) % lap;
  const uint32_t from = pos(published_used, published_wrap);
  return (event + lap - from) % lap < unsignalled;
}

// The slots of the used descriptors written since the last publish: from published_used on, unsignalled of them
// (some skipped, the other slots of chains: marked too, a page is the unit anyway).
void PackedVring::log_used() const {
  const uint32_t n = unsignalled < num ? unsignalled : num;
  const uint32_t first = published_used < num ? published_used : 0;
  const uint32_t head = n < num - first ? n : num - first;
  log_host(&ring()[first], head * sizeof(VringPackedDesc));
  if (n > head) log_host(&ring()[0], (n - head) * sizeof(VringPackedDesc));
}

void PackedVring::write_used() {
  const uint32_t n = shadow_n;
  shadow_n = 0;
  shadow_batch = false;
  if (!n) return;
  using Word = uint64_t __attribute__((may_alias));
  VringPackedDesc* r = ring();
  // SAFETY: each slot was used_idx when put, below num (advance keeps it so): bytes 8-15 of a descriptor of the
  // translated ring. Release: the first descriptor, stored last, is seen after every other of the burst.
  for (uint32_t i = n - 1; i > 0; i--)
    __atomic_store_n(reinterpret_cast<Word*>(&r[shadow_used[i].slot].len), shadow_used[i].word, __ATOMIC_RELEASE);
  __atomic_store_n(reinterpret_cast<Word*>(&r[shadow_used[0].slot].len), shadow_used[0].word, __ATOMIC_RELEASE);
}

void PackedVring::publish() {
  dirty = false;
  write_used();
  if (!unsignalled) return;
  if (__builtin_expect(log.log != nullptr, 0)) log_used();
  // The used descriptors' flags must be visible before we read the driver's event suppression structure
  // (the driver re-checks for used descriptors after writing it).
  std::atomic_thread_fence(std::memory_order_seq_cst);
  // SAFETY: the driver event structure is 4 bytes translate() checked.
  const uint16_t flags = __atomic_load_n(&driver_event()->flags, __ATOMIC_RELAXED);
  bool notify;
  if (flags == RING_EVENT_FLAGS_DESC && event_idx) notify = event_passed();
  else notify = flags != RING_EVENT_FLAGS_DISABLE;  // DESC without EVENT_IDX, or a reserved value: notify
  published_used = used_idx;
  published_wrap = used_wrap;
  unsignalled = 0;
  if (!notify) return;
  int fd = __atomic_load_n(&call_fd, __ATOMIC_ACQUIRE);
  if (fd >= 0) eventfd_write(fd, 1);
}

void PackedVring::enable_kicks() {
  if (broken) return;  // a broken ring's memory may be gone: leave it alone
  // SAFETY: the device event structure is 4 bytes translate() checked.
  __atomic_store_n(&device_event()->flags, RING_EVENT_FLAGS_ENABLE, __ATOMIC_RELAXED);
  log_host(device_event(), sizeof(VringPackedEvent));
  // The caller looks at the next descriptor after this fence, closing the race with a driver that just added one.
  std::atomic_thread_fence(std::memory_order_seq_cst);
}

void PackedVring::disable_kicks() {
  if (broken) return;
  // SAFETY: the device event structure is 4 bytes translate() checked.
  __atomic_store_n(&device_event()->flags, RING_EVENT_FLAGS_DISABLE, __ATOMIC_RELAXED);
  log_host(device_event(), sizeof(VringPackedEvent));
}

void PackedVring::start() {
  used_idx = published_used = last_avail_idx;
  used_wrap = published_wrap = avail_wrap;
  unsignalled = 0;
  shadow_n = 0;
  shadow_batch = false;
}

bool PackedVring::set_base(uint32_t base) {
  const uint16_t slot = base & ~kPackedWrapBit & 0xffff;
  if (slot >= num) return false;
  last_avail_idx = cached_avail = slot;
  avail_wrap = base & kPackedWrapBit;
  // The used position (bits 16-31, when the frontend sends it) is where the avail one is: this device completes
  // every chain it takes before it stops, so the two can only differ for a frontend that lies.
  start();
  return true;
}

uint32_t PackedVring::get_base() const {
  const uint32_t avail_state = last_avail_idx | (avail_wrap ? kPackedWrapBit : 0);
  const uint32_t used_state = used_idx | (used_wrap ? kPackedWrapBit : 0);
  return avail_state | used_state << 16;
}

}  // namespace vs
