// Feature bits: virtio-net device bits (virtio spec 5.1.3), transport/ring bits (virtio spec 6) and the
// vhost-user protocol feature bits (QEMU docs/interop/vhost-user.rst). Names are kept verbatim from the
// specs so log lines and API output can be grepped against them.

// ---- virtio-net device features ----
export const VIRTIO_NET_F_CSUM = 0;
export const VIRTIO_NET_F_GUEST_CSUM = 1;
export const VIRTIO_NET_F_CTRL_GUEST_OFFLOADS = 2;
export const VIRTIO_NET_F_MTU = 3;
export const VIRTIO_NET_F_MAC = 5;
export const VIRTIO_NET_F_GUEST_TSO4 = 7;
export const VIRTIO_NET_F_GUEST_TSO6 = 8;
export const VIRTIO_NET_F_GUEST_ECN = 9;
export const VIRTIO_NET_F_GUEST_UFO = 10;
export const VIRTIO_NET_F_HOST_TSO4 = 11;
export const VIRTIO_NET_F_HOST_TSO6 = 12;
export const VIRTIO_NET_F_HOST_ECN = 13;
export const VIRTIO_NET_F_HOST_UFO = 14;
export const VIRTIO_NET_F_MRG_RXBUF = 15;
export const VIRTIO_NET_F_STATUS = 16;
export const VIRTIO_NET_F_CTRL_VQ = 17;
export const VIRTIO_NET_F_CTRL_RX = 18;
export const VIRTIO_NET_F_CTRL_VLAN = 19;
export const VIRTIO_NET_F_GUEST_ANNOUNCE = 21;
export const VIRTIO_NET_F_MQ = 22;
export const VIRTIO_NET_F_CTRL_MAC_ADDR = 23;

// ---- transport / ring features ----
export const VIRTIO_F_NOTIFY_ON_EMPTY = 24;
export const VIRTIO_F_ANY_LAYOUT = 27;
export const VIRTIO_RING_F_INDIRECT_DESC = 28;
export const VIRTIO_RING_F_EVENT_IDX = 29;
/** The virtio "UNUSED" bit 30, reused by vhost-user to announce protocol feature negotiation. */
export const VHOST_USER_F_PROTOCOL_FEATURES = 30;
export const VIRTIO_F_VERSION_1 = 32;
export const VIRTIO_F_ACCESS_PLATFORM = 33;
export const VIRTIO_F_RING_PACKED = 34;
export const VIRTIO_F_IN_ORDER = 35;
export const VIRTIO_F_ORDER_PLATFORM = 36;
export const VIRTIO_F_SR_IOV = 37;
export const VIRTIO_F_NOTIFICATION_DATA = 38;
export const VIRTIO_F_RING_RESET = 40;
/** vhost (not virtio) bit: dirty-page logging for live migration. */
export const VHOST_F_LOG_ALL = 26;

