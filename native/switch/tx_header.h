// What a driver's virtio-net header may ask of the switch on transmit (virtio 1.1 5.1.6.2): only offloads its
// port negotiated, with values that bound the work one frame can cause. Checked once, when a frame is taken from
// a guest's transmit ring, before anything acts on the header.
#pragma once
#include <cstdint>

#include "core/counters.h"
#include "switch/port.h"
#include "core/virtio.h"

namespace vs {

// The smallest gso_size (MSS) we accept: Linux's TCP_MIN_MSS, (60 + 60 + 8) - (20 + 20), the smallest MSS a
// Linux TCP socket can be set to (TCP_MAXSEG). It holds for IPv6 too (a peer may advertise an MSS below what
// the 1280-byte IPv6 minimum MTU leaves, so a higher IPv6 bound would cut legal flows). It caps one 64 KB
// frame at 745 segments per destination, where gso_size 1 made ~65,000.
constexpr uint16_t kMinGsoSize = 88;

// Returns -1 when the header may be acted on, else the drop reason. Clears what the device must ignore.
inline int check_tx_header(const Port& src, VirtioNetHdr& h) {
  // 5.1.6.2.2: the device ignores flag bits it does not know, and DATA_VALID is one on transmit: passed on, it
  // would tell a receiver with GUEST_CSUM that a checksum nobody verified is good.
  h.flags &= VIRTIO_NET_HDR_F_NEEDS_CSUM;
  if (h.flags && !src.has(VIRTIO_NET_F_CSUM)) return kDropOffloadNotNegotiated;
  const uint8_t gso = h.gso_type & ~VIRTIO_NET_HDR_GSO_ECN;
  if (gso == VIRTIO_NET_HDR_GSO_NONE) {
    if (h.gso_type) return kDropBadHeader;  // ECN without a GSO type
    h.gso_size = 0;
    h.hdr_len = 0;
    return -1;
  }
  const int want = gso == VIRTIO_NET_HDR_GSO_TCPV4 ? VIRTIO_NET_F_HOST_TSO4
                   : gso == VIRTIO_NET_HDR_GSO_TCPV6 ? VIRTIO_NET_F_HOST_TSO6
                   : gso == VIRTIO_NET_HDR_GSO_UDP   ? VIRTIO_NET_F_HOST_UFO
                                                     : -1;
  if (want < 0) return kDropBadHeader;
  if (!src.has(want) || ((h.gso_type & VIRTIO_NET_HDR_GSO_ECN) && !src.has(VIRTIO_NET_F_HOST_ECN)))
    return kDropOffloadNotNegotiated;
  // 5.1.6.2.1: a GSO frame asks for its checksum too, and gso_size is its MSS: each segment's payload must fit
  // the source's MTU.
  if (!(h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) || h.gso_size < kMinGsoSize || h.gso_size > src.cfg.mtu)
    return kDropBadHeader;
  return -1;
}

}  // namespace vs
