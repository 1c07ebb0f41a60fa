// The vhost-user backend for one virtio-net frontend (QEMU or DPDK virtio-user) on one switch port. It
// turns requests into NativeSwitch calls and keeps a mirror of the negotiated state for the API. The data
// plane never sees a message: only validated values.
//
// Failure policy: a bad request is logged, counted, answered with a failure where the frontend waits for
// an answer, and its fds are closed (by the channel). The connection survives unless the two sides can no
// longer agree on what the device is (feature bits we did not offer), or the frontend keeps misbehaving.
import { EventEmitter } from 'node:events';
import type { NativeSwitch } from '../native.js';
import { takeFds, type VhostUserChannel, type VhostUserMessage } from './channel.js';
import {
  hasBit,
  featureNames,
  offeredFeatures,
  protocolFeatureNames,
  OFFERED_PROTOCOL_FEATURES,
  VHOST_F_LOG_ALL,
  VHOST_USER_F_PROTOCOL_FEATURES,
  VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS,
  VHOST_USER_PROTOCOL_F_LOG_SHMFD,
  VHOST_USER_PROTOCOL_F_RARP,
  VHOST_USER_PROTOCOL_F_REPLY_ACK,
  VIRTIO_F_RING_PACKED,
} from './features.js';
import type { VhostLog } from './log.js';
import * as P from './protocol.js';
import { RequestError, checkMtu, checkRingSize, checkVringBase } from './validate.js';
import {
  newRing,
  type BackendEvents,
  type BackendInfo,
  type BackendOptions,
  type BackendTransport,
  type FdState,
  type RingState,
} from './backend-types.js';

export type { BackendInfo, BackendOptions, BackendTransport, FdState, RingState } from './backend-types.js';

const ACK_OK = P.encodeU64(0n);
const ACK_FAIL = P.encodeU64(1n);
/** A reply-bearing request that failed gets an empty body: the frontend's size check turns it into an
 * error (the spec uses the same convention for GET_CONFIG). Better than a made-up value. */
const EMPTY = Buffer.alloc(0);

/** A region for log lines: addresses in hex, the size in MiB. */
function regionFields(r: P.MemoryRegionDesc): Record<string, string | number> {
  return { guestPhysAddr: `0x${r.guestPhysAddr.toString(16)}`, sizeMiB: Number(r.size >> 20n), userAddr: `0x${r.userAddr.toString(16)}` };
}

export class VhostUserBackend extends EventEmitter<BackendEvents> {
  readonly portId: number;
  readonly queuePairs: number;
  readonly offered: bigint;
  protocolErrors = 0;
  lastError: string | null = null;

  private readonly native: NativeSwitch;
  private readonly maxMtu: number;
  private readonly log: VhostLog;
  private readonly maxProtocolErrors: number;
  private transport: BackendTransport | null = null;
  private disconnected = false;

  private owner = false;
  private acked = 0n;
  private protocolAcked = 0n;
  private netMtu: number | null = null;
  private memRegions = 0;
  private ringStates: RingState[];
  private isReady = false;

  constructor(opts: BackendOptions) {
    super();
    if (!Number.isInteger(opts.queuePairs) || opts.queuePairs < 1 || opts.queuePairs > 128) {
      // 2*queuePairs rings must fit the 8-bit index of SET_VRING_KICK/CALL/ERR.
      throw new RangeError(`queuePairs must be 1..128, got ${opts.queuePairs}`);
    }
    this.native = opts.native;
    this.portId = opts.portId;
    this.queuePairs = opts.queuePairs;
    this.maxMtu = opts.mtu;
    this.log = opts.log;
    this.maxProtocolErrors = opts.maxProtocolErrors ?? 100;
    this.offered = offeredFeatures({ offloads: opts.offloads });
    this.ringStates = this.freshRings();
  }

  /** Where replies go. Call before the first message. */
  attach(transport: BackendTransport): void {
    this.transport = transport;
  }

  get features(): bigint {
    return this.acked;
  }

  get protocolFeatures(): bigint {
    return this.protocolAcked;
  }

  get ready(): boolean {
    return this.isReady;
  }

