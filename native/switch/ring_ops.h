// What the burst code of datapath.cc does to a guest's ring, once per layout: SplitOps (vring.h) and PackedOps
// (packed_vring.h). The packet stages (headers, the single copy, offloads, VLANs, port security, counters) are
// written once, as templates over these; each layout gets its own straight-line code, chosen at compile time.
//   rx_gather   takes receive chains at the ring's next available position until they hold `need` bytes
//               (nothing is consumed yet); -1, or the drop reason
//   rx_complete gives the chains back used, `need` bytes written over them in order (the pieces `dst`), and
//               consumes them
//   tx_avail    an upper bound of the chains the driver has made available (0: none)
//   tx_next     walks the next transmit chain; false when there is none (or the ring just broke)
//   tx_done     gives a transmit chain back used, and consumes it
//   tx_skip     gives back the chain a guest memory fault interrupted, unread
//   drain       takes, discards and counts up to n chains of a disabled ring
// Guest memory is touched only through the ring's own accessors (vring.h, packed_vring.h), each with its bounds
// reason; what these add is that every position they pass is one the ring made available, inside the ring. They
// run on a poll thread under its fault guard, on rings rebuild() found polled() (translated, started, not broken).
#pragma once
#include <cstdint>

#include "core/packed_vring.h"
#include "core/vring.h"
#include "switch/datapath.h"

namespace vs {

// The per-frame pieces of the packet path are inlined into each layout's burst loop whatever the compiler's
// budget says: with two layouts each piece has two callers, and a call per frame is what the templates avoid.
#define VS_INLINE inline __attribute__((always_inline))

struct SplitOps {
  using Ring = Vring;
  using Chain = uint16_t;  // the head

  VS_INLINE static int rx_gather(Ring& rxq, const GuestMemory& mem, uint64_t need, bool mergeable, Buf* dst, int* nbufs,
                       Chain* heads, uint32_t* caps, int* nchains_out) {
    uint16_t avail = rxq.avail_cached(1);
    if (avail == 0) return rxq.broken ? kDropRingBroken : kDropNoRxBuffer;
    int nchains = 0, nb = 0;
    uint64_t cap = 0;
    while (cap < need) {
      if (nchains == avail) {
        avail = rxq.avail_count();  // the cached view ran out: look again before giving up
        if (nchains >= avail) return rxq.broken ? kDropRingBroken : kDropNoRxBuffer;
      }
      if (nchains == kMaxRxChains) return kDropNoRxBuffer;
      if (nchains == 1 && !mergeable) return kDropRxBufferTooSmall;
      // SAFETY: nchains < avail <= num entries the driver made available; avail_head masks the slot into the
      // translated ring, and walk checks the head it returns against num.
      uint16_t head = rxq.avail_head(nchains);
      int cnt;
      uint64_t len;
      ChainStatus st = rxq.walk(mem, head, true, dst + nb, &cnt, &len, kMaxChainBufs - nb);
      if (st == ChainStatus::kTooManyBufs) {
        // More pieces than our scratch holds: legal (up to the queue size), so not a reason to stop the ring.
        if (nb > 0) return kDropNoRxBuffer;  // the frame's earlier chains filled the scratch: it does not fit
        // One chain alone is too long for us: it goes back to the driver unused, and this frame is dropped.
        // SAFETY: put_used masks used_idx into the translated used ring; head is a value written, not an index.
        rxq.put_used(head, 0);
        rxq.last_avail_idx++;
        return kDropBadDescriptor;
      }
      if (st != ChainStatus::kOk) {
        // A receive chain the guest built wrongly: the queue stays stopped until the driver resets it.
        rxq.mark_broken();
        return kDropBadDescriptor;
      }
      heads[nchains] = head;
      caps[nchains] = static_cast<uint32_t>(len > need ? need : len);
      nchains++;
      nb += cnt;
      cap += len;
    }
    *nbufs = nb;
    *nchains_out = nchains;
    return -1;
  }
  VS_INLINE static void rx_complete(Ring& rxq, const GuestMemory& mem, const Chain* heads, const uint32_t* caps,
                                    int nchains, uint64_t need, const Buf*, int) {
    uint64_t left = need;
    for (int i = 0; i < nchains; i++) {
      uint32_t used = static_cast<uint32_t>(left < caps[i] ? left : caps[i]);
      // SAFETY: put_used masks used_idx into the translated used ring.
      rxq.put_used(heads[i], used);
      left -= used;
    }
    rxq.last_avail_idx = static_cast<uint16_t>(rxq.last_avail_idx + nchains);
    // Warm up the next frame's receive chain: the copies were cache misses on guest memory.
    uint16_t left_avail = static_cast<uint16_t>(rxq.cached_avail - rxq.last_avail_idx);
    // SAFETY: prefetches only (they never fault), of slots masked into the ring and a buffer gpa_to_host accepted.
    if (left_avail > 1) rxq.prefetch_desc(1);
    if (left_avail > 0) rxq.prefetch_buf(mem, 0, true);
  }
  static bool rx_pending(const Ring& rxq) { return rxq.used_idx != rxq.published_used; }
  static void mark_dirty(PollContext& c, Ring& rxq) { c.dirty.push_back(&rxq); }

