// What every NIC backend shares: receiving into forward(), the dispatch to the backend's operations, the
// iovecs of a frame toward the kernel, and bringing an interface up.
#include "ports/nic.h"

#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "ports/af_packet.h"
#include "ports/af_xdp.h"
#include "ports/tap.h"
#include "switch/datapath.h"
#include "switch/frame.h"
#include "switch/port.h"
#include "switch/vlan.h"

namespace vs {

NicQueue::NicQueue(const NicOps& o) : ops(&o) {}

NicQueue::~NicQueue() {
  // The backend's state first (it may hold mappings of the socket), then the socket.
  af_packet.reset();
  tap.reset();
  xsk.reset();
  if (fd >= 0) close(fd);
}

const char* nic_xdp_mode(const NicQueue& q) {
  if (q.ops->backend != NicBackend::kAfXdp || !q.xdp_prog) return "";
  return q.xdp_prog->native ? "native" : "generic";
}

void nic_receive(PollContext& c, Port& p, NicQueue& q, const uint8_t* vnet, uint8_t* data, uint32_t len,
                 bool offloaded_tag, uint16_t tci) {
  Frame f;
  Buf pieces[2];  // the frame, or the two sides of a tag cut out of it
  f.hdr = {};
  // SAFETY: every backend passes kVnetHdr readable bytes at vnet and len at data, in memory it owns or checked
  // (af_packet.cc: both inside the ring block; af_xdp.cc: a header of its own, the frame inside the UMEM; tap.cc:
  // its buffer): no guest memory.
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

uint32_t nic_poll(PollContext& c, const PollItem& it) {
  c.src_queue = 0;  // NIC frames go to a guest's first receive queue of this thread
  return it.nicq->ops->poll(c, *it.port, *it.nicq);
}

bool nic_arm(const PollItem&, bool) { return false; }  // the socket wakes the thread by itself

int nic_wake_fd(const PollItem& it) { return it.nicq->fd; }

}  // namespace

const PollOps kNicPollOps = {nic_poll, nic_arm, nic_wake_fd, false};

int nic_send(PollContext& c, Port& dst, const Frame& f) {
  c.work += work_units(f.len);
  NicQueue& q = *dst.nicq[c.thread % dst.nicq.size()];
  return q.ops->send(c, dst, q, f);
}

int kernel_tx_prepare(const Port& dst, NicQueue& q, const Frame& f, KernelTx& tx) {
  bool gso = (f.hdr.gso_type & ~VIRTIO_NET_HDR_GSO_ECN) != VIRTIO_NET_HDR_GSO_NONE;
  if (!gso && f.len > dst.cfg.mtu + kEthHdr) {
    q.tx.drops[kDropMtu].inc();
    return kDropMtu;
  }
  tx.tagged = vlan_tagged_on(dst.cfg, f.vlan);
  VirtioNetHdr h = f.hdr;
  h.flags &= VIRTIO_NET_HDR_F_NEEDS_CSUM;  // DATA_VALID means nothing on transmit
  if (tx.tagged) vlan_shift_offsets(h, static_cast<int>(kVlanTag));
  std::memcpy(tx.vnet, &h, kVnetHdr);
  vlan_tag_bytes(f.vlan, tx.tag);
  int n = 0;
  // The Ethernet header from our copy, the one forward() checked (the source's memory may have changed since),
  // with the tag after the MAC addresses on trunks.
  const uint64_t eth = frame_eth_len(f);
  tx.iov[n++] = {tx.vnet, kVnetHdr};
  tx.iov[n++] = {const_cast<uint8_t*>(f.eth), 12};
  if (tx.tagged) tx.iov[n++] = {tx.tag, kVlanTag};
  if (eth > 12) tx.iov[n++] = {const_cast<uint8_t*>(f.eth) + 12, eth - 12};
  // The rest straight from the source's buffers: the kernel's copy is the only one.
  // SAFETY: f's pieces were bounds-checked when the frame was taken; the iovecs stay inside them. The kernel reads
  // guest memory in sendmsg()/writev() and fails with EFAULT, not SIGBUS, where a truncated file left no page.
  uint64_t skip = f.off + eth, left = f.len - eth;
  for (int i = 0; i < f.nbufs && left && n < kMaxChainBufs + 4; i++) {
    if (skip >= f.bufs[i].len) {
      skip -= f.bufs[i].len;
      continue;
    }
    uint64_t k = f.bufs[i].len - skip;
    if (k > left) k = left;
    tx.iov[n++] = {f.bufs[i].addr + skip, k};
    left -= k;
    skip = 0;
  }
  tx.n = n;
  return -1;
}

int kernel_tx_done(NicQueue& q, const Frame& f, const KernelTx& tx, ssize_t r) {
  if (r < 0) {
    q.tx_errors.inc();
    q.tx.drops[kDropNoRxBuffer].inc();  // the kernel's queue is full (EAGAIN, ENOBUFS) or the link is down
    return kDropNoRxBuffer;
  }
  q.tx.packets.inc();
  q.tx.bytes.add(f.len + (tx.tagged ? kVlanTag : 0));
  return -1;
}

std::string nic_sys_err(const std::string& what) { return what + ": " + std::strerror(errno); }

bool nic_bring_up(const char* name, std::string& err) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) {
    err = nic_sys_err("socket");
    return false;
  }
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
  bool ok = ioctl(s, SIOCGIFFLAGS, &ifr) == 0;
  if (ok && !(ifr.ifr_flags & IFF_UP)) {
    ifr.ifr_flags |= IFF_UP;
    ok = ioctl(s, SIOCSIFFLAGS, &ifr) == 0;
  }
  if (!ok) err = nic_sys_err("bringing the interface up");
  close(s);
  return ok;
}

}  // namespace vs
