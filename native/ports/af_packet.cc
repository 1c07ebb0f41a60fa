#include "ports/af_packet.h"

#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <sys/mman.h>
#include <sys/socket.h>

#include <cerrno>

#include "switch/datapath.h"
#include "switch/frame.h"

namespace vs {

#ifndef PACKET_IGNORE_OUTGOING
#define PACKET_IGNORE_OUTGOING 23
#endif

AfPacketRing::~AfPacketRing() {
  if (ring) munmap(ring, ring_len);
}

namespace {

uint32_t poll(PollContext& c, Port& p, NicQueue& q) {
  AfPacketRing& r = *q.af_packet;
  // SAFETY: block_i < block_nr, so the block and its header lie in the ring we mapped (ring_len bytes).
  auto* bd = reinterpret_cast<tpacket_block_desc*>(r.ring + size_t(r.block_i) * r.block_size);
  if (!(__atomic_load_n(&bd->hdr.bh1.block_status, __ATOMIC_ACQUIRE) & TP_STATUS_USER)) return 0;
  uint32_t num = bd->hdr.bh1.num_pkts;
  uint64_t off = bd->hdr.bh1.offset_to_first_pkt;
  uint8_t* block = reinterpret_cast<uint8_t*>(bd);
  for (uint32_t i = 0; i < num; i++) {
    // The kernel writes the ring, but we still keep every access inside the block.
    if (off + sizeof(tpacket3_hdr) > r.block_size) break;
    // SAFETY: the whole tpacket3_hdr lies in the block (checked just above).
    auto* h = reinterpret_cast<tpacket3_hdr*>(block + off);
    uint64_t mac = off + h->tp_mac;
    // SAFETY: with these checks the vnet header in front of the frame and its tp_snaplen bytes lie in the block.
    if (h->tp_mac < kVnetHdr || mac + h->tp_snaplen > r.block_size) break;
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
  r.block_i = (r.block_i + 1) % r.block_nr;
  return num;
}

int send(PollContext& c, Port& dst, NicQueue& q, const Frame& f) {
  KernelTx tx;
  if (int reason = kernel_tx_prepare(dst, q, f, tx); reason >= 0) return reason;
  msghdr msg{};
  msg.msg_iov = tx.iov;
  msg.msg_iovlen = tx.n;
  ssize_t r = sendmsg(q.fd, &msg, MSG_DONTWAIT);
  // Seen here: the first send on a fresh AF_PACKET socket can fail with ENETDOWN although the link is up;
  // the same send again goes through. One retry, for that case only.
  if (r < 0 && errno == ENETDOWN) r = sendmsg(q.fd, &msg, MSG_DONTWAIT);
  return kernel_tx_done(q, f, tx, r);
}

}  // namespace

const NicOps kAfPacketOps = {NicBackend::kAfPacket, "af_packet", poll, send};

std::unique_ptr<NicQueue> open_af_packet(const std::string& iface, int queues, uint16_t fanout_id, std::string& err) {
  auto q = std::make_unique<NicQueue>(kAfPacketOps);
  q->af_packet = std::make_unique<AfPacketRing>();
  AfPacketRing& r = *q->af_packet;
  if (iface.empty() || iface.size() >= IFNAMSIZ) {
    err = "interface name must be 1.." + std::to_string(IFNAMSIZ - 1) + " characters";
    return nullptr;
  }
  unsigned ifindex = if_nametoindex(iface.c_str());
  if (!ifindex) {
    err = "no interface " + iface;
    return nullptr;
  }
  q->fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, htons(ETH_P_ALL));
  if (q->fd < 0) {
    err = nic_sys_err("AF_PACKET socket");
    return nullptr;
  }
  int v3 = TPACKET_V3, one = 1;
  if (setsockopt(q->fd, SOL_PACKET, PACKET_VERSION, &v3, sizeof v3) < 0) {
    err = nic_sys_err("PACKET_VERSION");
    return nullptr;
  }
  // Offloads travel in a virtio-net header in front of each frame, both ways: GSO frames stay whole.
  if (setsockopt(q->fd, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof one) < 0) {
    err = nic_sys_err("PACKET_VNET_HDR");
    return nullptr;
  }
  // Frames we send must not come back to our own receive ring.
  setsockopt(q->fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one);
  // Blocks large enough for a 64 KiB GSO frame; a partly filled block is handed over after 1 ms.
  tpacket_req3 req{};
  req.tp_block_size = 1 << 18;
  req.tp_block_nr = 16;
  req.tp_frame_size = 1 << 11;
  req.tp_frame_nr = req.tp_block_size / req.tp_frame_size * req.tp_block_nr;
  req.tp_retire_blk_tov = 1;
  if (setsockopt(q->fd, SOL_PACKET, PACKET_RX_RING, &req, sizeof req) < 0) {
    err = nic_sys_err("PACKET_RX_RING");
    return nullptr;
  }
  r.block_size = req.tp_block_size;
  r.block_nr = req.tp_block_nr;
  r.ring_len = size_t(req.tp_block_size) * req.tp_block_nr;
  void* m = mmap(nullptr, r.ring_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_LOCKED, q->fd, 0);
  if (m == MAP_FAILED) m = mmap(nullptr, r.ring_len, PROT_READ | PROT_WRITE, MAP_SHARED, q->fd, 0);
  if (m == MAP_FAILED) {
    err = nic_sys_err("mmap of the receive ring");
    return nullptr;
  }
  r.ring = static_cast<uint8_t*>(m);
  sockaddr_ll sll{};
  sll.sll_family = AF_PACKET;
  sll.sll_protocol = htons(ETH_P_ALL);
  sll.sll_ifindex = static_cast<int>(ifindex);
  if (bind(q->fd, reinterpret_cast<sockaddr*>(&sll), sizeof sll) < 0) {
    err = nic_sys_err("bind");
    return nullptr;
  }
  // Guests' MAC addresses are not the interface's: take every frame on the wire.
  packet_mreq mr{};
  mr.mr_ifindex = static_cast<int>(ifindex);
  mr.mr_type = PACKET_MR_PROMISC;
  if (setsockopt(q->fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof mr) < 0) {
    err = nic_sys_err("PACKET_MR_PROMISC");
    return nullptr;
  }
  if (queues > 1) {
    int fanout = fanout_id | (PACKET_FANOUT_HASH << 16);
    if (setsockopt(q->fd, SOL_PACKET, PACKET_FANOUT, &fanout, sizeof fanout) < 0) {
      err = nic_sys_err("PACKET_FANOUT");
      return nullptr;
    }
  }
  if (!nic_bring_up(iface.c_str(), err)) return nullptr;
  return q;
}

}  // namespace vs
