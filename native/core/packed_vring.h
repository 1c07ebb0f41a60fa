// One packed virtqueue (virtio 1.1 2.7) as the device (the switch) sees it: the descriptor ring read against the
// driver's wrap counter, used descriptors written back over the chains' first slots, and the event suppression
// structures of 2.7.10 and 2.7.14. Configuration and state are Vring's (vring.h): once translated with `packed`
// set, desc is the descriptor ring, avail the driver event suppression structure and used the device's;
// last_avail_idx and used_idx are ring slots with their wrap counters beside them.
#pragma once
#include <atomic>
#include <cstdint>
#include <cstring>

#include "core/vring.h"

namespace vs {

// A chain as the device gives it back: the buffer id of its last descriptor and the ring slots it took.
struct PackedChain {
  uint16_t id;
  uint16_t ndesc;
};

// Methods only, no state of its own: every port ring is allocated as a PackedVring (port.h), so whichever layout
// the frontend negotiates, a ring with `packed` set may be viewed as one (as_packed).
struct PackedVring : Vring {
  VringPackedDesc* ring() const { return reinterpret_cast<VringPackedDesc*>(desc); }
  VringPackedEvent* driver_event() const { return reinterpret_cast<VringPackedEvent*>(avail); }
  VringPackedEvent* device_event() const { return reinterpret_cast<VringPackedEvent*>(used); }

  // 2.7.1: available when AVAIL matches the driver's wrap counter and USED does not.
  static bool is_avail(uint16_t flags, bool wrap) {
    return static_cast<bool>(flags & VRING_PACKED_DESC_F_AVAIL) == wrap &&
           static_cast<bool>(flags & VRING_PACKED_DESC_F_USED) != wrap;
  }
  // The flags of slot idx, read before anything else of the descriptor (acquire: the driver writes them last).
  uint16_t load_flags(uint16_t idx) const {
    // SAFETY: callers pass idx < num, and translate() checked that the ring's 16 * num bytes lie in guest memory.
    return __atomic_load_n(&ring()[idx].flags, __ATOMIC_ACQUIRE);
  }
  bool head_avail() const { return is_avail(load_flags(last_avail_idx), avail_wrap); }
  void advance(uint16_t* idx, bool* wrap, uint32_t n) const {
    uint32_t i = *idx + n;
    if (i >= num) {
      i -= num;
      *wrap = !*wrap;
    }
    *idx = static_cast<uint16_t>(i);
  }

  // Walks the chain at slot idx (whose head the caller found available with wrap); every piece must be
  // device-readable (want_write false) or device-writable (want_write true), zero-length ones are skipped, at
  // most max_bufs are stored. *chain is filled whenever the chain's end was found, also for a bad chain (so that
  // it can be given back); kLoop and kNotAvailable mean its end is unknown and the ring cannot go on.
  ChainStatus walk(const GuestMemory& mem, uint16_t idx, bool wrap, bool want_write, Buf* bufs, int* nbufs,
                   uint64_t* total, int max_bufs, PackedChain* chain) const {
    const uint16_t flags = load_flags(idx);
    if (is_avail(flags, wrap) && !(flags & (VRING_DESC_F_NEXT | VRING_DESC_F_INDIRECT)) && max_bufs > 0 &&
        static_cast<bool>(flags & VRING_DESC_F_WRITE) == want_write) {
      VringPackedDesc d;
      // SAFETY: idx < num, inside the translated ring; one snapshot, the guest may rewrite it concurrently.
      std::memcpy(&d, &ring()[idx], sizeof d);
      if (d.len && d.id < num) {
        // SAFETY: the piece [addr, addr+len) is inside one mapped region or the slow path refuses it.
        if (uint8_t* p = mem.gpa_to_host(d.addr, d.len)) {
          bufs[0] = {p, d.len};
          *nbufs = 1;
          *total = d.len;
          *chain = {d.id, 1};
          return ChainStatus::kOk;
        }
      }
    }
    return walk_slow(mem, idx, wrap, want_write, bufs, nbufs, total, max_bufs, chain);
  }
  ChainStatus walk_slow(const GuestMemory& mem, uint16_t idx, bool wrap, bool want_write, Buf* bufs, int* nbufs,
                        uint64_t* total, int max_bufs, PackedChain* chain) const;

