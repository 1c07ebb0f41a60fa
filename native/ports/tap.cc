#include "ports/tap.h"

#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cstring>

#include "switch/datapath.h"

namespace vs {

namespace {

uint32_t poll(PollContext& c, Port& p, NicQueue& q) {
  uint32_t n = 0;
  for (; n < kBurst; n++) {
    ssize_t r = read(q.fd, q.tap->bytes.get(), TapBuffer::kLen);
    if (r < static_cast<ssize_t>(kVnetHdr)) break;
    // SAFETY: our own buffer, of which read() filled r <= kLen bytes: the vnet header and r - kVnetHdr after it.
    uint8_t* b = q.tap->bytes.get();
    nic_receive(c, p, q, b, b + kVnetHdr, static_cast<uint32_t>(r - kVnetHdr), false, 0);
  }
  return n;
}

int send(PollContext& c, Port& dst, NicQueue& q, const Frame& f) {
  KernelTx tx;
  if (int reason = kernel_tx_prepare(dst, q, f, tx); reason >= 0) return reason;
  return kernel_tx_done(q, f, tx, writev(q.fd, tx.iov, tx.n));
}

}  // namespace

const NicOps kTapOps = {NicBackend::kTap, "tap", poll, send};

std::unique_ptr<NicQueue> open_tap(const std::string& name, std::string& err) {
  auto q = std::make_unique<NicQueue>(kTapOps);
  if (name.empty() || name.size() >= IFNAMSIZ) {
    err = "tap name must be 1.." + std::to_string(IFNAMSIZ - 1) + " characters";
    return nullptr;
  }
  q->fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (q->fd < 0) {
    err = nic_sys_err("/dev/net/tun");
    return nullptr;
  }
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, name.c_str(), IFNAMSIZ - 1);
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
  if (ioctl(q->fd, TUNSETIFF, &ifr) < 0) {
    err = nic_sys_err("TUNSETIFF");
    return nullptr;
  }
  // The kernel may hand us checksum-pending and GSO frames: guests take them as they are.
  unsigned offload = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6;
  if (ioctl(q->fd, TUNSETOFFLOAD, offload) < 0) ioctl(q->fd, TUNSETOFFLOAD, 0u);
  q->tap = std::make_unique<TapBuffer>();
  if (!nic_bring_up(name.c_str(), err)) return nullptr;
  return q;
}

}  // namespace vs
