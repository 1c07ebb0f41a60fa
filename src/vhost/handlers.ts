// The vhost-user requests the backend implements, one entry each: the fds it carries, whether a valid one may
// park the poll threads, the protocol feature it needs, its decoder and its handler. `runRequest` applies the
// rules of the table once for every request; a handler only sees decoded, checked values.
//
// Every check that can refuse a request is made in `decode` (or by the table's rules), before the handler calls
// into the native switch, and the native side checks its own rules before it parks: a hostile frontend's stream
// of invalid requests never stops the poll threads of the other ports.
import { takeFds, type VhostUserMessage } from './channel.js';
import {
  featureNames,
  hasBit,
  protocolFeatureNames,
  OFFERED_PROTOCOL_FEATURES,
  VHOST_F_LOG_ALL,
  VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS,
  VHOST_USER_PROTOCOL_F_LOG_SHMFD,
  VHOST_USER_PROTOCOL_F_RARP,
} from './features.js';
import * as P from './protocol.js';
import type { FdState } from './backend-types.js';
import type { Session } from './session.js';
import { RequestError, checkMtu, checkRingSize, checkVringBase } from './validate.js';

/** The fds a request must carry: exactly one, none or one, or a count the decoded payload gives. 'none': it takes
 * none, and fds riding on it are ignored (the channel closes them). */
export type FdRule<T> = 'none' | 'one' | 'optional' | ((v: T) => number);

export interface Handler<T> {
  fds: FdRule<T>;
  /** The fds become the handler's, and with them the native switch's, which owns them even when it refuses.
   * Otherwise the channel closes them after the request. */
  keepsFds?: boolean;
  /** A valid request of this kind may park the poll threads (between bursts, for the change to apply). */
  parks: boolean;
  /** The protocol feature that must be negotiated first, and what to say when it is not. */
  needs?: { bit: number; why: string };
  /** Gets a u64 status reply (0 done, 1 refused) even without NEED_REPLY. */
  statusReply?: (s: Session) => boolean;
  /** The payload decoded and checked against the session: everything that can refuse the request. */
  decode(payload: Buffer, request: number, s: Session): T;
  /** Applies it; returns the reply body of requests that have one. */
  handle(s: Session, v: T, fds: number[]): Buffer | undefined;
}

type AnyHandler = Handler<unknown>;
const entry = <T>(h: Handler<T>): AnyHandler => h as AnyHandler;

export const ACK_OK = P.encodeU64(0n);
export const ACK_FAIL = P.encodeU64(1n);

const MEM_SLOTS = { bit: VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS, why: 'CONFIGURE_MEM_SLOTS not negotiated' };

/** A region for log lines: addresses in hex, the size in MiB. */
function regionFields(r: P.MemoryRegionDesc): Record<string, string | number> {
  return { guestPhysAddr: `0x${r.guestPhysAddr.toString(16)}`, sizeMiB: Number(r.size >> 20n), userAddr: `0x${r.userAddr.toString(16)}` };
}

const empty = (payload: Buffer, request: number): void => P.expectEmpty(payload, request);

function vringState(payload: Buffer, request: number, s: Session): P.VringState {
  const v = P.decodeVringState(payload, request);
  s.ring(v.index, request);
  return v;
}

function vringFd(payload: Buffer, request: number, s: Session): P.VringFdPayload {
  const v = P.decodeVringFd(payload, request);
  s.ring(v.index, request);
  return v;
}

const fdState = (v: P.VringFdPayload): FdState => (v.noFd ? 'nofd' : 'fd');
const fdOf = (v: P.VringFdPayload, fds: number[]): number => (v.noFd ? -1 : fds[0]!);
const oneUnlessNoFd = (v: P.VringFdPayload): number => (v.noFd ? 0 : 1);

