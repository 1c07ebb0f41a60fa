// One split virtqueue as the device (the switch) sees it: configuration from SET_VRING_*, the ring parts
// translated into host pointers, the device's own indices, and the notification logic of virtio 1.1 2.6.7.
#pragma once
#include <atomic>
#include <cstdint>
#include <cstring>

#include "core/counters.h"
#include "core/dirty_log.h"
#include "core/guest_memory.h"
#include "core/virtio.h"

namespace vs {

// Readable/writable pieces of one descriptor chain, already bounds-checked against guest memory.
struct Buf {
  uint8_t* addr;
  uint32_t len;
};
constexpr int kMaxChainBufs = 256;  // more pieces than this in one chain is treated as a bad chain

// What a ring logs while the frontend migrates (vhost-user "Migration"); all null/false when it does not.
// Derived from the port's log, features and the ring's SET_VRING_ADDR flags with the poll threads parked.
struct VringLog {
  const DirtyLog* log = nullptr;       // non-null: something to log
  const GuestMemory* mem = nullptr;    // to find the buffers of used entries again
  bool bufs = false;                   // VHOST_F_LOG_ALL: the bytes written into the buffers of used entries
  bool used = false;                   // VHOST_VRING_F_LOG: the used ring, at log_guest_addr
};
constexpr uint32_t VHOST_VRING_F_LOG = 1u << 0;

enum class ChainStatus {
  kOk, kLoop, kOutOfBounds, kNestedIndirect, kBadIndirect, kWrongDirection, kTooManyBufs,
  kNotAvailable,  // packed: a descriptor of the chain past its head was not made available (lying wrap counters)
  kBadId,         // packed: buffer id out of range, or already in flight
};
const char* chain_status_name(ChainStatus s);

struct Vring {
  // --- configuration (SET_VRING_NUM / ADDR / BASE / KICK / CALL / ERR / ENABLE) ---
  uint16_t queue_pair = 0;  // which pair of the port this ring belongs to
  uint16_t num = 0;  // a power of two (checked by SET_VRING_NUM), so index & (num - 1) is the slot
  uint64_t desc_uva = 0, avail_uva = 0, used_uva = 0;
  bool addr_set = false;
  uint32_t addr_flags = 0;      // SET_VRING_ADDR flags (VHOST_VRING_F_LOG)
  uint64_t log_guest_addr = 0;  // guest physical address of the used ring, for the dirty log
  // call_fd and err_fd, and enabled, change without parking the poll threads (a flood of SET_VRING_CALL or
  // SET_VRING_ENABLE must not stop every port): the data path reads them once per use, atomically.
  int kick_fd = -1, call_fd = -1, err_fd = -1;
  bool started = false;  // SET_VRING_KICK received, not yet stopped by GET_VRING_BASE
  bool enabled = false;  // SET_VRING_ENABLE (or implied when protocol features are off)
  bool event_idx = false;
  bool in_order = false;  // VIRTIO_F_IN_ORDER: the driver makes buffers available in ring order
  bool packed = false;  // VIRTIO_F_RING_PACKED: the ring is a PackedVring (packed_vring.h), not split

  // --- translated ring parts, valid for the current GuestMemory ---
  VringDesc* desc = nullptr;
  VringAvail* avail = nullptr;
  VringUsed* used = nullptr;

  // --- device state ---
  uint16_t last_avail_idx = 0;  // next avail entry the device will take
  uint16_t used_idx = 0;        // next used entry the device will fill (published to used->idx by flush)
  uint16_t published_used = 0;  // used->idx as last published, for vring_need_event
  uint16_t cached_avail = 0;    // avail->idx as last read
  bool broken = false;          // NEEDS_RESET: stopped until the frontend resets the ring
  bool dirty = false;           // used entries written but not yet published (in a thread's flush list)
  uint32_t work_debt = 0;       // transmit queues: work spent beyond the per-pass share, paid by skipped passes
  bool fault_skip = false;      // transmit queues: the entry at last_avail_idx was cut short by a fault: return it
  std::atomic_flag lock = ATOMIC_FLAG_INIT;  // taken for enqueue when several poll threads share a ring
  // Packed rings only (packed_vring.h): last_avail_idx and used_idx are ring slots, these their wrap counters;
  // published_used/published_wrap the used position at the last notification decision, unsignalled the
  // descriptors used since then.
  bool avail_wrap = true, used_wrap = true, published_wrap = true;
  uint32_t unsignalled = 0;
  // Used descriptors put but not written into the descriptor ring yet: publish() writes them together, so that
  // the ring's cache lines, which the driver polls, change hands once per burst instead of once per frame.
  struct ShadowUsed {
    uint16_t slot;
    uint64_t word;  // the used descriptor's len, id and flags (PackedVring::used_word)
  };
  static constexpr uint32_t kShadowUsed = 64;
  ShadowUsed shadow_used[kShadowUsed];
  uint32_t shadow_n = 0;
  bool shadow_batch = false;  // the last shadow entry stands for a run of transmit chains (PackedVring::put_tx_used)

  VringCounters counters;
  FwdCache fwd;
  VringLog log;  // transmit queues: see FwdCache

  bool is_enabled() const { return __atomic_load_n(&enabled, __ATOMIC_ACQUIRE); }
  bool ready() const { return started && is_enabled() && desc && !broken; }
  // Started rings are processed even when disabled (vhost-user "Ring states"): a disabled transmit ring is
  // drained, a disabled receive ring skipped when frames are delivered.
  bool polled() const { return started && desc && !broken; }