  get rings(): RingState[] {
    return this.ringStates.map((r) => ({ ...r }));
  }

  info(): BackendInfo {
    return {
      portId: this.portId,
      owner: this.owner,
      features: this.acked,
      featureNames: featureNames(this.acked),
      protocolFeatures: this.protocolAcked,
      protocolFeatureNames: protocolFeatureNames(this.protocolAcked),
      mtu: this.netMtu,
      memRegions: this.memRegions,
      rings: this.rings,
      ready: this.isReady,
      protocolErrors: this.protocolErrors,
      lastError: this.lastError,
    };
  }

  /** VIRTIO_F_RING_PACKED negotiated: rings are packed (sizes and vring bases follow other rules). */
  private get packed(): boolean {
    return hasBit(this.acked, VIRTIO_F_RING_PACKED);
  }

  private get memSlots(): boolean {
    return hasBit(this.protocolAcked, VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS);
  }

  /** Spec "Ring states": with VHOST_USER_F_PROTOCOL_FEATURES rings start disabled, else enabled. */
  private get protocolFeaturesNegotiated(): boolean {
    return hasBit(this.acked, VHOST_USER_F_PROTOCOL_FEATURES);
  }

  /** Handles one request. fds the handler keeps are taken from msg.fds; the rest are the caller's to close. */
  handleMessage(msg: VhostUserMessage): void {
    if (this.disconnected) return;
    const { request, flags } = msg;
    const name = P.requestName(request);
    // With LOG_SHMFD the frontend waits for SET_LOG_BASE's reply (the log is mapped): a u64 status, 0 or 1.
    const logReply = request === P.VHOST_USER_SET_LOG_BASE && hasBit(this.protocolAcked, VHOST_USER_PROTOCOL_F_LOG_SHMFD);
    const hasReplyBody = P.REQUESTS_WITH_REPLY.has(request) || logReply;
    if (flags & P.VHOST_USER_REPLY_MASK) {
      // A reply where a request belongs: nobody waits for an answer, so only count it.
      this.recordError(name, new RequestError('reply flag set on a request'));
      return;
    }
    const ackBefore = hasBit(this.protocolAcked, VHOST_USER_PROTOCOL_F_REPLY_ACK);
    let reply: Buffer | undefined;
    let failure: Error | undefined;
    try {
      reply = this.dispatch(msg);
    } catch (e) {
      failure = e as Error;
    }
    // REPLY_ACK may have been switched on or off by this very message; either way the frontend that set
    // NEED_REPLY is waiting.
    const replyAck = ackBefore || hasBit(this.protocolAcked, VHOST_USER_PROTOCOL_F_REPLY_ACK);
    const needAck = (flags & P.VHOST_USER_NEED_REPLY_MASK) !== 0 && replyAck && !hasReplyBody;
    if (failure) {
      this.recordError(name, failure);
      if (logReply) this.reply(request, ACK_FAIL);
      else if (hasReplyBody) this.reply(request, EMPTY);
      else if (needAck) this.reply(request, ACK_FAIL);
      if (failure instanceof RequestError && failure.fatal) {
        this.transport?.close(`${name}: ${failure.message}`);
        return;
      }
      if (this.protocolErrors >= this.maxProtocolErrors) {
        this.transport?.close(`too many protocol errors (${this.protocolErrors})`);
      }
      return;
    }
    if (reply) this.reply(request, reply);
    else if (needAck) this.reply(request, ACK_OK);
  }

  /** The connection is gone: stop the port's rings and unmap memory now, not when a new frontend comes. */
  onDisconnect(reason: string): void {
    if (this.disconnected) return;
    this.disconnected = true;
    this.log('info', 'vhost-user frontend disconnected', { reason, protocolErrors: this.protocolErrors });
    this.resetNative();
    this.ringStates = this.freshRings();
    this.updateReady(`disconnected: ${reason}`);
  }

  private reply(request: number, payload: Buffer): void {
    if (!this.transport) {
      this.log('warn', 'vhost-user reply dropped: no transport', { request: P.requestName(request) });
      return;
    }
    this.transport.send(request, P.VHOST_USER_VERSION | P.VHOST_USER_REPLY_MASK, payload);
  }

