#include "switch/datapath.h"

#include "switch/frame.h"
#include "ports/nic.h"
#include "ports/af_xdp.h"
#include "switch/port_security.h"
#include "switch/ring_ops.h"
#include "core/sg.h"
#include "switch/engine.h"
#include "switch/tx_header.h"

namespace vs {

thread_local std::atomic_flag* tl_rx_lock = nullptr;

namespace {

// Builds the destination's virtio-net header, or returns a drop reason when the destination cannot take
// the frame as it is (a GSO frame it did not negotiate). *sw_csum: we must fill in the checksum ourselves.
VS_INLINE int dest_header(const Port& dst, const Frame& f, VirtioNetHdr* out, bool* sw_csum) {
  *out = {};
  *sw_csum = false;
  const VirtioNetHdr& h = f.hdr;
  if (h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) {
    if (dst.has(VIRTIO_NET_F_GUEST_CSUM)) {
      out->flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
      out->csum_start = h.csum_start;
      out->csum_offset = h.csum_offset;
    } else {
      *sw_csum = true;
    }
  } else if ((h.flags & VIRTIO_NET_HDR_F_DATA_VALID) && dst.has(VIRTIO_NET_F_GUEST_CSUM)) {
    out->flags = VIRTIO_NET_HDR_F_DATA_VALID;
  }
  uint8_t gso = h.gso_type & ~VIRTIO_NET_HDR_GSO_ECN;
  if (gso != VIRTIO_NET_HDR_GSO_NONE) {
    // A GSO frame goes as it is only to a port that takes GSO frames; for the others deliver() segments it.
    bool ok = (gso == VIRTIO_NET_HDR_GSO_TCPV4 && dst.has(VIRTIO_NET_F_GUEST_TSO4)) ||
              (gso == VIRTIO_NET_HDR_GSO_TCPV6 && dst.has(VIRTIO_NET_F_GUEST_TSO6)) ||
              (gso == VIRTIO_NET_HDR_GSO_UDP && dst.has(VIRTIO_NET_F_GUEST_UFO));
    if (!ok || ((h.gso_type & VIRTIO_NET_HDR_GSO_ECN) && !dst.has(VIRTIO_NET_F_GUEST_ECN))) return kDropOffload;
    out->gso_type = h.gso_type;
    out->gso_size = h.gso_size;
    out->hdr_len = h.hdr_len;
  }
  return -1;
}

// Copies the frame into one receive queue of dst. Returns -1 on success or the drop reason.
template <class Ops>
VS_INLINE int enqueue(PollContext& c, Port& dst, typename Ops::Ring& rxq, const Frame& f) {
  c.work += work_units(f.len);
  VirtioNetHdr hdr;
  bool sw_csum;
  int reason = dest_header(dst, f, &hdr, &sw_csum);
  if (reason >= 0) return reason;
  if (rxq.broken) return kDropRingBroken;
  const GuestMemory& mem = *dst.mem;
  const bool mergeable = dst.has(VIRTIO_NET_F_MRG_RXBUF);
  const uint64_t need = dst.hdr_len + f.len;

  // Gather receive chains until they hold the header and the frame. Nothing is consumed until it fits.
  typename Ops::Chain chains[kMaxRxChains];
  uint32_t caps[kMaxRxChains];
  int nchains = 0, nb = 0;
  reason = Ops::rx_gather(rxq, mem, need, mergeable, c.dst, &nb, chains, caps, &nchains);
  if (reason >= 0) return reason;

  hdr.num_buffers = static_cast<uint16_t>(mergeable ? nchains : 1);
  // The Ethernet header goes from f.eth, the copy forward() checked, not again from the source's memory: a
  // guest rewriting it from another vCPU meanwhile must not get other bytes past the checks.
  const uint64_t eth = frame_eth_len(f);
  if (nb == 1 && f.nbufs == 1 && f.bufs[0].len >= f.off + f.len && eth == sizeof f.eth) {
    // The common case, one buffer on each side: plain copies.
    // SAFETY: c.dst[0] is the one piece rx_gather took, which walk() found inside dst's memory and device-writable,
    // and it holds need = hdr_len + f.len bytes (the gather stops only once they fit); the source side is
    // [f.off, f.off + f.len) of f.bufs[0], tested just above, a piece checked when the frame was taken. A racing
    // unmap of either memory faults into the poll thread's guard (fault_guard.h), which stops the owner's rings.
    uint8_t* out = c.dst[0].addr;
    if (dst.hdr_len == sizeof hdr)
      std::memcpy(out, &hdr, sizeof hdr);  // constant size: a few moves, no call
    else
      std::memcpy(out, &hdr, dst.hdr_len);
    std::memcpy(out + dst.hdr_len, f.eth, sizeof f.eth);
    std::memcpy(out + dst.hdr_len + sizeof f.eth, f.bufs[0].addr + f.off + sizeof f.eth, f.len - sizeof f.eth);
  } else {
    // SAFETY: the sg_* helpers never leave the pieces they are given: c.dst as rx_gather took them (checked by
    // walk(), device-writable), f.bufs as the frame was taken; a racing unmap faults into the poll thread's guard.
    sg_write(c.dst, nb, 0, &hdr, dst.hdr_len);
    sg_write(c.dst, nb, dst.hdr_len, f.eth, eth);
    sg_copy(f.bufs, f.nbufs, f.off + eth, c.dst, nb, dst.hdr_len + eth, f.len - eth);
  }
  if (sw_csum) {
    // SAFETY: over dst's checked pieces only; sg_csum and sg_write stop at their end whatever csum_start says
    // (forward() also checked csum_start + csum_offset + 2 <= f.len).
    uint16_t sum = sg_csum(c.dst, nb, dst.hdr_len + f.hdr.csum_start, f.len - f.hdr.csum_start);
    uint16_t be = static_cast<uint16_t>(~sum);
    uint8_t bytes[2] = {uint8_t(be >> 8), uint8_t(be)};
    sg_write(c.dst, nb, dst.hdr_len + f.hdr.csum_start + f.hdr.csum_offset, bytes, 2);
  }

  Ops::rx_complete(rxq, mem, chains, caps, nchains, need, c.dst, nb);
  rxq.counters.packets.inc();
  rxq.counters.bytes.add(f.len);
  return -1;
}

template <class Ops>
void deliver_to(PollContext& c, Port& dst, typename Ops::Ring& rxq, const Frame& f);

// Delivers to one destination port: a NIC queue, or this thread's receive queue of a guest, published now
// or at the end of the burst when this thread is the only writer of the queue.
VS_INLINE void deliver(PollContext& c, Port& dst, const Frame& frame, VringCounters& in, bool flooding) {
  if (dst.kind != PortKind::kVhost) {
    if (dst.nicq.empty()) return;
    if (dst.capture) dst.capture->put(CaptureRing::kOut, frame);
    nic_send(c, dst, frame);  // tags on the wire itself
    return;
  }
  if (dst.rx_ready.empty()) {
    if (!flooding) in.drops[kDropPortDown].inc();
    return;
  }
  if (dst.capture) dst.capture->put(CaptureRing::kOut, frame);
  // A guest trunk takes its other VLANs tagged, as a NIC trunk's wire does.
  const Frame& f = vlan_tagged_on(dst.cfg, frame.vlan) ? vlan_tagged_view(frame, c.tag_view) : frame;
  // Frames from source queue pair k go to receive queue k (modulo what dst has): a multi-queue guest gets
  // its flows spread as it spread them itself, and one flow stays in order. No division for one queue.
  const size_t nq = dst.rx_spread;
  Vring* pick = dst.rx_ready[nq == 1 ? 0 : c.src_queue % nq];
  if (!pick->is_enabled()) {
    // Disabled since the last reconfiguration (SET_VRING_ENABLE does not park us): another queue, or none.
    pick = nullptr;
    for (Vring* v : dst.rx_ready)
      if (v->is_enabled()) {
        pick = v;
        break;
      }
    if (!pick) {
      if (!flooding) in.drops[kDropPortDown].inc();
      return;
    }
  }
  if (pick->packed) deliver_to<PackedOps>(c, dst, as_packed(*pick), f);
  else deliver_to<SplitOps>(c, dst, *pick, f);
}

// Delivers to rxq, one of dst's receive queues, cutting a GSO frame dst cannot take.
template <class Ops>
void deliver_to(PollContext& c, Port& dst, typename Ops::Ring& rxq, const Frame& f) {
  const bool shared = c.sw->shared_rx();
  if (shared) {
    while (rxq.lock.test_and_set(std::memory_order_acquire)) __builtin_ia32_pause();
    tl_rx_lock = &rxq.lock;
  }
  int reason = enqueue<Ops>(c, dst, rxq, f);
  if (reason == kDropOffload) {
    // A TCP GSO frame toward a guest that cannot take one: cut it into MSS-sized frames here.
    struct Out {
      PollContext* c;
      Port* dst;
      typename Ops::Ring* rxq;
    } out{&c, &dst, &rxq};
    auto emit = [](const Frame& seg, void* p) {
      Out* o = static_cast<Out*>(p);
      o->c->work += kSegmentWork;
      int r = enqueue<Ops>(*o->c, *o->dst, *o->rxq, seg);
      if (r >= 0) o->rxq->counters.drops[r].inc();
    };
    if (gso_segment_tcp(f, c.gso, emit, &out)) reason = -1;
  }
  if (reason >= 0) rxq.counters.drops[reason].inc();  // ringBroken: every frame a broken queue could not take
  if (shared) {
    rxq.publish();
    rxq.lock.clear(std::memory_order_release);
    tl_rx_lock = nullptr;
  } else if (!rxq.dirty && Ops::rx_pending(rxq)) {
    rxq.dirty = true;
    Ops::mark_dirty(c, rxq);
  }
}

// The flooding copy of deliver(): out of line, so that the poll loop inlines only the unicast delivery.
__attribute__((noinline)) void flood_to(PollContext& c, Port& dst, const Frame& f, VringCounters& in) {
  deliver(c, dst, f, in, true);
}

// Parses the virtio-net header and the Ethernet header of a guest's chain into f.
VS_INLINE bool frame_from_chain(Port& src, Vring& txq, const Buf* bufs, int nbufs, uint64_t total, Frame& f) {
  if (total < src.hdr_len + kEthHdr) {
    txq.counters.packets.inc();
    txq.counters.drops[kDropRunt].inc();
    return false;
  }
  f.bufs = bufs;
  f.nbufs = nbufs;
  f.off = src.hdr_len;
  f.len = total - src.hdr_len;
  uint64_t want = src.hdr_len + kEthHdr + kVlanTag;
  if (want > total) want = total;
  f.hdr = {};
  if (bufs[0].len >= want) {
    // Header and Ethernet header in the first piece (the usual layout): read them in place.
    // SAFETY: bufs[0] is a piece walk() found inside the source's memory, and want <= bufs[0].len; copied once
    // into f, so the checks below see bytes the guest can no longer change. A racing unmap faults into the guard.
    if (src.hdr_len == sizeof f.hdr && want == sizeof f.hdr + sizeof f.eth) {
      std::memcpy(&f.hdr, bufs[0].addr, sizeof f.hdr);  // constant sizes: a few moves, no call
      std::memcpy(f.eth, bufs[0].addr + sizeof f.hdr, sizeof f.eth);
    } else {
      std::memcpy(&f.hdr, bufs[0].addr, src.hdr_len);
      std::memcpy(f.eth, bufs[0].addr + src.hdr_len, want - src.hdr_len);
    }
  } else {
    uint8_t head[12 + kEthHdr + kVlanTag];
    // SAFETY: the pieces walk() checked, want <= total (their sum); head holds the longest want (12-byte header).
    sg_read(bufs, nbufs, 0, head, want);
    std::memcpy(&f.hdr, head, src.hdr_len);
    std::memcpy(f.eth, head + src.hdr_len, want - src.hdr_len);
  }
  if (int reason = check_tx_header(src, f.hdr); reason >= 0) {
    txq.counters.packets.inc();
    txq.counters.drops[reason].inc();
    return false;
  }
  return true;
}

// What forward() does: the guests' poll loop below has it inline, the NIC receive path calls forward().
VS_INLINE void forward_frame(PollContext& c, Port& src, VringCounters& in, FwdCache& cache, Frame& f) {
  in.packets.inc();
  in.bytes.add(f.len);
  if (src.capture) src.capture->put(CaptureRing::kIn, f);  // as the port sent it, before any check drops it
  bool gso = (f.hdr.gso_type & ~VIRTIO_NET_HDR_GSO_ECN) != VIRTIO_NET_HDR_GSO_NONE;
  if (f.len > kMaxFrame || (!gso && f.len > src.cfg.mtu + kEthHdr + kVlanTag)) {
    in.drops[kDropMtu].inc();
    return;
  }
  if ((f.hdr.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) && uint64_t(f.hdr.csum_start) + f.hdr.csum_offset + 2 > f.len) {
    in.drops[kDropBadHeader].inc();
    return;
  }
  const uint16_t vlan = f.vlan;  // a domain src is a member of (vlan_classify)
  // Before learning: a frame that claims another port's addresses must not move that port's FDB entry.
  if (const PortSecurity* ps = src.cfg.security.get(); ps && !port_security_check(*ps, f, c.sec)) {
    in.drops[kDropSpoofed].inc();
    return;
  }
  const uint8_t* dmac = f.eth;
  const uint8_t* smac = f.eth + 6;
  Fdb& fdb = c.sw->fdb();
  uint32_t gen = fdb.generation();
  if (cache.gen != gen) {
    cache = {};
    cache.gen = gen;
  }
  if (!(smac[0] & 1)) {
    uint64_t skey = Fdb::key(smac, vlan);
    // Learning refreshes an entry at most once a second; the same source again within it is a no-op.
    if (skey != cache.src_key || cache.src_seen != c.now) {
      fdb.learn(skey, src.id, c.now);
      if (fdb.generation() != gen) {  // the table changed (by us or another thread): forget the lookups
        gen = fdb.generation();
        cache = {};
        cache.gen = gen;
      }
      cache.src_key = skey;
      cache.src_seen = c.now;
    }
  }

  if (!(dmac[0] & 1)) {
    uint64_t dkey = Fdb::key(dmac, vlan);
    uint32_t to;
    if (dkey == cache.dst_key && cache.gen == gen) {
      to = cache.dst_port;
    } else {
      to = fdb.lookup(dkey);
      cache.dst_key = dkey;
      cache.dst_port = to;
    }
    if (to == src.id) {
      in.drops[kDropHairpin].inc();
      return;
    }
    if (Port* dst = c.sw->port_by_id(to)) {
      // An entry (static, or learned before the port changed) that names a port outside the VLAN: the frame
      // is not delivered, and not flooded either, so a wrong entry shows in the counters instead of leaking.
      if (!vlan_member(dst->cfg, vlan)) {
        in.drops[kDropVlanFilter].inc();
        return;
      }
      deliver(c, *dst, f, in, false);
      return;
    }
  }
  // Broadcast, multicast or unknown unicast: every other member of the VLAN.
  for (Port* dst : c.sw->ports())
    if (dst != &src && vlan_member(dst->cfg, vlan)) flood_to(c, *dst, f, in);
}

}  // namespace

void forward(PollContext& c, Port& src, VringCounters& in, FwdCache& cache, Frame& f) {
  forward_frame(c, src, in, cache, f);
}

namespace {

template <class Ops>
uint32_t poll_ring(PollContext& c, Port& src, typename Ops::Ring& txq) {
  if (txq.broken) return 0;
  if (txq.fault_skip) {
    // A guest memory fault (another port's) interrupted the forwarding of this frame: it goes back to the
    // driver now, used once, and is not forwarded again (those that got it before the fault keep it).
    txq.fault_skip = false;
    Ops::tx_skip(txq, *src.mem);
    txq.publish();
  }
  if (txq.work_debt) {
    // It took more than its share of the thread in an earlier pass: the other queues go first.
    txq.work_debt = txq.work_debt > kQueueWork ? txq.work_debt - kQueueWork : 0;
    return 0;
  }
  c.src_queue = txq.queue_pair;
  uint16_t n = Ops::tx_avail(txq);
  if (n == 0) return 0;
  if (n > kBurst) n = kBurst;
  const GuestMemory& mem = *src.mem;
  if (!txq.is_enabled()) {
    uint32_t k = Ops::drain(txq, mem, n);
    txq.publish();
    return k;
  }
  const uint32_t work0 = c.work;
  uint16_t taken = 0;
  c.tx_ring = &txq;
  while (taken < n) {
    Ops::tx_prefetch(txq, mem, static_cast<uint16_t>(n - taken));
    typename Ops::Chain chain;
    int nb;
    uint64_t total;
    ChainStatus st;
    if (!Ops::tx_next(txq, mem, c.src, &nb, &total, &chain, &st)) break;
    Frame f;
    if (st == ChainStatus::kOk) {
      if (frame_from_chain(src, txq, c.src, nb, total, f)) {
        int reason = vlan_classify(src.cfg, f, c.src, kMaxChainBufs, -1);
        if (reason < 0) {
          forward_frame(c, src, txq.counters, txq.fwd, f);
        } else {
          txq.counters.packets.inc();
          txq.counters.drops[reason].inc();
        }
      }
    } else {
      // Returned to the driver unread, so a bad chain costs the guest its buffer, not the ring.
      txq.counters.drops[kDropBadDescriptor].inc();
    }
    Ops::tx_done(txq, chain);
    taken++;
    if (c.work - work0 >= kQueueWork) break;  // the rest waits for the next pass
  }
  c.tx_ring = nullptr;
  const uint32_t spent = c.work - work0;
  if (spent > kQueueWork) txq.work_debt = spent - kQueueWork;
  txq.publish();
  return taken;
}

}  // namespace

uint32_t poll_txq(PollContext& c, Port& src, Vring& txq) { return poll_ring<SplitOps>(c, src, txq); }
uint32_t poll_txq(PollContext& c, Port& src, PackedVring& txq) { return poll_ring<PackedOps>(c, src, txq); }

namespace {

uint32_t vhost_poll(PollContext& c, const PollItem& it) { return poll_txq(c, *it.port, *it.txq); }

bool vhost_arm(const PollItem& it, bool on) {
  Vring& v = *it.txq;
  if (!on) {
    v.disable_kicks();
    return false;
  }
  v.enable_kicks();
  // SAFETY: items are built by rebuild() for polled() rings only, so avail is translated (translate() sized it);
  // a ring broken since (a fault, a bad chain) is not read, its memory may be gone.
  return !v.broken && __atomic_load_n(&v.avail->idx, __ATOMIC_ACQUIRE) != v.last_avail_idx;
}

int vhost_wake_fd(const PollItem& it) { return it.txq->kick_fd; }

uint32_t packed_poll(PollContext& c, const PollItem& it) { return poll_txq(c, *it.port, as_packed(*it.txq)); }

bool packed_arm(const PollItem& it, bool on) {
  PackedVring& v = as_packed(*it.txq);
  if (!on) {
    v.disable_kicks();
    return false;
  }
  v.enable_kicks();
  // SAFETY: as in vhost_arm; head_avail() reads the slot last_avail_idx < num of the translated ring.
  return !v.broken && v.head_avail();
}

}  // namespace

const PollOps kVhostPollOps = {vhost_poll, vhost_arm, vhost_wake_fd, true};
const PollOps kPackedPollOps = {packed_poll, packed_arm, vhost_wake_fd, true};

void flush_rx(PollContext& c) {
  for (Vring* v : c.dirty) v->publish();
  c.dirty.clear();
  for (PackedVring* v : c.dirty_packed) v->publish();
  c.dirty_packed.clear();
  if (!c.xdp_kicks.empty()) xdp_flush(c);
}

}  // namespace vs
