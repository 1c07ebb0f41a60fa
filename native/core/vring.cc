#include "core/vring.h"

#include <cstddef>
#include <cstring>
#include <sys/eventfd.h>
#include <unistd.h>

namespace vs {

const char* chain_status_name(ChainStatus s) {
  switch (s) {
    case ChainStatus::kOk: return "ok";
    case ChainStatus::kLoop: return "loop or chain longer than the table";
    case ChainStatus::kOutOfBounds: return "address outside guest memory";
    case ChainStatus::kNestedIndirect: return "nested indirect table";
    case ChainStatus::kBadIndirect: return "bad indirect table";
    case ChainStatus::kWrongDirection: return "descriptor direction";
    case ChainStatus::kTooManyBufs: return "too many pieces";
    case ChainStatus::kNotAvailable: return "chain runs into a descriptor not available";
    case ChainStatus::kBadId: return "buffer id out of range or in flight";
  }
  return "?";
}

bool Vring::translate(const GuestMemory* mem) {
  forget_translation();
  if (!mem || !addr_set || num == 0) return false;
  // Sizes from virtio 1.1 2.6: with EVENT_IDX both rings carry one extra u16 at the end; we always
  // require room for it so that toggling the feature never moves a bound. A packed ring (2.7) is its descriptor
  // ring, and in place of avail and used the driver's and the device's event suppression structures.
  uint64_t desc_len = 16ull * num, avail_len = 6ull + 2ull * num, used_len = 6ull + 8ull * num;
  if (packed) avail_len = used_len = sizeof(VringPackedEvent);
  uint8_t* d = mem->uva_to_host(desc_uva, desc_len);
  uint8_t* a = mem->uva_to_host(avail_uva, avail_len);
  uint8_t* u = mem->uva_to_host(used_uva, used_len);
  // Alignment per 2.6 (16, 2, 4) and 2.7.10.1 (16, 4, 4): misaligned rings are refused rather than accessed
  // unaligned.
  const uintptr_t avail_align = packed ? 3 : 1;
  if (!d || !a || !u || (reinterpret_cast<uintptr_t>(d) & 15) || (reinterpret_cast<uintptr_t>(a) & avail_align) ||
      (reinterpret_cast<uintptr_t>(u) & 3))
    return false;
  desc = reinterpret_cast<VringDesc*>(d);
  avail = reinterpret_cast<VringAvail*>(a);
  used = reinterpret_cast<VringUsed*>(u);
  return true;
}

ChainStatus Vring::walk_slow(const GuestMemory& mem, uint16_t head, bool want_write, Buf* bufs, int* nbufs,
                             uint64_t* total, int max_bufs) const {
  const VringDesc* table = desc;
  uint32_t table_size = num;
  uint32_t idx = head;
  uint32_t visited = 0;
  bool in_indirect = false;
  int n = 0;
  uint64_t sum = 0;
  if (idx >= table_size) return ChainStatus::kOutOfBounds;
  for (;;) {
    // 2.7.5.2 (split rings): no chain longer than the queue size, counting every descriptor visited, in the
    // ring and in an indirect table, zero-length ones too. More means a loop, or a chain built to cost us time.
    if (++visited > num) return ChainStatus::kLoop;
    VringDesc d;
    // SAFETY: idx < table_size, the ring's num or an indirect table's length as gpa_to_host accepted it; one
    // snapshot, as the guest may rewrite the descriptor concurrently.
    std::memcpy(&d, &table[idx], sizeof d);
    if (d.flags & VRING_DESC_F_INDIRECT) {
      // 2.6.5.3.1: no nested indirect tables, and INDIRECT together with NEXT is not allowed.
      if (in_indirect) return ChainStatus::kNestedIndirect;
      if ((d.flags & VRING_DESC_F_NEXT) || d.len == 0 || d.len % sizeof(VringDesc) ||
          d.len / sizeof(VringDesc) > num)
        return ChainStatus::kBadIndirect;
      // SAFETY: gpa_to_host checked that the whole table [addr, addr+len) lies inside one mapped region.
      const uint8_t* t = mem.gpa_to_host(d.addr, d.len);
      if (!t) return ChainStatus::kOutOfBounds;
      table = reinterpret_cast<const VringDesc*>(t);  // read with memcpy above, so alignment does not matter
      table_size = d.len / sizeof(VringDesc);
      idx = 0;
      in_indirect = true;
      continue;
    }
    if (d.len) {
      if (static_cast<bool>(d.flags & VRING_DESC_F_WRITE) != want_write) return ChainStatus::kWrongDirection;
      // SAFETY: the piece [addr, addr+len) is inside one mapped region or we refuse the chain.
      uint8_t* p = mem.gpa_to_host(d.addr, d.len);
      if (!p) return ChainStatus::kOutOfBounds;
      if (n == max_bufs) return ChainStatus::kTooManyBufs;
      bufs[n++] = {p, d.len};
      sum += d.len;
    }
    if (!(d.flags & VRING_DESC_F_NEXT)) break;
    idx = d.next;
    if (idx >= table_size) return ChainStatus::kOutOfBounds;
  }
  *nbufs = n;
  *total = sum;
  return ChainStatus::kOk;
}

// Logging or not is decided once, on entry: the path without a log is the one it always was.
void Vring::publish() {
  if (__builtin_expect(log.log != nullptr, 0)) publish_logged();
  else publish_impl<false>();
}

void Vring::publish_logged() { publish_impl<true>(); }

template <bool kLog>
inline void Vring::publish_impl() {
  dirty = false;
  if (used_idx == published_used) return;
  uint16_t old = published_used;
  // Before the index store: once the driver sees the entries it may post other buffers in the same descriptors,
  // and the walk would mark their pages instead of the ones written.
  if (kLog) log_published(old);
  // SAFETY: used and avail were translated with their event fields (translate), and publish runs only on
  // rings that are ready() with the poll thread's fault guard armed.
  __atomic_store_n(&used->idx, used_idx, __ATOMIC_RELEASE);
  if (kLog) log_used_bytes(offsetof(VringUsed, idx), sizeof(uint16_t));
  published_used = used_idx;
  // 2.6.7.2: the used index store must be visible before we read the driver's suppression fields.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  bool notify;
  if (event_idx) {
    uint16_t used_event = __atomic_load_n(&avail->ring[num], __ATOMIC_RELAXED);
    notify = vring_need_event(used_event, used_idx, old);
  } else {
    notify = !(__atomic_load_n(&avail->flags, __ATOMIC_RELAXED) & VRING_AVAIL_F_NO_INTERRUPT);
  }
  if (!notify) return;
  int fd = __atomic_load_n(&call_fd, __ATOMIC_ACQUIRE);
  if (fd >= 0) eventfd_write(fd, 1);
}

// The entries [from, used_idx) are about to be published: every byte they wrote is marked, the used elements and,
// with LOG_ALL, the first len bytes of each entry's chain (for a receive queue the virtio-net header and the frame;
// a mergeable frame has one entry per chain). The chain is walked again as it stood when we filled it: the driver
// must not touch it before it sees the entry, and if it does it only spoils its own migration.
void Vring::log_published(uint16_t from) const {
  const DirtyLog& l = *log.log;
  uint16_t count = static_cast<uint16_t>(used_idx - from);
  if (count > num) count = num;
  for (uint16_t i = 0; i < count; i++) {
    const uint16_t slot = static_cast<uint16_t>(from + i) & (num - 1);
    log_used_bytes(offsetof(VringUsed, ring) + sizeof(VringUsedElem) * slot, sizeof(VringUsedElem));
    if (!log.bufs) continue;
    VringUsedElem e;
    // SAFETY: slot is masked to num - 1; the element is copied once and its id checked against num below.
    std::memcpy(&e, &used->ring[slot], sizeof e);
    if (e.len == 0 || e.id >= num) continue;
    Buf bufs[kMaxChainBufs];
    int n;
    uint64_t total;
    if (walk(*log.mem, static_cast<uint16_t>(e.id), true, bufs, &n, &total, kMaxChainBufs) != ChainStatus::kOk) continue;
    uint64_t left = e.len;
    for (int k = 0; k < n && left; k++) {
      uint64_t w = bufs[k].len < left ? bufs[k].len : left;
      uint64_t gpa;
      if (log.mem->host_to_gpa(bufs[k].addr, &gpa)) l.mark(gpa, w);
      left -= w;
    }
  }
}

void Vring::enable_kicks() {
  if (broken) return;  // a broken ring's memory may be gone: leave it alone
  if (event_idx) {
    // avail_event lives after the used ring; the driver kicks when its avail idx passes it.
    // SAFETY: translate sized the used ring with this trailing u16 whether EVENT_IDX is on or not.
    uint16_t* avail_event = reinterpret_cast<uint16_t*>(&used->ring[num]);
    __atomic_store_n(avail_event, last_avail_idx, __ATOMIC_RELAXED);
    log_used_bytes(offsetof(VringUsed, ring) + sizeof(VringUsedElem) * num, sizeof(uint16_t));
  } else {
    __atomic_store_n(&used->flags, static_cast<uint16_t>(0), __ATOMIC_RELAXED);
    log_used_bytes(offsetof(VringUsed, flags), sizeof(uint16_t));
  }
  // The caller re-reads avail->idx after this fence, closing the race with a driver that just added buffers.
  std::atomic_thread_fence(std::memory_order_seq_cst);
}

void Vring::disable_kicks() {
  if (broken) return;
  // With EVENT_IDX a stale avail_event already suppresses kicks until the index wraps around to it.
  if (!event_idx) {
    __atomic_store_n(&used->flags, VRING_USED_F_NO_NOTIFY, __ATOMIC_RELAXED);
    log_used_bytes(offsetof(VringUsed, flags), sizeof(uint16_t));
  }
}

void Vring::mark_broken() {
  if (broken) return;
  broken = true;
  counters.drops[kDropRingBroken].inc();
  // vhost-user: the backend reports a ring error by writing to the SET_VRING_ERR eventfd.
  int fd = __atomic_load_n(&err_fd, __ATOMIC_ACQUIRE);
  if (fd >= 0) eventfd_write(fd, 1);
}

void Vring::stop_and_reset_state() {
  started = false;
  broken = false;
  dirty = false;
  work_debt = 0;
  fault_skip = false;
}

void Vring::close_fds() {
  for (int* fd : {&kick_fd, &call_fd, &err_fd}) {
    if (*fd >= 0) close(*fd);
    *fd = -1;
  }
}

}  // namespace vs