  private recordError(name: string, e: Error): void {
    this.protocolErrors++;
    // Our own errors already name the request; native ones do not.
    this.lastError = e.message.startsWith(name) ? e.message : `${name}: ${e.message}`;
    this.log('warn', 'vhost-user request failed', { request: name, error: this.lastError, protocolErrors: this.protocolErrors });
  }

  private freshRings(): RingState[] {
    return Array.from({ length: 2 * this.queuePairs }, (_, i) => newRing(i));
  }

  private ring(index: number, request: number): RingState {
    const r = this.ringStates[index];
    if (!r) throw new RequestError(`vring index ${index} out of range (port has ${this.ringStates.length} rings)`, request);
    return r;
  }

  private resetNative(): void {
    try {
      this.native.resetPort(this.portId);
    } catch (e) {
      this.log('error', 'native resetPort failed', { error: e as Error });
    }
  }

  private updateReady(reason: string): void {
    let ready = false;
    for (let q = 0; q < this.queuePairs && !ready; q++) {
      const rx = this.ringStates[2 * q]!;
      const tx = this.ringStates[2 * q + 1]!;
      ready = rx.started && rx.enabled && tx.started && tx.enabled;
    }
    if (ready === this.isReady) return;
    this.isReady = ready;
    this.log('info', ready ? 'link up' : 'link down', ready ? {} : { reason });
    if (ready) this.emit('ready');
    else this.emit('down', reason);
  }