  static uint16_t tx_avail(Ring& txq) { return txq.avail_count(); }
  static void tx_prefetch(const Ring& txq, const GuestMemory& mem, uint16_t left) {
    // SAFETY: as in rx_complete, prefetches of masked slots and of a buffer gpa_to_host accepted.
    if (left > 2) txq.prefetch_desc(2);
    if (left > 1) txq.prefetch_buf(mem, 1, false);
  }
  static bool tx_next(Ring& txq, const GuestMemory& mem, Buf* bufs, int* nb, uint64_t* total, Chain* head,
                      ChainStatus* st) {
    // Entry 0 is always the next one: progress is kept per frame, so that a fault resumes after this frame.
    // SAFETY: poll_ring takes fewer entries than tx_avail counted (at most num); the slot is masked into the ring
    // and walk checks the head against num, every piece against guest memory.
    *head = txq.avail_head(0);
    *st = txq.walk(mem, *head, false, bufs, nb, total, kMaxChainBufs);
    return true;
  }
  static void tx_done(Ring& txq, Chain head) {
    // SAFETY: put_used masks used_idx into the translated used ring.
    txq.put_used(head, 0);
    txq.last_avail_idx++;
  }
  // SAFETY: called by poll_ring under the guard and only on a ring not broken, so not the one whose memory
  // faulted; the entry at last_avail_idx was counted available before the fault, and its slot is masked.
  static void tx_skip(Ring& txq, const GuestMemory&) { tx_done(txq, txq.avail_head(0)); }
  // vhost-user "Ring states": a started ring the frontend disabled is still processed, without side effects; on
  // a transmit ring that means its frames are taken, discarded and counted.
  static uint32_t drain(Ring& txq, const GuestMemory&, uint16_t n) {
    for (uint16_t i = 0; i < n; i++) {
      // SAFETY: i < n <= avail_count() entries made available; both slots are masked into their rings.
      txq.put_used(txq.avail_head(i), 0);
      txq.counters.packets.inc();
      txq.counters.drops[kDropRingDisabled].inc();
    }
    txq.last_avail_idx = static_cast<uint16_t>(txq.last_avail_idx + n);
    return n;
  }
};

struct PackedOps {
  using Ring = PackedVring;
  using Chain = PackedChain;

  // Chains follow each other in the ring: the k-th one of a frame starts where the (k-1)-th ended.
  VS_INLINE static int rx_gather(Ring& rxq, const GuestMemory& mem, uint64_t need, bool mergeable, Buf* dst, int* nbufs,
                       Chain* chains, uint32_t* caps, int* nchains_out) {
    uint16_t idx = rxq.last_avail_idx;
    bool wrap = rxq.avail_wrap;
    int nchains = 0, nb = 0;
    uint64_t cap = 0;
    while (cap < need) {
      // SAFETY: idx starts at last_avail_idx < num and advance() keeps it below num (a chain is at most num slots).
      if (!Ring::is_avail(rxq.load_flags(idx), wrap)) return kDropNoRxBuffer;
      if (nchains == kMaxRxChains) return kDropNoRxBuffer;
      if (nchains == 1 && !mergeable) return kDropRxBufferTooSmall;
      int cnt;
      uint64_t len;
      Chain ch;
      ChainStatus st = rxq.walk(mem, idx, wrap, true, dst + nb, &cnt, &len, kMaxChainBufs - nb, &ch);
      if (st == ChainStatus::kTooManyBufs) {
        if (nb > 0) return kDropNoRxBuffer;  // the frame's earlier chains filled the scratch: it does not fit
        // One chain alone is too long for us: it goes back to the driver unused, and this frame is dropped.
        // SAFETY: put_used writes the slot used_idx < num; ch.id is a value written back, not an index.
        rxq.put_used(ch.id, 0, ch.ndesc, true);
        rxq.take(ch);
        return kDropBadDescriptor;
      }
      // A buffer id twice among the chains of one frame: the driver gave us a buffer still in flight.
      for (int k = 0; st == ChainStatus::kOk && k < nchains; k++)
        if (chains[k].id == ch.id) st = ChainStatus::kBadId;
      if (st != ChainStatus::kOk) {
        // A receive chain the guest built wrongly: the queue stays stopped until the driver resets it.
        rxq.mark_broken();
        return kDropBadDescriptor;
      }
      chains[nchains] = ch;
      caps[nchains] = static_cast<uint32_t>(len > need ? need : len);
      nchains++;
      nb += cnt;
      cap += len;
      rxq.advance(&idx, &wrap, ch.ndesc);
    }
    *nbufs = nb;
    *nchains_out = nchains;
    return -1;
  }
  VS_INLINE static void rx_complete(Ring& rxq, const GuestMemory&, const Chain* chains, const uint32_t* caps,
                                    int nchains, uint64_t need, const Buf* dst, int nb) {
    if (__builtin_expect(rxq.log.bufs, 0)) log_written(rxq, dst, nb, need);  // bufs: only with a log
    uint64_t left = need;
    for (int i = 0; i < nchains; i++) {
      uint32_t used = static_cast<uint32_t>(left < caps[i] ? left : caps[i]);
      // SAFETY: put_used writes the slot used_idx < num, which advance() keeps inside the ring.
      rxq.put_used(chains[i].id, used, chains[i].ndesc, true);
      rxq.take(chains[i]);
      left -= used;
    }
  }
  static bool rx_pending(const Ring& rxq) { return rxq.unsignalled != 0; }
  static void mark_dirty(PollContext& c, Ring& rxq) { c.dirty_packed.push_back(&rxq); }