  // Translates desc/avail/used for mem; false (and the ring stays unusable) if any part is outside it.
  bool translate(const GuestMemory* mem);
  void forget_translation() { desc = nullptr; avail = nullptr; used = nullptr; }

  // How many entries the driver has made available and the device not yet taken. A jump by more than
  // num is a driver bug or attack: the ring is marked broken and 0 returned.
  uint16_t avail_count() {
    // SAFETY: avail was translated with room for num entries and the event field (translate); callers check ready().
    uint16_t idx = __atomic_load_n(&avail->idx, __ATOMIC_ACQUIRE);
    uint16_t n = static_cast<uint16_t>(idx - last_avail_idx);
    if (n > num) {
      mark_broken();
      return 0;
    }
    cached_avail = idx;
    return n;
  }
  // SAFETY: the slot is masked to num - 1 (num a power of two) inside the translated avail ring. The head itself
  // is the guest's: walk checks it against num.
  uint16_t avail_head(uint16_t i) const { return avail->ring[static_cast<uint16_t>(last_avail_idx + i) & (num - 1)]; }

  // Walks the chain starting at head; every piece must be device-readable (want_write false) or
  // device-writable (want_write true). Zero-length pieces are skipped.
  // At most max_bufs pieces are stored in bufs. Inline for the common one-descriptor chain.
  ChainStatus walk(const GuestMemory& mem, uint16_t head, bool want_write, Buf* bufs, int* nbufs,
                   uint64_t* total, int max_bufs) const {
    if (head < num && max_bufs > 0) {
      VringDesc d;
      // SAFETY: head < num, inside the translated table; one snapshot, as the guest may rewrite it concurrently.
      std::memcpy(&d, &desc[head], sizeof d);
      if (!(d.flags & (VRING_DESC_F_NEXT | VRING_DESC_F_INDIRECT)) && d.len &&
          static_cast<bool>(d.flags & VRING_DESC_F_WRITE) == want_write) {
        // SAFETY: gpa_to_host returns null unless [addr, addr+len) is inside one mapped region (then the slow
        // path refuses the chain).
        if (uint8_t* p = mem.gpa_to_host(d.addr, d.len)) {
          bufs[0] = {p, d.len};
          *nbufs = 1;
          *total = d.len;
          return ChainStatus::kOk;
        }
      }
    }
    return walk_slow(mem, head, want_write, bufs, nbufs, total, max_bufs);
  }
  ChainStatus walk_slow(const GuestMemory& mem, uint16_t head, bool want_write, Buf* bufs, int* nbufs,
                        uint64_t* total, int max_bufs) const;

  // Prefetch for the entry `ahead` places on: its descriptor, and (one step later, once that descriptor is
  // in cache) the buffer it points to. A hint only: nothing is dereferenced that translate would refuse.
  void prefetch_desc(uint16_t ahead) const {
    // SAFETY: a prefetch never faults, and the slot is masked into the table anyway.
    __builtin_prefetch(&desc[avail_head(ahead) & (num - 1)]);
  }
  __attribute__((always_inline)) void prefetch_buf(const GuestMemory& mem, uint16_t ahead, bool write) const {
    // SAFETY: the slot is masked into the table; the address is only prefetched after gpa_to_host accepted it.
    const VringDesc& d = desc[avail_head(ahead) & (num - 1)];
    uint64_t addr = __atomic_load_n(&d.addr, __ATOMIC_RELAXED);
    if (const uint8_t* p = mem.gpa_to_host(addr, 64)) {
      if (write) __builtin_prefetch(p, 1);
      else __builtin_prefetch(p, 0);
    }
  }

  // Available entries, re-reading avail->idx only when the cached view is used up (saves a cache line
  // shared with the driver per frame).
  uint16_t avail_cached(uint16_t want) {
    uint16_t n = static_cast<uint16_t>(cached_avail - last_avail_idx);
    if (n >= want && n <= num) return n;
    return avail_count();
  }

  // Writes one used element in the shadow index; publish() makes them visible.
  void put_used(uint16_t id, uint32_t len) {
    // SAFETY: the slot is masked to num - 1 inside the translated used ring (translate sized it for num entries).
    VringUsedElem* e = &used->ring[used_idx & (num - 1)];
    e->id = id;
    e->len = len;
    used_idx++;
  }
  // Publishes used entries and, if the driver wants it (EVENT_IDX or the NO_INTERRUPT flag), signals call.
  // While logging, marks what they wrote (one predictable branch per publish otherwise).
  void publish();

  // Kick suppression: while the poll thread busy-polls it asks the driver not to kick.
  void enable_kicks();
  void disable_kicks();

  void mark_broken();
  // Marks the used ring bytes [off, off+len) in the dirty log, if this ring logs its used ring.
  void log_used_bytes(uint64_t off, uint64_t len) const {
    if (log.log && log.used) log.log->mark(log_guest_addr + off, len);
  }
  void stop_and_reset_state();  // GET_VRING_BASE / reset: keeps fds, forgets run state
  void close_fds();

 private:
  template <bool kLog>
  void publish_impl();
  __attribute__((noinline, cold)) void publish_logged();
  void log_published(uint16_t from) const;
};

}  // namespace vs