export const HANDLERS: ReadonlyMap<number, AnyHandler> = new Map<number, AnyHandler>([
  [P.VHOST_USER_GET_FEATURES, entry({ fds: 'none', parks: false, decode: empty, handle: (s) => P.encodeU64(s.offered) })],

  [P.VHOST_USER_SET_FEATURES, entry({
    fds: 'none',
    parks: true,
    decode(payload, request, s) {
      const bits = P.decodeU64(payload, request);
      const extra = bits & ~s.offered;
      // The frontend would drive rings in a format we do not implement: nothing sane can follow.
      if (extra !== 0n) throw new RequestError(`feature bits not offered: ${featureNames(extra).join(',')}`, request, true);
      return bits;
    },
    handle(s, bits) {
      s.native.setFeatures(s.portId, bits);
      const logging = hasBit(bits, VHOST_F_LOG_ALL);
      if (logging !== hasBit(s.acked, VHOST_F_LOG_ALL)) {
        s.log('info', logging ? 'dirty logging on (migration started)' : 'dirty logging off', {});
      }
      s.acked = bits;
      s.log('info', 'features negotiated', { features: featureNames(bits).join(',') });
      return undefined;
    },
  })],

  [P.VHOST_USER_GET_PROTOCOL_FEATURES, entry({ fds: 'none', parks: false, decode: empty, handle: () => P.encodeU64(OFFERED_PROTOCOL_FEATURES) })],

  [P.VHOST_USER_SET_PROTOCOL_FEATURES, entry({
    fds: 'none',
    parks: false,
    decode(payload, request) {
      const bits = P.decodeU64(payload, request);
      const extra = bits & ~OFFERED_PROTOCOL_FEATURES;
      // It would next send messages we do not understand and expect answers we cannot give.
      if (extra !== 0n) throw new RequestError(`protocol feature bits not offered: ${protocolFeatureNames(extra).join(',')}`, request, true);
      return bits;
    },
    handle(s, bits) {
      s.protocolAcked = bits;
      s.log('info', 'protocol features negotiated', { protocolFeatures: protocolFeatureNames(bits).join(',') });
      return undefined;
    },
  })],

  [P.VHOST_USER_SET_OWNER, entry({
    fds: 'none',
    parks: false,
    decode: empty,
    handle(s) {
      s.owner = true;
      return undefined;
    },
  })],

  // Deprecated; the spec allows "disable all rings". The port's data plane and negotiated features are reset,
  // the connection and its protocol features kept, as QEMU expects.
  [P.VHOST_USER_RESET_OWNER, entry({
    fds: 'none',
    parks: true,
    decode: empty,
    handle(s) {
      s.resetDevice('RESET_OWNER');
      return undefined;
    },
  })],

  [P.VHOST_USER_SET_MEM_TABLE, entry({
    fds: (regions: P.MemoryRegionDesc[]) => regions.length,
    keepsFds: true,
    parks: true,
    decode: (payload, request) => P.decodeMemoryTable(payload, request),
    handle(s, regions, fds) {
      s.native.setMemTable(s.portId, regions.map((r, i) => ({ ...r, fd: fds[i]! })));
      s.memRegions = regions.length;
      s.log('info', 'memory table set', { regions: regions.length });
      return undefined;
    },
  })],

  [P.VHOST_USER_GET_MAX_MEM_SLOTS, entry({
    fds: 'none',
    parks: false,
    needs: MEM_SLOTS,
    decode: empty,
    handle: (s) => P.encodeU64(BigInt(s.native.maxMemSlots())),
  })],

  [P.VHOST_USER_ADD_MEM_REG, entry({
    fds: 'one',
    keepsFds: true,
    parks: true,
    needs: MEM_SLOTS,
    decode: (payload, request) => P.decodeSingleMemRegion(payload, request),
    handle(s, r, fds) {
      s.native.addMemReg(s.portId, { ...r, fd: fds[0]! });
      s.memRegions++;
      s.log('info', 'memory region added', { ...regionFields(r), regions: s.memRegions });
      return undefined;
    },
  })],

  // The spec: no fd SHOULD come, one MAY (closed unused, by the channel).
  [P.VHOST_USER_REM_MEM_REG, entry({
    fds: 'optional',
    parks: true,
    needs: MEM_SLOTS,
    decode: (payload, request) => P.decodeSingleMemRegion(payload, request),
    handle(s, r) {
      s.native.remMemReg(s.portId, r);
      s.memRegions--;
      s.log('info', 'memory region removed', { ...regionFields(r), regions: s.memRegions });
      return undefined;
    },
  })],

  // With LOG_SHMFD the frontend waits for the reply (the log is mapped): a u64 status, 0 or 1. Without an fd
  // native refuses it with the reason, and the reply goes back either way.
  [P.VHOST_USER_SET_LOG_BASE, entry({
    fds: 'optional',
    keepsFds: true,
    parks: true,
    needs: { bit: VHOST_USER_PROTOCOL_F_LOG_SHMFD, why: 'LOG_SHMFD not negotiated: the dirty log must be shared memory' },
    statusReply: (s) => s.hasProtocolFeature(VHOST_USER_PROTOCOL_F_LOG_SHMFD),
    decode: (payload, request) => P.decodeLog(payload, request),
    handle(s, l, fds) {
      s.native.setLogBase(s.portId, { fd: fds[0] ?? -1, size: l.size, offset: l.offset });
      s.log('info', 'dirty log mapped', { size: Number(l.size), offset: Number(l.offset) });
      return undefined;
    },
  })],

  // An eventfd to signal log updates on; we never signal (QEMU reads the shared log), so the channel closes it.
  // Accepted, so that a frontend that sends it still migrates.
  [P.VHOST_USER_SET_LOG_FD, entry({ fds: 'one', parks: false, decode: () => undefined, handle: () => undefined })],

  [P.VHOST_USER_SEND_RARP, entry({
    fds: 'none',
    parks: true,
    needs: { bit: VHOST_USER_PROTOCOL_F_RARP, why: 'RARP not negotiated' },
    decode: (payload, request) => P.decodeRarpMac(payload, request),
    handle(s, mac) {
      s.native.sendRarp(s.portId, mac);
      s.log('info', 'guest announced (RARP sent)', { mac });
      return undefined;
    },
  })],

  // A stopped ring's size, base and addresses are kept by the native switch until SET_VRING_KICK starts the
  // ring, which applies them in its one park.
  [P.VHOST_USER_SET_VRING_NUM, entry({
    fds: 'none',
    parks: false,
    decode(payload, request, s) {
      const v = vringState(payload, request, s);
      checkRingSize(v.num, request, s.packed);
      return v;
    },
    handle(s, v) {
      s.native.setVringNum(s.portId, v.index, v.num);
      s.rings[v.index]!.num = v.num;
      return undefined;
    },
  })],

  // Parks only for a started ring (QEMU turns VHOST_VRING_F_LOG on for running rings when migration starts).
  [P.VHOST_USER_SET_VRING_ADDR, entry({
    fds: 'none',
    parks: true,
    decode(payload, request, s) {
      const a = P.decodeVringAddr(payload, request);
      s.ring(a.index, request);
      return a;
    },
    handle(s, a) {
      s.native.setVringAddr(s.portId, a.index, { flags: a.flags, desc: a.desc, used: a.used, avail: a.avail, log: a.log });
      s.rings[a.index]!.addrSet = true;
      return undefined;
    },
  })],

  [P.VHOST_USER_SET_VRING_BASE, entry({
    fds: 'none',
    parks: false,
    decode(payload, request, s) {
      const v = vringState(payload, request, s);
      checkVringBase(v.num, request, s.packed);
      return v;
    },
    handle(s, v) {
      s.native.setVringBase(s.portId, v.index, v.num);
      s.rings[v.index]!.base = v.num;
      return undefined;
    },
  })],

  [P.VHOST_USER_GET_VRING_BASE, entry({
    fds: 'none',
    parks: true,
    decode: vringState,
    handle(s, v) {
      const ring = s.rings[v.index]!;
      const base = s.native.getVringBase(s.portId, v.index);
      ring.base = base;
      ring.started = false;
      // Without protocol features "enabled" is implied by "started"; the next kick enables it again.
      if (!s.protocolFeaturesNegotiated) ring.enabled = false;
      s.log('info', 'vring stopped', { ring: v.index, base });
      s.updateReady(`ring ${v.index} stopped`);
      return P.encodeVringState({ index: v.index, num: base });
    },
  })],

  [P.VHOST_USER_SET_VRING_KICK, entry({
    fds: oneUnlessNoFd,
    keepsFds: true,
    parks: true,
    decode: vringFd,
    handle(s, v, fds) {
      const ring = s.rings[v.index]!;
      // Without protocol features the ring starts enabled; enabled first, so that the data plane never sees it
      // started and disabled (it would drain the transmit ring, as a disabled ring must be).
      if (!s.protocolFeaturesNegotiated) {
        s.native.setVringEnable(s.portId, v.index, true);
        ring.enabled = true;
      }
      s.native.setVringKick(s.portId, v.index, fdOf(v, fds));
      ring.kick = fdState(v);
      ring.started = true;
      s.log('info', 'vring started', { ring: v.index, kick: ring.kick, enabled: ring.enabled });
      s.updateReady(`ring ${v.index} started`);
      return undefined;
    },
  })],

  // Call and err fds go in without parking (the poll threads read them once per signal).
  [P.VHOST_USER_SET_VRING_CALL, entry({
    fds: oneUnlessNoFd,
    keepsFds: true,
    parks: false,
    decode: vringFd,
    handle(s, v, fds) {
      s.native.setVringCall(s.portId, v.index, fdOf(v, fds));
      s.rings[v.index]!.call = fdState(v);
      return undefined;
    },
  })],

  [P.VHOST_USER_SET_VRING_ERR, entry({
    fds: oneUnlessNoFd,
    keepsFds: true,
    parks: false,
    decode: vringFd,
    handle(s, v, fds) {
      s.native.setVringErr(s.portId, v.index, fdOf(v, fds));
      s.rings[v.index]!.err = fdState(v);
      return undefined;
    },
  })],

  // Only meaningful with VHOST_USER_F_PROTOCOL_FEATURES; a legacy frontend sending it anyway means what it says,
  // so it is applied either way. No park: the data path reads `enabled` per frame.
  [P.VHOST_USER_SET_VRING_ENABLE, entry({
    fds: 'none',
    parks: false,
    decode(payload, request, s) {
      const v = vringState(payload, request, s);
      if (v.num > 1) throw new RequestError(`enable must be 0 or 1, got ${v.num}`, request);
      return { index: v.index, enable: v.num === 1 };
    },
    handle(s, v) {
      s.native.setVringEnable(s.portId, v.index, v.enable);
      s.rings[v.index]!.enabled = v.enable;
      s.log('info', v.enable ? 'vring enabled' : 'vring disabled', { ring: v.index });
      s.updateReady(`ring ${v.index} disabled`);
      return undefined;
    },
  })],

  [P.VHOST_USER_GET_QUEUE_NUM, entry({ fds: 'none', parks: false, decode: empty, handle: (s) => P.encodeU64(BigInt(s.queuePairs)) })],

  [P.VHOST_USER_NET_SET_MTU, entry({
    fds: 'none',
    parks: false,
    decode(payload, request, s) {
      const mtu = P.decodeU64(payload, request);
      checkMtu(mtu, s.maxMtu, request);
      return Number(mtu);
    },
    handle(s, mtu) {
      s.netMtu = mtu;
      s.log('info', 'guest mtu set', { mtu });
      return undefined;
    },
  })],
]);