const FEATURE_NAMES: Record<number, string> = {
  [VIRTIO_NET_F_CSUM]: 'VIRTIO_NET_F_CSUM',
  [VIRTIO_NET_F_GUEST_CSUM]: 'VIRTIO_NET_F_GUEST_CSUM',
  [VIRTIO_NET_F_CTRL_GUEST_OFFLOADS]: 'VIRTIO_NET_F_CTRL_GUEST_OFFLOADS',
  [VIRTIO_NET_F_MTU]: 'VIRTIO_NET_F_MTU',
  [VIRTIO_NET_F_MAC]: 'VIRTIO_NET_F_MAC',
  [VIRTIO_NET_F_GUEST_TSO4]: 'VIRTIO_NET_F_GUEST_TSO4',
  [VIRTIO_NET_F_GUEST_TSO6]: 'VIRTIO_NET_F_GUEST_TSO6',
  [VIRTIO_NET_F_GUEST_ECN]: 'VIRTIO_NET_F_GUEST_ECN',
  [VIRTIO_NET_F_GUEST_UFO]: 'VIRTIO_NET_F_GUEST_UFO',
  [VIRTIO_NET_F_HOST_TSO4]: 'VIRTIO_NET_F_HOST_TSO4',
  [VIRTIO_NET_F_HOST_TSO6]: 'VIRTIO_NET_F_HOST_TSO6',
  [VIRTIO_NET_F_HOST_ECN]: 'VIRTIO_NET_F_HOST_ECN',
  [VIRTIO_NET_F_HOST_UFO]: 'VIRTIO_NET_F_HOST_UFO',
  [VIRTIO_NET_F_MRG_RXBUF]: 'VIRTIO_NET_F_MRG_RXBUF',
  [VIRTIO_NET_F_STATUS]: 'VIRTIO_NET_F_STATUS',
  [VIRTIO_NET_F_CTRL_VQ]: 'VIRTIO_NET_F_CTRL_VQ',
  [VIRTIO_NET_F_CTRL_RX]: 'VIRTIO_NET_F_CTRL_RX',
  [VIRTIO_NET_F_CTRL_VLAN]: 'VIRTIO_NET_F_CTRL_VLAN',
  [VIRTIO_NET_F_GUEST_ANNOUNCE]: 'VIRTIO_NET_F_GUEST_ANNOUNCE',
  [VIRTIO_NET_F_MQ]: 'VIRTIO_NET_F_MQ',
  [VIRTIO_NET_F_CTRL_MAC_ADDR]: 'VIRTIO_NET_F_CTRL_MAC_ADDR',
  [VIRTIO_F_NOTIFY_ON_EMPTY]: 'VIRTIO_F_NOTIFY_ON_EMPTY',
  [VHOST_F_LOG_ALL]: 'VHOST_F_LOG_ALL',
  [VIRTIO_F_ANY_LAYOUT]: 'VIRTIO_F_ANY_LAYOUT',
  [VIRTIO_RING_F_INDIRECT_DESC]: 'VIRTIO_RING_F_INDIRECT_DESC',
  [VIRTIO_RING_F_EVENT_IDX]: 'VIRTIO_RING_F_EVENT_IDX',
  [VHOST_USER_F_PROTOCOL_FEATURES]: 'VHOST_USER_F_PROTOCOL_FEATURES',
  [VIRTIO_F_VERSION_1]: 'VIRTIO_F_VERSION_1',
  [VIRTIO_F_ACCESS_PLATFORM]: 'VIRTIO_F_ACCESS_PLATFORM',
  [VIRTIO_F_RING_PACKED]: 'VIRTIO_F_RING_PACKED',
  [VIRTIO_F_IN_ORDER]: 'VIRTIO_F_IN_ORDER',
  [VIRTIO_F_ORDER_PLATFORM]: 'VIRTIO_F_ORDER_PLATFORM',
  [VIRTIO_F_SR_IOV]: 'VIRTIO_F_SR_IOV',
  [VIRTIO_F_NOTIFICATION_DATA]: 'VIRTIO_F_NOTIFICATION_DATA',
  [VIRTIO_F_RING_RESET]: 'VIRTIO_F_RING_RESET',
};

// ---- vhost-user protocol features (GET/SET_PROTOCOL_FEATURES) ----
export const VHOST_USER_PROTOCOL_F_MQ = 0;
export const VHOST_USER_PROTOCOL_F_LOG_SHMFD = 1;
export const VHOST_USER_PROTOCOL_F_RARP = 2;
export const VHOST_USER_PROTOCOL_F_REPLY_ACK = 3;
export const VHOST_USER_PROTOCOL_F_NET_MTU = 4;
export const VHOST_USER_PROTOCOL_F_BACKEND_REQ = 5;
export const VHOST_USER_PROTOCOL_F_CROSS_ENDIAN = 6;
export const VHOST_USER_PROTOCOL_F_CRYPTO_SESSION = 7;
export const VHOST_USER_PROTOCOL_F_PAGEFAULT = 8;
export const VHOST_USER_PROTOCOL_F_CONFIG = 9;
export const VHOST_USER_PROTOCOL_F_BACKEND_SEND_FD = 10;
export const VHOST_USER_PROTOCOL_F_HOST_NOTIFIER = 11;
export const VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD = 12;
export const VHOST_USER_PROTOCOL_F_RESET_DEVICE = 13;
export const VHOST_USER_PROTOCOL_F_INBAND_NOTIFICATIONS = 14;
export const VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS = 15;
export const VHOST_USER_PROTOCOL_F_STATUS = 16;

const PROTOCOL_FEATURE_NAMES: Record<number, string> = {
  [VHOST_USER_PROTOCOL_F_MQ]: 'MQ',
  [VHOST_USER_PROTOCOL_F_LOG_SHMFD]: 'LOG_SHMFD',
  [VHOST_USER_PROTOCOL_F_RARP]: 'RARP',
  [VHOST_USER_PROTOCOL_F_REPLY_ACK]: 'REPLY_ACK',
  [VHOST_USER_PROTOCOL_F_NET_MTU]: 'NET_MTU',
  [VHOST_USER_PROTOCOL_F_BACKEND_REQ]: 'BACKEND_REQ',
  [VHOST_USER_PROTOCOL_F_CROSS_ENDIAN]: 'CROSS_ENDIAN',
  [VHOST_USER_PROTOCOL_F_CRYPTO_SESSION]: 'CRYPTO_SESSION',
  [VHOST_USER_PROTOCOL_F_PAGEFAULT]: 'PAGEFAULT',
  [VHOST_USER_PROTOCOL_F_CONFIG]: 'CONFIG',
  [VHOST_USER_PROTOCOL_F_BACKEND_SEND_FD]: 'BACKEND_SEND_FD',
  [VHOST_USER_PROTOCOL_F_HOST_NOTIFIER]: 'HOST_NOTIFIER',
  [VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD]: 'INFLIGHT_SHMFD',
  [VHOST_USER_PROTOCOL_F_RESET_DEVICE]: 'RESET_DEVICE',
  [VHOST_USER_PROTOCOL_F_INBAND_NOTIFICATIONS]: 'INBAND_NOTIFICATIONS',
  [VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS]: 'CONFIGURE_MEM_SLOTS',
  [VHOST_USER_PROTOCOL_F_STATUS]: 'STATUS',
};