  /** Returns the reply body for requests that have one; throws on failure. */
  private dispatch(msg: VhostUserMessage): Buffer | undefined {
    const { request, payload } = msg;
    switch (request) {
      case P.VHOST_USER_GET_FEATURES:
        P.expectEmpty(payload, request);
        return P.encodeU64(this.offered);

      case P.VHOST_USER_SET_FEATURES: {
        const bits = P.decodeU64(payload, request);
        const extra = bits & ~this.offered;
        if (extra !== 0n) {
          // The frontend would drive rings in a format we do not implement: nothing sane can follow.
          throw new RequestError(`feature bits not offered: ${featureNames(extra).join(',')}`, request, true);
        }
        this.native.setFeatures(this.portId, bits);
        const logging = hasBit(bits, VHOST_F_LOG_ALL);
        if (logging !== hasBit(this.acked, VHOST_F_LOG_ALL)) {
          this.log('info', logging ? 'dirty logging on (migration started)' : 'dirty logging off', {});
        }
        this.acked = bits;
        this.log('info', 'features negotiated', { features: featureNames(bits).join(',') });
        return undefined;
      }

      case P.VHOST_USER_GET_PROTOCOL_FEATURES:
        P.expectEmpty(payload, request);
        return P.encodeU64(OFFERED_PROTOCOL_FEATURES);

      case P.VHOST_USER_SET_PROTOCOL_FEATURES: {
        const bits = P.decodeU64(payload, request);
        const extra = bits & ~OFFERED_PROTOCOL_FEATURES;
        if (extra !== 0n) {
          // It would next send messages we do not understand and expect answers we cannot give.
          throw new RequestError(`protocol feature bits not offered: ${protocolFeatureNames(extra).join(',')}`, request, true);
        }
        this.protocolAcked = bits;
        this.log('info', 'protocol features negotiated', { protocolFeatures: protocolFeatureNames(bits).join(',') });
        return undefined;
      }

      case P.VHOST_USER_SET_OWNER:
        P.expectEmpty(payload, request);
        this.owner = true;
        return undefined;

      case P.VHOST_USER_RESET_OWNER:
        // Deprecated; the spec allows "disable all rings". We reset the port's data plane and negotiated
        // features, but keep the connection and its protocol features, as QEMU expects.
        P.expectEmpty(payload, request);
        this.resetNative();
        this.acked = 0n;
        this.memRegions = 0;
        this.netMtu = null;
        this.ringStates = this.freshRings();
        this.updateReady('RESET_OWNER');
        return undefined;

      case P.VHOST_USER_SET_MEM_TABLE: {
        const regions = P.decodeMemoryTable(payload, request);
        P.expectFdCount(msg.fds, regions.length, request);
        const fds = takeFds(msg);
        // From here the fds are native's, even if it refuses the table.
        this.native.setMemTable(this.portId, regions.map((r, i) => ({ ...r, fd: fds[i]! })));
        this.memRegions = regions.length;
        this.log('info', 'memory table set', { regions: regions.length });
        return undefined;
      }

      case P.VHOST_USER_GET_MAX_MEM_SLOTS:
        P.expectEmpty(payload, request);
        if (!this.memSlots) throw new RequestError('CONFIGURE_MEM_SLOTS not negotiated', request);
        return P.encodeU64(BigInt(this.native.maxMemSlots()));

      case P.VHOST_USER_ADD_MEM_REG: {
        if (!this.memSlots) throw new RequestError('CONFIGURE_MEM_SLOTS not negotiated', request);
        const r = P.decodeSingleMemRegion(payload, request);
        P.expectFdCount(msg.fds, 1, request);
        const fd = takeFds(msg)[0]!;
        this.native.addMemReg(this.portId, { ...r, fd });
        this.memRegions++;
        this.log('info', 'memory region added', { ...regionFields(r), regions: this.memRegions });
        return undefined;
      }

      case P.VHOST_USER_REM_MEM_REG: {
        if (!this.memSlots) throw new RequestError('CONFIGURE_MEM_SLOTS not negotiated', request);
        const r = P.decodeSingleMemRegion(payload, request);
        // The spec: no fd SHOULD come, one MAY (closed unused, by the channel).
        if (msg.fds.length > 1) P.expectFdCount(msg.fds, 1, request);
        this.native.remMemReg(this.portId, r);
        this.memRegions--;
        this.log('info', 'memory region removed', { ...regionFields(r), regions: this.memRegions });
        return undefined;
      }

      case P.VHOST_USER_SET_LOG_BASE: {
        if (!hasBit(this.protocolAcked, VHOST_USER_PROTOCOL_F_LOG_SHMFD)) {
          throw new RequestError('LOG_SHMFD not negotiated: the dirty log must be shared memory', request);
        }
        const l = P.decodeLog(payload, request);
        if (msg.fds.length > 1) P.expectFdCount(msg.fds, 1, request);
        // No fd: native refuses it with the reason (and a reply goes back either way).
        const fd = msg.fds.length === 1 ? takeFds(msg)[0]! : -1;
        this.native.setLogBase(this.portId, { fd, size: l.size, offset: l.offset });
        this.log('info', 'dirty log mapped', { size: Number(l.size), offset: Number(l.offset) });
        return ACK_OK;
      }

      case P.VHOST_USER_SET_LOG_FD:
        // An eventfd to signal log updates on; we never signal (QEMU reads the shared log), so its fd is
        // closed by the channel. Accepted, so that a frontend that sends it still migrates.
        P.expectFdCount(msg.fds, 1, request);
        return undefined;

      case P.VHOST_USER_SEND_RARP: {
        if (!hasBit(this.protocolAcked, VHOST_USER_PROTOCOL_F_RARP)) throw new RequestError('RARP not negotiated', request);
        const mac = P.decodeRarpMac(payload, request);
        this.native.sendRarp(this.portId, mac);
        this.log('info', 'guest announced (RARP sent)', { mac });
        return undefined;
      }

      case P.VHOST_USER_SET_VRING_NUM: {
        const s = P.decodeVringState(payload, request);
        const ring = this.ring(s.index, request);
        checkRingSize(s.num, request, this.packed);
        this.native.setVringNum(this.portId, s.index, s.num);
        ring.num = s.num;
        return undefined;
      }

      case P.VHOST_USER_SET_VRING_ADDR: {
        const a = P.decodeVringAddr(payload, request);
        const ring = this.ring(a.index, request);
        this.native.setVringAddr(this.portId, a.index, { flags: a.flags, desc: a.desc, used: a.used, avail: a.avail, log: a.log });
        ring.addrSet = true;
        return undefined;
      }

      case P.VHOST_USER_SET_VRING_BASE: {
        const s = P.decodeVringState(payload, request);
        const ring = this.ring(s.index, request);
        checkVringBase(s.num, request, this.packed);
        this.native.setVringBase(this.portId, s.index, s.num);
        ring.base = s.num;
        return undefined;
      }

      case P.VHOST_USER_GET_VRING_BASE: {
        const s = P.decodeVringState(payload, request);
        const ring = this.ring(s.index, request);
        const base = this.native.getVringBase(this.portId, s.index);
        ring.base = base;
        ring.started = false;
        // Without protocol features "enabled" is implied by "started"; the next kick enables it again.
        if (!this.protocolFeaturesNegotiated) ring.enabled = false;
        this.log('info', 'vring stopped', { ring: s.index, base });
        this.updateReady(`ring ${s.index} stopped`);
        return P.encodeVringState({ index: s.index, num: base });
      }

      case P.VHOST_USER_SET_VRING_KICK:
      case P.VHOST_USER_SET_VRING_CALL:
      case P.VHOST_USER_SET_VRING_ERR:
        this.setVringFd(msg);
        return undefined;

      case P.VHOST_USER_SET_VRING_ENABLE: {
        const s = P.decodeVringState(payload, request);
        const ring = this.ring(s.index, request);
        if (s.num > 1) throw new RequestError(`enable must be 0 or 1, got ${s.num}`, request);
        // Only meaningful with VHOST_USER_F_PROTOCOL_FEATURES; a legacy frontend sending it anyway means
        // what it says, so it is applied either way.
        this.native.setVringEnable(this.portId, s.index, s.num === 1);
        ring.enabled = s.num === 1;
        this.log('info', ring.enabled ? 'vring enabled' : 'vring disabled', { ring: s.index });
        this.updateReady(`ring ${s.index} disabled`);
        return undefined;
      }

      case P.VHOST_USER_GET_QUEUE_NUM:
        P.expectEmpty(payload, request);
        return P.encodeU64(BigInt(this.queuePairs));

      case P.VHOST_USER_NET_SET_MTU: {
        const mtu = P.decodeU64(payload, request);
        checkMtu(mtu, this.maxMtu, request);
        this.netMtu = Number(mtu);
        this.log('info', 'guest mtu set', { mtu: this.netMtu });
        return undefined;
      }

      default:
        // Everything else is gated by a feature we did not offer (CONFIG,
        // BACKEND_REQ, ...), or unknown. Its fds are closed by the channel.
        throw new RequestError('not supported', request);
    }
  }

