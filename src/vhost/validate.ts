// Semantic checks on decoded request values, shared by the backend (which refuses them) and tests. The
// wire-level checks live in protocol.ts; these are about what a virtio-net split ring can be.
import { MIN_MTU, VIRTQUEUE_MAX_SIZE } from '../dataplane/limits.js';
import { requestName } from './protocol.js';

/** A well-formed request the backend refuses. `fatal`: the connection cannot continue after it. */
export class RequestError extends Error {
  readonly request: number | undefined;
  readonly fatal: boolean;
  constructor(message: string, request?: number, fatal = false) {
    super(request === undefined ? message : `${requestName(request)}: ${message}`);
    this.name = 'RequestError';
    this.request = request;
    this.fatal = fatal;
  }
}

/** Split rings need a power of 2 (free-running indices wrap onto slots); packed rings any size (virtio 1.1 2.7). */
export function checkRingSize(num: number, request?: number, packed = false): void {
  if (num < 1 || num > VIRTQUEUE_MAX_SIZE) {
    throw new RequestError(`ring size ${num} outside 1..${VIRTQUEUE_MAX_SIZE}`, request);
  }
  if (!packed && (num & (num - 1)) !== 0) {
    throw new RequestError(`ring size ${num} is not a power of 2 in 1..${VIRTQUEUE_MAX_SIZE}`, request);
  }
}

/**
 * The split ring's avail index is a u16; a packed ring's base is slot and wrap counter (bit 15) for avail, and
 * the same for used in bits 16-31 (the data plane checks the slot against the ring size).
 */
export function checkVringBase(base: number, request?: number, packed = false): void {
  if (!packed && base > 0xffff) throw new RequestError(`vring base ${base} does not fit in 16 bits`, request);
}

/** The smallest IPv4 MTU (RFC 791) up to what the port was configured with. */
export function checkMtu(mtu: bigint, maxMtu: number, request?: number): void {
  if (mtu < BigInt(MIN_MTU) || mtu > BigInt(maxMtu)) {
    throw new RequestError(`mtu ${mtu} outside ${MIN_MTU}..${maxMtu}`, request);
  }
}
