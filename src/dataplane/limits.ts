// What the data plane accepts, mirrored from native/switch/limits.h (and the drop reasons of
// native/core/counters.h), so that the config, the API and the vhost-user backend refuse what the addon would
// refuse, with their own messages, before it is asked. test/dataplane/limits.test.ts compares this file with
// the values the addon exports (native().limits).

/** Poll threads. */
export const MAX_THREADS = 64;
/** Queue pairs of one port (2 * 64 rings fit the 8-bit ring index of SET_VRING_KICK/CALL/ERR); NIC queues too. */
export const MAX_QUEUE_PAIRS = 64;
/** The smallest IPv4 MTU (RFC 791). */
export const MIN_MTU = 68;
/** The largest jumbo frame common NICs take. */
export const MAX_MTU = 9710;
/** Virtio split ring: Queue Size is a power of 2, at most 32768. */
export const VIRTQUEUE_MAX_SIZE = 32768;

/** Why frames were dropped, in the data plane's order (PortStats.drops keys). */
export const DROP_REASONS = [
  'noRxBuffer',
  'rxBufferTooSmall',
  'badDescriptor',
  'ringBroken',
  'runt',
  'mtu',
  'vlanFilter',
  'offload',
  'badHeader',
  'hairpin',
  'portDown',
  'spoofed',
  'offloadNotNegotiated',
  'ringDisabled',
] as const;
export type DropReason = (typeof DROP_REASONS)[number];
