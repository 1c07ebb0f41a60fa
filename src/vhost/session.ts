// What one vhost-user connection has negotiated so far, as the handlers (handlers.ts) read and change it: the
// features, the memory regions, the mirror of every ring's state, and whether the link is up. The data plane's
// copy lives in the native switch; this one is for the API and for the checks made before a request reaches it.
import type { NativeSwitch } from '../dataplane/native.js';
import {
  hasBit,
  VHOST_USER_F_PROTOCOL_FEATURES,
  VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS,
  VIRTIO_F_RING_PACKED,
} from './features.js';
import type { VhostLog } from './log.js';
import { newRing, type RingState } from './backend-types.js';
import { RequestError } from './validate.js';

export class Session {
  owner = false;
  acked = 0n;
  protocolAcked = 0n;
  netMtu: number | null = null;
  memRegions = 0;
  rings: RingState[];
  ready = false;

  constructor(
    readonly native: NativeSwitch,
    readonly portId: number,
    readonly queuePairs: number,
    /** Largest MTU NET_SET_MTU may ask for. */
    readonly maxMtu: number,
    /** The feature bits GET_FEATURES offers. */
    readonly offered: bigint,
    readonly log: VhostLog,
    /** Told when the link goes up (true) or down (false, with the reason). */
    private readonly onLink: (up: boolean, reason: string) => void,
  ) {
    this.rings = this.freshRings();
  }

  hasProtocolFeature(bit: number): boolean {
    return hasBit(this.protocolAcked, bit);
  }

  get memSlots(): boolean {
    return this.hasProtocolFeature(VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS);
  }

  /** VIRTIO_F_RING_PACKED negotiated: rings are packed (sizes and vring bases follow other rules). */
  get packed(): boolean {
    return hasBit(this.acked, VIRTIO_F_RING_PACKED);
  }

  /** Spec "Ring states": with VHOST_USER_F_PROTOCOL_FEATURES rings start disabled, else enabled. */
  get protocolFeaturesNegotiated(): boolean {
    return hasBit(this.acked, VHOST_USER_F_PROTOCOL_FEATURES);
  }

  ring(index: number, request: number): RingState {
    const r = this.rings[index];
    if (!r) throw new RequestError(`vring index ${index} out of range (port has ${this.rings.length} rings)`, request);
    return r;
  }

  /** The data plane back to a fresh port. Never throws: the connection's own state is reset either way. */
  resetNative(): void {
    try {
      this.native.resetPort(this.portId);
    } catch (e) {
      this.log('error', 'native resetPort failed', { error: e as Error });
    }
  }

  /** The frontend is gone: the port's rings stop and its memory is unmapped now. */
  stop(reason: string): void {
    this.resetNative();
    this.rings = this.freshRings();
    this.updateReady(reason);
  }

  /** RESET_OWNER: the device as a new frontend finds it, but the connection and its protocol features stay. */
  resetDevice(reason: string): void {
    this.acked = 0n;
    this.memRegions = 0;
    this.netMtu = null;
    this.stop(reason);
  }

  /** Link up while at least one queue pair has both rings started and enabled. */
  updateReady(reason: string): void {
    let ready = false;
    for (let q = 0; q < this.queuePairs && !ready; q++) {
      const rx = this.rings[2 * q]!;
      const tx = this.rings[2 * q + 1]!;
      ready = rx.started && rx.enabled && tx.started && tx.enabled;
    }
    if (ready === this.ready) return;
    this.ready = ready;
    this.onLink(ready, reason);
  }

  private freshRings(): RingState[] {
    return Array.from({ length: 2 * this.queuePairs }, (_, i) => newRing(i));
  }
}