  // Puts the used descriptor of a chain at used_idx and moves past the chain's slots. It reaches the ring with
  // the burst's others at publish() (or when the shadow is full); publish() also decides whether to notify.
  // written: a receive chain (len is meaningful).
  void put_used(uint16_t id, uint32_t len, uint16_t ndesc, bool written) {
    if (shadow_n == kShadowUsed) write_used();
    uint16_t f = used_wrap ? (VRING_PACKED_DESC_F_AVAIL | VRING_PACKED_DESC_F_USED) : 0;
    if (written) f |= VRING_DESC_F_WRITE;
    shadow_used[shadow_n++] = {used_idx, used_word(len, id, f)};
    shadow_batch = false;
    advance(&used_idx, &used_wrap, ndesc);
    unsignalled += ndesc;
  }
  // A transmit chain done. With VIRTIO_F_IN_ORDER a run of them is given back as one used descriptor, in the slot
  // of the run's first chain with the buffer id of its last (virtio 1.1 2.7.9): the driver, which made them available
  // in ring order, takes back every buffer up to that id, and reads one descriptor instead of one per frame.
  void put_tx_used(uint16_t id, uint16_t ndesc) {
    if (!in_order || !shadow_batch) {
      put_used(id, 0, ndesc, false);
      shadow_batch = in_order;
      return;
    }
    ShadowUsed& last = shadow_used[shadow_n - 1];
    last.word = (last.word & ~(uint64_t{0xffff} << 32)) | static_cast<uint64_t>(id) << 32;
    advance(&used_idx, &used_wrap, ndesc);
    unsignalled += ndesc;
  }
  // Bytes 8-15 of a used descriptor (len, id, flags; little-endian, as virtio is), stored at once: a driver
  // that sees the flags sees the len and id they came with.
  static uint64_t used_word(uint32_t len, uint16_t id, uint16_t flags) {
    return len | static_cast<uint64_t>(id) << 32 | static_cast<uint64_t>(flags) << 48;
  }
  // Writes the used descriptors put since the last call into the ring, the first one last, so that the driver,
  // which looks at that one first, finds the burst whole.
  void write_used();
  // A fault took the ring's memory: what was put is not written.
  void forget_used() {
    shadow_n = 0;
    shadow_batch = false;
  }
  // While the frontend migrates: marks [p, p+len), host memory inside this ring's guest memory, in the dirty log.
  // The used descriptors are marked by publish() whenever the ring logs (they live in the descriptor ring, whose
  // guest address we know without log_guest_addr); the buffers with VHOST_F_LOG_ALL by the caller (log.bufs).
  void log_host(const void* p, uint64_t len) const {
    uint64_t gpa;
    if (log.log && log.mem->host_to_gpa(static_cast<const uint8_t*>(p), &gpa)) log.log->mark(gpa, len);
  }
  // Consumes a chain taken at last_avail_idx.
  void take(const PackedChain& c) { advance(&last_avail_idx, &avail_wrap, c.ndesc); }

  // Notifies the driver, if its event suppression structure asks for it, of the used descriptors written since
  // the last call (and, while logging, marks the slots they were written in).
  void publish();
  // The device event suppression structure: kicks wanted (before the thread sleeps) or not (while it polls).
  void enable_kicks();
  void disable_kicks();

  // SET_VRING_KICK: the used position starts where the avail one is (the device holds no buffers when stopped).
  void start();
  // SET_VRING_BASE / GET_VRING_BASE: bits 0-14 the slot, bit 15 the wrap counter, for the next available
  // descriptor; GET adds the used position the same way in bits 16-31 (vhost-user "Vring descriptor indices for
  // packed virtqueues"). set_base is false for a slot outside the ring.
  bool set_base(uint32_t base);
  uint32_t get_base() const;

 private:
  bool event_passed() const;
  __attribute__((noinline, cold)) void log_used() const;
};
static_assert(sizeof(PackedVring) == sizeof(Vring), "PackedVring adds methods only");

// The packed view of a ring whose `packed` is set (every port ring is allocated as a PackedVring).
inline PackedVring& as_packed(Vring& v) { return static_cast<PackedVring&>(v); }

}  // namespace vs