  private setVringFd(msg: VhostUserMessage): void {
    const { request } = msg;
    const v = P.decodeVringFd(msg.payload, request);
    const ring = this.ring(v.index, request);
    P.expectFdCount(msg.fds, v.noFd ? 0 : 1, request);
    const fd = v.noFd ? -1 : takeFds(msg)[0]!;
    const state: FdState = v.noFd ? 'nofd' : 'fd';
    if (request === P.VHOST_USER_SET_VRING_KICK) {
      // Without protocol features the ring starts enabled; enabled first, so that the data plane never sees it
      // started and disabled (it would drain the transmit ring, as a disabled ring must be).
      if (!this.protocolFeaturesNegotiated) {
        this.native.setVringEnable(this.portId, v.index, true);
        ring.enabled = true;
      }
      this.native.setVringKick(this.portId, v.index, fd);
      ring.kick = state;
      ring.started = true;
      this.log('info', 'vring started', { ring: v.index, kick: state, enabled: ring.enabled });
      this.updateReady(`ring ${v.index} started`);
    } else if (request === P.VHOST_USER_SET_VRING_CALL) {
      this.native.setVringCall(this.portId, v.index, fd);
      ring.call = state;
    } else {
      this.native.setVringErr(this.portId, v.index, fd);
      ring.err = state;
    }
  }
}

/** Wires a channel to a backend: requests in, replies out, disconnect resets the port. */
export function bindBackend(channel: VhostUserChannel, backend: VhostUserBackend): void {
  backend.attach(channel);
  channel.on('message', (m) => backend.handleMessage(m));
  channel.on('close', (reason) => backend.onDisconnect(reason));
}