  // No count without walking the chains: a burst's worth if the next one is there, tx_next finds the end.
  static uint16_t tx_avail(Ring& txq) { return txq.head_avail() ? kBurst : 0; }
  static void tx_prefetch(const Ring&, const GuestMemory&, uint16_t) {}
  static bool tx_next(Ring& txq, const GuestMemory& mem, Buf* bufs, int* nb, uint64_t* total, Chain* ch,
                      ChainStatus* st) {
    // SAFETY: head_avail() and walk read slots from last_avail_idx < num on; walk checks every piece.
    if (!txq.head_avail()) return false;
    *st = txq.walk(mem, txq.last_avail_idx, txq.avail_wrap, false, bufs, nb, total, kMaxChainBufs, ch);
    return !fatal(txq, *st);
  }
  static void tx_done(Ring& txq, const Chain& ch) {
    // SAFETY: the used descriptor goes to a slot used_idx < num when the burst is published.
    txq.put_tx_used(ch.id, ch.ndesc);
    txq.take(ch);
  }
  // SAFETY: as for split rings, only on a ring not broken, under the guard; the chain is walked again from its
  // head slot, every read inside the ring.
  static void tx_skip(Ring& txq, const GuestMemory& mem) {
    Chain ch;
    if (next_chain(txq, mem, &ch)) tx_done(txq, ch);
  }
  static uint32_t drain(Ring& txq, const GuestMemory& mem, uint16_t n) {
    uint32_t k = 0;
    Chain ch;
    // SAFETY: head_avail() and next_chain read slots from last_avail_idx < num on.
    for (; k < n && txq.head_avail() && next_chain(txq, mem, &ch); k++) {
      tx_done(txq, ch);
      txq.counters.packets.inc();
      txq.counters.drops[kDropRingDisabled].inc();
    }
    return k;
  }

  // VHOST_F_LOG_ALL: the bytes the frame wrote into the receive pieces.
  // No guest byte is read: log_host maps the host addresses of dst's checked pieces to guest addresses.
  __attribute__((noinline, cold)) static void log_written(const Ring& rxq, const Buf* dst, int nb, uint64_t len) {
    for (int i = 0; i < nb && len; i++) {
      const uint64_t k = dst[i].len < len ? dst[i].len : len;
      rxq.log_host(dst[i].addr, k);
      len -= k;
    }
  }

 private:
  // A chain whose end is unknown (it never ends, or runs into a descriptor not available): the ring cannot be
  // read on, so it stops until the frontend resets it.
  static bool fatal(Ring& r, ChainStatus st) {
    if (st != ChainStatus::kLoop && st != ChainStatus::kNotAvailable) return false;
    r.counters.drops[kDropBadDescriptor].inc();
    r.mark_broken();
    return true;
  }
  // The extent of the chain at last_avail_idx, its pieces not looked at.
  static bool next_chain(Ring& txq, const GuestMemory& mem, Chain* ch) {
    int nb;
    uint64_t total;
    return !fatal(txq, txq.walk_slow(mem, txq.last_avail_idx, txq.avail_wrap, false, nullptr, &nb, &total, 0, ch));
  }
};

}  // namespace vs
