// The packet path of NIC queues: frames from an AF_PACKET receive ring or a tap device into forward(),
// and frames out to the wire by one sendmsg()/writev() whose iovecs point into the source's buffers.
#include <linux/if_packet.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "datapath.h"
#include "frame.h"
#include "nic.h"
#include "nic_xdp.h"
#include "port.h"
#include "vlan.h"

namespace vs {

namespace {

// The 10-byte header of PACKET_VNET_HDR and IFF_VNET_HDR (virtio_net_hdr without num_buffers).
constexpr uint32_t kVnetHdr = 10;

}  // namespace

// Parses one received frame (after its vnet header) into f and forwards it.
void nic_receive(PollContext& c, Port& p, NicQueue& q, const uint8_t* vnet, uint8_t* data, uint32_t len,
             bool offloaded_tag, uint16_t tci) {
  Frame f;
  Buf pieces[2];  // the frame, or the two sides of a tag cut out of it
  f.hdr = {};
  std::memcpy(&f.hdr, vnet, kVnetHdr);
  if (len < kEthHdr) {
    q.rx.packets.inc();
    q.rx.drops[kDropRunt].inc();
    return;
  }
  pieces[0] = {data, len};
  f.bufs = pieces;
  f.nbufs = 1;
  f.off = 0;
  f.len = len;
  std::memset(f.eth, 0, sizeof f.eth);
  std::memcpy(f.eth, data, len < sizeof f.eth ? len : sizeof f.eth);
  int reason = vlan_classify(p.cfg, f, pieces, 2, offloaded_tag ? tci : -1);
  if (reason >= 0) {
    q.rx.packets.inc();
    q.rx.drops[reason].inc();
    return;
  }
  forward(c, p, q.rx, q.fwd, f);
}

namespace {

uint32_t poll_af_packet(PollContext& c, Port& p, NicQueue& q) {
  auto* bd = reinterpret_cast<tpacket_block_desc*>(q.ring + size_t(q.block_i) * q.block_size);
  if (!(__atomic_load_n(&bd->hdr.bh1.block_status, __ATOMIC_ACQUIRE) & TP_STATUS_USER)) return 0;
  uint32_t num = bd->hdr.bh1.num_pkts;
  uint64_t off = bd->hdr.bh1.offset_to_first_pkt;
  uint8_t* block = reinterpret_cast<uint8_t*>(bd);
  for (uint32_t i = 0; i < num; i++) {
    // The kernel writes the ring, but we still keep every access inside the block.
    if (off + sizeof(tpacket3_hdr) > q.block_size) break;
    auto* h = reinterpret_cast<tpacket3_hdr*>(block + off);
    uint64_t mac = off + h->tp_mac;
    if (h->tp_mac < kVnetHdr || mac + h->tp_snaplen > q.block_size) break;
    bool tag = (h->tp_status & TP_STATUS_VLAN_VALID) != 0;
    if (tag && (h->tp_status & TP_STATUS_VLAN_TPID_VALID) && h->hv1.tp_vlan_tpid != 0x8100) {
      q.rx.packets.inc();
      q.rx.drops[kDropVlanFilter].inc();  // an S-tag the kernel took off: 802.1Q is all we classify
    } else {
      nic_receive(c, p, q, block + mac - kVnetHdr, block + mac, h->tp_snaplen, tag, h->hv1.tp_vlan_tci);
    }
    if (!h->tp_next_offset) break;
    off += h->tp_next_offset;
  }
  __atomic_store_n(&bd->hdr.bh1.block_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
  q.block_i = (q.block_i + 1) % q.block_nr;
  return num;
}

uint32_t poll_tap(PollContext& c, Port& p, NicQueue& q) {
  uint32_t n = 0;
  for (; n < kBurst; n++) {
    ssize_t r = read(q.fd, q.scratch.get(), NicQueue::kScratchLen);
    if (r < static_cast<ssize_t>(kVnetHdr)) break;
    uint8_t* b = q.scratch.get();
    nic_receive(c, p, q, b, b + kVnetHdr, static_cast<uint32_t>(r - kVnetHdr), false, 0);
  }
  return n;
}

}  // namespace

uint32_t poll_nic(PollContext& c, Port& p, NicQueue& q) {
  c.src_queue = 0;  // NIC frames go to a guest's first receive queue of this thread
  switch (q.backend) {
    case NicBackend::kTap: return poll_tap(c, p, q);
    case NicBackend::kAfXdp: return poll_af_xdp(c, p, q);
    default: return poll_af_packet(c, p, q);
  }
}

int nic_send(PollContext& c, Port& dst, const Frame& f) {
  c.work += work_units(f.len);
  NicQueue& q = *dst.nicq[c.thread % dst.nicq.size()];
  if (q.backend == NicBackend::kAfXdp) return xdp_send(c, dst, q, f);
  bool gso = (f.hdr.gso_type & ~VIRTIO_NET_HDR_GSO_ECN) != VIRTIO_NET_HDR_GSO_NONE;
  if (!gso && f.len > dst.cfg.mtu + kEthHdr) {
    q.tx.drops[kDropMtu].inc();
    return kDropMtu;
  }
  const bool tag = vlan_tagged_on(dst.cfg, f.vlan);
  uint8_t vnet[kVnetHdr];
  VirtioNetHdr h = f.hdr;
  h.flags &= VIRTIO_NET_HDR_F_NEEDS_CSUM;  // DATA_VALID means nothing on transmit
  if (tag) vlan_shift_offsets(h, static_cast<int>(kVlanTag));
  std::memcpy(vnet, &h, kVnetHdr);
  uint8_t tag_bytes[kVlanTag];
  vlan_tag_bytes(f.vlan, tag_bytes);
  iovec iov[kMaxChainBufs + 4];
  int n = 0;
  // The Ethernet header from our copy, the one forward() checked (the source's memory may have changed since),
  // with the tag after the MAC addresses on trunks.
  const uint64_t eth = frame_eth_len(f);
  iov[n++] = {vnet, kVnetHdr};
  iov[n++] = {const_cast<uint8_t*>(f.eth), 12};
  if (tag) iov[n++] = {tag_bytes, kVlanTag};
  if (eth > 12) iov[n++] = {const_cast<uint8_t*>(f.eth) + 12, eth - 12};
  // The rest straight from the source's buffers: the kernel's copy is the only one.
  // SAFETY: f's pieces were bounds-checked when the frame was taken; the iovecs stay inside them.
  uint64_t skip = f.off + eth, left = f.len - eth;
  for (int i = 0; i < f.nbufs && left && n < kMaxChainBufs + 4; i++) {
    if (skip >= f.bufs[i].len) {
      skip -= f.bufs[i].len;
      continue;
    }
    uint64_t k = f.bufs[i].len - skip;
    if (k > left) k = left;
    iov[n++] = {f.bufs[i].addr + skip, k};
    left -= k;
    skip = 0;
  }
  msghdr msg{};
  msg.msg_iov = iov;
  msg.msg_iovlen = n;
  ssize_t r = q.backend == NicBackend::kTap ? writev(q.fd, iov, n) : sendmsg(q.fd, &msg, MSG_DONTWAIT);
  // Seen here: the first send on a fresh AF_PACKET socket can fail with ENETDOWN although the link is up;
  // the same send again goes through. One retry, for that case only.
  if (r < 0 && errno == ENETDOWN && q.backend == NicBackend::kAfPacket) r = sendmsg(q.fd, &msg, MSG_DONTWAIT);
  if (r < 0) {
    q.tx_errors.inc();
    q.tx.drops[kDropNoRxBuffer].inc();  // the kernel's queue is full (EAGAIN, ENOBUFS) or the link is down
    return kDropNoRxBuffer;
  }
  q.tx.packets.inc();
  q.tx.bytes.add(f.len + (tag ? kVlanTag : 0));
  return -1;
}

}  // namespace vs
