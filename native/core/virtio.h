// Layouts and bits from the virtio 1.1 spec (split and packed virtqueues, virtio-net) that the data plane uses.
#pragma once
#include <cstdint>

namespace vs {

// 2.6.5 The Virtqueue Descriptor Table
struct VringDesc {
  uint64_t addr;  // guest physical address
  uint32_t len;
  uint16_t flags;
  uint16_t next;
};
constexpr uint16_t VRING_DESC_F_NEXT = 1;
constexpr uint16_t VRING_DESC_F_WRITE = 2;
constexpr uint16_t VRING_DESC_F_INDIRECT = 4;

// 2.6.6 The Virtqueue Available Ring: flags, idx, ring[num], then used_event (with EVENT_IDX).
struct VringAvail {
  uint16_t flags;
  uint16_t idx;
  uint16_t ring[];
};
constexpr uint16_t VRING_AVAIL_F_NO_INTERRUPT = 1;

// 2.6.8 The Virtqueue Used Ring: flags, idx, ring[num], then avail_event (with EVENT_IDX).
struct VringUsedElem {
  uint32_t id;
  uint32_t len;
};
struct VringUsed {
  uint16_t flags;
  uint16_t idx;
  VringUsedElem ring[];
};
constexpr uint16_t VRING_USED_F_NO_NOTIFY = 1;

constexpr uint16_t kMaxQueueSize = 32768;  // 2.6: Queue Size ... maximum 32768

// 2.7.13 Packed Virtqueue Descriptor: one ring of these carries availability (AVAIL/USED flags against the wrap
// counters) and use (the device writes id and len back over the chain's first slot).
struct VringPackedDesc {
  uint64_t addr;
  uint32_t len;
  uint16_t id;  // buffer id: the driver's name for the chain, given back in the used descriptor
  uint16_t flags;
};
constexpr uint16_t VRING_PACKED_DESC_F_AVAIL = 1u << 7;
constexpr uint16_t VRING_PACKED_DESC_F_USED = 1u << 15;

// 2.7.14 Event Suppression Structure Format: the driver's (read by the device) and the device's (written by it).
struct VringPackedEvent {
  uint16_t off_wrap;  // bits 0-14 a ring offset, bit 15 the wrap counter it belongs to (RING_EVENT_FLAGS_DESC)
  uint16_t flags;
};
constexpr uint16_t RING_EVENT_FLAGS_ENABLE = 0;
constexpr uint16_t RING_EVENT_FLAGS_DISABLE = 1;
constexpr uint16_t RING_EVENT_FLAGS_DESC = 2;  // only with VIRTIO_RING_F_EVENT_IDX
constexpr uint16_t kPackedWrapBit = 1u << 15;  // the wrap counter's bit in off_wrap and in vring base indices

// Feature bits (5.1.3 and 6).
constexpr int VIRTIO_NET_F_CSUM = 0;
constexpr int VIRTIO_NET_F_GUEST_CSUM = 1;
constexpr int VIRTIO_NET_F_MTU = 3;
constexpr int VIRTIO_NET_F_GUEST_TSO4 = 7;
constexpr int VIRTIO_NET_F_GUEST_TSO6 = 8;
constexpr int VIRTIO_NET_F_GUEST_ECN = 9;
constexpr int VIRTIO_NET_F_GUEST_UFO = 10;
constexpr int VIRTIO_NET_F_HOST_TSO4 = 11;
constexpr int VIRTIO_NET_F_HOST_TSO6 = 12;
constexpr int VIRTIO_NET_F_HOST_ECN = 13;
constexpr int VIRTIO_NET_F_HOST_UFO = 14;
constexpr int VIRTIO_NET_F_MRG_RXBUF = 15;
constexpr int VIRTIO_NET_F_MQ = 22;
constexpr int VHOST_F_LOG_ALL = 26;  // vhost, not virtio: log every write into guest memory (migration)
constexpr int VIRTIO_RING_F_INDIRECT_DESC = 28;
constexpr int VIRTIO_RING_F_EVENT_IDX = 29;
constexpr int VIRTIO_F_VERSION_1 = 32;
constexpr int VIRTIO_F_RING_PACKED = 34;
constexpr int VIRTIO_F_IN_ORDER = 35;

inline bool has_feature(uint64_t features, int bit) { return (features >> bit) & 1; }

// 5.1.6 Device Operation: the header in front of every packet. With VERSION_1 or MRG_RXBUF it is 12 bytes
// (num_buffers included), else 10.
struct VirtioNetHdr {
  uint8_t flags;
  uint8_t gso_type;
  uint16_t hdr_len;
  uint16_t gso_size;
  uint16_t csum_start;
  uint16_t csum_offset;
  uint16_t num_buffers;
};
constexpr uint8_t VIRTIO_NET_HDR_F_NEEDS_CSUM = 1;
constexpr uint8_t VIRTIO_NET_HDR_F_DATA_VALID = 2;
constexpr uint8_t VIRTIO_NET_HDR_GSO_NONE = 0;
constexpr uint8_t VIRTIO_NET_HDR_GSO_TCPV4 = 1;
constexpr uint8_t VIRTIO_NET_HDR_GSO_UDP = 3;
constexpr uint8_t VIRTIO_NET_HDR_GSO_TCPV6 = 4;
constexpr uint8_t VIRTIO_NET_HDR_GSO_ECN = 0x80;

// 2.6.7.2: the device must notify when the used index passes the driver's used_event.
inline bool vring_need_event(uint16_t event_idx, uint16_t new_idx, uint16_t old_idx) {
  return static_cast<uint16_t>(new_idx - event_idx - 1) < static_cast<uint16_t>(new_idx - old_idx);
}

}  // namespace vs
