#include "nic.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if_packet.h>
#include <linux/if_tun.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "nic_xdp.h"

namespace vs {

#ifndef PACKET_IGNORE_OUTGOING
#define PACKET_IGNORE_OUTGOING 23
#endif

NicQueue::~NicQueue() {
  if (ring) munmap(ring, ring_len);
  if (fd >= 0) close(fd);
}

const char* nic_backend_name(const NicQueue& q) {
  switch (q.backend) {
    case NicBackend::kTap: return "tap";
    case NicBackend::kAfXdp: return "af_xdp";
    default: return "af_packet";
  }
}

const char* nic_xdp_mode(const NicQueue& q) {
  if (q.backend != NicBackend::kAfXdp || !q.xdp_prog) return "";
  return q.xdp_prog->native ? "native" : "generic";
}

static std::string sys_err(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

static bool set_up(const char* name, std::string& err) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) {
    err = sys_err("socket");
    return false;
  }
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
  bool ok = ioctl(s, SIOCGIFFLAGS, &ifr) == 0;
  if (ok && !(ifr.ifr_flags & IFF_UP)) {
    ifr.ifr_flags |= IFF_UP;
    ok = ioctl(s, SIOCSIFFLAGS, &ifr) == 0;
  }
  if (!ok) err = sys_err("bringing the interface up");
  close(s);
  return ok;
}

std::unique_ptr<NicQueue> open_af_packet(const std::string& iface, int queues, uint16_t fanout_id, std::string& err) {
  auto q = std::make_unique<NicQueue>();
  q->backend = NicBackend::kAfPacket;
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
    err = sys_err("AF_PACKET socket");
    return nullptr;
  }
  int v3 = TPACKET_V3, one = 1;
  if (setsockopt(q->fd, SOL_PACKET, PACKET_VERSION, &v3, sizeof v3) < 0) {
    err = sys_err("PACKET_VERSION");
    return nullptr;
  }
  // Offloads travel in a virtio-net header in front of each frame, both ways: GSO frames stay whole.
  if (setsockopt(q->fd, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof one) < 0) {
    err = sys_err("PACKET_VNET_HDR");
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
    err = sys_err("PACKET_RX_RING");
    return nullptr;
  }
  q->block_size = req.tp_block_size;
  q->block_nr = req.tp_block_nr;
  q->ring_len = size_t(req.tp_block_size) * req.tp_block_nr;
  void* m = mmap(nullptr, q->ring_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_LOCKED, q->fd, 0);
  if (m == MAP_FAILED) m = mmap(nullptr, q->ring_len, PROT_READ | PROT_WRITE, MAP_SHARED, q->fd, 0);
  if (m == MAP_FAILED) {
    err = sys_err("mmap of the receive ring");
    return nullptr;
  }
  q->ring = static_cast<uint8_t*>(m);
  sockaddr_ll sll{};
  sll.sll_family = AF_PACKET;
  sll.sll_protocol = htons(ETH_P_ALL);
  sll.sll_ifindex = static_cast<int>(ifindex);
  if (bind(q->fd, reinterpret_cast<sockaddr*>(&sll), sizeof sll) < 0) {
    err = sys_err("bind");
    return nullptr;
  }
  // Guests' MAC addresses are not the interface's: take every frame on the wire.
  packet_mreq mr{};
  mr.mr_ifindex = static_cast<int>(ifindex);
  mr.mr_type = PACKET_MR_PROMISC;
  if (setsockopt(q->fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof mr) < 0) {
    err = sys_err("PACKET_MR_PROMISC");
    return nullptr;
  }
  if (queues > 1) {
    int fanout = fanout_id | (PACKET_FANOUT_HASH << 16);
    if (setsockopt(q->fd, SOL_PACKET, PACKET_FANOUT, &fanout, sizeof fanout) < 0) {
      err = sys_err("PACKET_FANOUT");
      return nullptr;
    }
  }
  if (!set_up(iface.c_str(), err)) return nullptr;
  return q;
}

std::unique_ptr<NicQueue> open_tap(const std::string& name, std::string& err) {
  auto q = std::make_unique<NicQueue>();
  q->backend = NicBackend::kTap;
  if (name.empty() || name.size() >= IFNAMSIZ) {
    err = "tap name must be 1.." + std::to_string(IFNAMSIZ - 1) + " characters";
    return nullptr;
  }
  q->fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (q->fd < 0) {
    err = sys_err("/dev/net/tun");
    return nullptr;
  }
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, name.c_str(), IFNAMSIZ - 1);
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
  if (ioctl(q->fd, TUNSETIFF, &ifr) < 0) {
    err = sys_err("TUNSETIFF");
    return nullptr;
  }
  // The kernel may hand us checksum-pending and GSO frames: guests take them as they are.
  unsigned offload = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6;
  if (ioctl(q->fd, TUNSETOFFLOAD, offload) < 0) ioctl(q->fd, TUNSETOFFLOAD, 0u);
  q->scratch.reset(new uint8_t[NicQueue::kScratchLen]);
  if (!set_up(name.c_str(), err)) return nullptr;
  return q;
}

}  // namespace vs