export function bit(n: number): bigint {
  return 1n << BigInt(n);
}

export function hasBit(bits: bigint, n: number): boolean {
  return (bits & bit(n)) !== 0n;
}

export function bitsOf(...ns: number[]): bigint {
  return ns.reduce((acc, n) => acc | bit(n), 0n);
}

function names(bits: bigint, table: Record<number, string>, prefix: string): string[] {
  const out: string[] = [];
  for (let n = 0; bits >> BigInt(n) !== 0n; n++) {
    if (hasBit(bits, n)) out.push(table[n] ?? `${prefix}${n}`);
  }
  return out;
}

/** ["VIRTIO_F_VERSION_1", ...] for logs and the API; unknown bits show as "bit45". */
export function featureNames(bits: bigint): string[] {
  return names(bits, FEATURE_NAMES, 'bit');
}

/** ["MQ", "REPLY_ACK", ...] (VHOST_USER_PROTOCOL_F_ prefix dropped); unknown bits show as "bit20". */
export function protocolFeatureNames(bits: bigint): string[] {
  return names(bits, PROTOCOL_FEATURE_NAMES, 'bit');
}

/** Checksum and segmentation offloads: dropped when a port is configured without offloads. */
export const OFFLOAD_FEATURES = bitsOf(
  VIRTIO_NET_F_CSUM,
  VIRTIO_NET_F_GUEST_CSUM,
  VIRTIO_NET_F_HOST_TSO4,
  VIRTIO_NET_F_HOST_TSO6,
  VIRTIO_NET_F_GUEST_TSO4,
  VIRTIO_NET_F_GUEST_TSO6,
);

/**
 * Split or packed rings, no IOMMU: the data plane does none. VHOST_F_LOG_ALL: live migration. IN_ORDER (virtio
 * 1.1, "In-order use of descriptors", both layouts): the data plane always uses buffers in the order they were
 * made available (a frame dropped on a ring still gives its buffer back in turn), and a driver that knows it
 * takes its faster in-order paths (DPDK's virtio PMD does). Nothing here relies on the driver keeping its side.
 */
const BASE_FEATURES = bitsOf(
  VHOST_F_LOG_ALL,
  VIRTIO_F_VERSION_1,
  VIRTIO_F_RING_PACKED,
  VIRTIO_F_IN_ORDER,
  VIRTIO_NET_F_MRG_RXBUF,
  VIRTIO_RING_F_EVENT_IDX,
  VIRTIO_RING_F_INDIRECT_DESC,
  VIRTIO_NET_F_MQ,
  VIRTIO_NET_F_MTU,
  VHOST_USER_F_PROTOCOL_FEATURES,
);

/** What GET_FEATURES returns for a port. */
export function offeredFeatures(opts: { offloads: boolean }): bigint {
  return opts.offloads ? BASE_FEATURES | OFFLOAD_FEATURES : BASE_FEATURES;
}

/**
 * What GET_PROTOCOL_FEATURES returns. LOG_SHMFD: the dirty log is shared memory (SET_LOG_BASE), which QEMU needs
 * to migrate. RARP: the switch announces a migrated guest (SEND_RARP); GUEST_ANNOUNCE is not offered, see
 * docs/notes.md. CONFIGURE_MEM_SLOTS: memory region by region (ADD/REM_MEM_REG), for hot-plugged DIMMs.
 */
export const OFFERED_PROTOCOL_FEATURES = bitsOf(
  VHOST_USER_PROTOCOL_F_MQ,
  VHOST_USER_PROTOCOL_F_LOG_SHMFD,
  VHOST_USER_PROTOCOL_F_RARP,
  VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS,
  VHOST_USER_PROTOCOL_F_REPLY_ACK,
  VHOST_USER_PROTOCOL_F_NET_MTU,
);