function fdCount<T>(rule: FdRule<T>, v: T, got: number): number | undefined {
  if (rule === 'none') return undefined;
  if (rule === 'one') return 1;
  if (rule === 'optional') return got <= 1 ? undefined : 1;
  return rule(v);
}

/**
 * Runs one request through its table entry: feature gate, decoder, fd count, then the handler. Returns the
 * reply body (for requests that have one); throws RequestError/ProtocolError, or the native switch's error.
 * Everything else (NEED_REPLY, status replies, counting failures) is the backend's.
 */
export function runRequest(s: Session, msg: VhostUserMessage): Buffer | undefined {
  const { request, payload } = msg;
  const h = HANDLERS.get(request);
  // Everything else is gated by a feature we did not offer (CONFIG, BACKEND_REQ, ...), or unknown.
  if (!h) throw new RequestError('not supported', request);
  if (h.needs && !s.hasProtocolFeature(h.needs.bit)) throw new RequestError(h.needs.why, request);
  const v = h.decode(payload, request, s);
  const want = fdCount(h.fds, v, msg.fds.length);
  if (want !== undefined) P.expectFdCount(msg.fds, want, request);
  return h.handle(s, v, h.keepsFds ? takeFds(msg) : []);
}

/** This request gets a u64 status reply whether or not the frontend asked for one. */
export function wantsStatusReply(s: Session, request: number): boolean {
  return HANDLERS.get(request)?.statusReply?.(s) ?? false;
}
