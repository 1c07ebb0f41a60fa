// vhost-user wire format (QEMU docs/interop/vhost-user.rst): a 12-byte header {request u32, flags u32,
// size u32} followed by `size` payload bytes. "Machine native byte order" in the spec; vhost-user only runs
// between processes on one host and every platform we run on is little-endian, so we fix LE here.
//
// Decoders validate everything a hostile frontend controls and throw ProtocolError; they never return a
// half-decoded value. Encoders exist for both directions: the frontend (our traffic generator, tests)
// sends requests, the backend sends replies.

// ---- Front-end message types (request field) ----
export const VHOST_USER_NONE = 0;
export const VHOST_USER_GET_FEATURES = 1;
export const VHOST_USER_SET_FEATURES = 2;
export const VHOST_USER_SET_OWNER = 3;
export const VHOST_USER_RESET_OWNER = 4;
export const VHOST_USER_SET_MEM_TABLE = 5;
export const VHOST_USER_SET_LOG_BASE = 6;
export const VHOST_USER_SET_LOG_FD = 7;
export const VHOST_USER_SET_VRING_NUM = 8;
export const VHOST_USER_SET_VRING_ADDR = 9;
export const VHOST_USER_SET_VRING_BASE = 10;
export const VHOST_USER_GET_VRING_BASE = 11;
export const VHOST_USER_SET_VRING_KICK = 12;
export const VHOST_USER_SET_VRING_CALL = 13;
export const VHOST_USER_SET_VRING_ERR = 14;
export const VHOST_USER_GET_PROTOCOL_FEATURES = 15;
export const VHOST_USER_SET_PROTOCOL_FEATURES = 16;
export const VHOST_USER_GET_QUEUE_NUM = 17;
export const VHOST_USER_SET_VRING_ENABLE = 18;
export const VHOST_USER_SEND_RARP = 19;
export const VHOST_USER_NET_SET_MTU = 20;
export const VHOST_USER_SET_BACKEND_REQ_FD = 21;
export const VHOST_USER_IOTLB_MSG = 22;
export const VHOST_USER_SET_VRING_ENDIAN = 23;
export const VHOST_USER_GET_CONFIG = 24;
export const VHOST_USER_SET_CONFIG = 25;
export const VHOST_USER_CREATE_CRYPTO_SESSION = 26;
export const VHOST_USER_CLOSE_CRYPTO_SESSION = 27;
export const VHOST_USER_POSTCOPY_ADVISE = 28;
export const VHOST_USER_POSTCOPY_LISTEN = 29;
export const VHOST_USER_POSTCOPY_END = 30;
export const VHOST_USER_GET_INFLIGHT_FD = 31;
export const VHOST_USER_SET_INFLIGHT_FD = 32;
export const VHOST_USER_GPU_SET_SOCKET = 33;
export const VHOST_USER_RESET_DEVICE = 34;
export const VHOST_USER_VRING_KICK = 35;
export const VHOST_USER_GET_MAX_MEM_SLOTS = 36;
export const VHOST_USER_ADD_MEM_REG = 37;
export const VHOST_USER_REM_MEM_REG = 38;
export const VHOST_USER_SET_STATUS = 39;
export const VHOST_USER_GET_STATUS = 40;

/** What the spec says of each request that both ends need: its name, and whether the backend's reply carries
 * a body of its own (spec "Communication" plus the later GET_* messages; for these the backend always replies and
 * NEED_REPLY brings no extra ack). SET_LOG_BASE replies too once LOG_SHMFD is negotiated (decided by the backend's
 * handler table, handlers.ts); ADD/REM_MEM_REG and SET_MEM_TABLE only in postcopy, which we never offer. */
export interface RequestSpec {
  name: string;
  replyBody: boolean;
}

const spec = (name: string, replyBody = false): RequestSpec => ({ name, replyBody });
export const REQUESTS: Readonly<Record<number, RequestSpec>> = {
  [VHOST_USER_GET_FEATURES]: spec('GET_FEATURES', true),
  [VHOST_USER_SET_FEATURES]: spec('SET_FEATURES'),
  [VHOST_USER_SET_OWNER]: spec('SET_OWNER'),
  [VHOST_USER_RESET_OWNER]: spec('RESET_OWNER'),
  [VHOST_USER_SET_MEM_TABLE]: spec('SET_MEM_TABLE'),
  [VHOST_USER_SET_LOG_BASE]: spec('SET_LOG_BASE'),
  [VHOST_USER_SET_LOG_FD]: spec('SET_LOG_FD'),
  [VHOST_USER_SET_VRING_NUM]: spec('SET_VRING_NUM'),
  [VHOST_USER_SET_VRING_ADDR]: spec('SET_VRING_ADDR'),
  [VHOST_USER_SET_VRING_BASE]: spec('SET_VRING_BASE'),
  [VHOST_USER_GET_VRING_BASE]: spec('GET_VRING_BASE', true),
  [VHOST_USER_SET_VRING_KICK]: spec('SET_VRING_KICK'),
  [VHOST_USER_SET_VRING_CALL]: spec('SET_VRING_CALL'),
  [VHOST_USER_SET_VRING_ERR]: spec('SET_VRING_ERR'),
  [VHOST_USER_GET_PROTOCOL_FEATURES]: spec('GET_PROTOCOL_FEATURES', true),
  [VHOST_USER_SET_PROTOCOL_FEATURES]: spec('SET_PROTOCOL_FEATURES'),
  [VHOST_USER_GET_QUEUE_NUM]: spec('GET_QUEUE_NUM', true),
  [VHOST_USER_SET_VRING_ENABLE]: spec('SET_VRING_ENABLE'),
  [VHOST_USER_SEND_RARP]: spec('SEND_RARP'),
  [VHOST_USER_NET_SET_MTU]: spec('NET_SET_MTU'),
  [VHOST_USER_SET_BACKEND_REQ_FD]: spec('SET_BACKEND_REQ_FD'),
  [VHOST_USER_IOTLB_MSG]: spec('IOTLB_MSG', true),
  [VHOST_USER_SET_VRING_ENDIAN]: spec('SET_VRING_ENDIAN'),
  [VHOST_USER_GET_CONFIG]: spec('GET_CONFIG', true),
  [VHOST_USER_SET_CONFIG]: spec('SET_CONFIG'),
  [VHOST_USER_CREATE_CRYPTO_SESSION]: spec('CREATE_CRYPTO_SESSION', true),
  [VHOST_USER_CLOSE_CRYPTO_SESSION]: spec('CLOSE_CRYPTO_SESSION'),
  [VHOST_USER_POSTCOPY_ADVISE]: spec('POSTCOPY_ADVISE', true),
  [VHOST_USER_POSTCOPY_LISTEN]: spec('POSTCOPY_LISTEN'),
  [VHOST_USER_POSTCOPY_END]: spec('POSTCOPY_END', true),
  [VHOST_USER_GET_INFLIGHT_FD]: spec('GET_INFLIGHT_FD', true),
  [VHOST_USER_SET_INFLIGHT_FD]: spec('SET_INFLIGHT_FD'),
  [VHOST_USER_GPU_SET_SOCKET]: spec('GPU_SET_SOCKET'),
  [VHOST_USER_RESET_DEVICE]: spec('RESET_DEVICE'),
  [VHOST_USER_VRING_KICK]: spec('VRING_KICK'),
  [VHOST_USER_GET_MAX_MEM_SLOTS]: spec('GET_MAX_MEM_SLOTS', true),
  [VHOST_USER_ADD_MEM_REG]: spec('ADD_MEM_REG'),
  [VHOST_USER_REM_MEM_REG]: spec('REM_MEM_REG'),
  [VHOST_USER_SET_STATUS]: spec('SET_STATUS'),
  [VHOST_USER_GET_STATUS]: spec('GET_STATUS', true),
};

/** "VHOST_USER_GET_FEATURES", or "VHOST_USER_UNKNOWN(99)" for numbers outside the spec, for log lines. */
export function requestName(request: number): string {
  const n = REQUESTS[request]?.name;
  return n ? `VHOST_USER_${n}` : `VHOST_USER_UNKNOWN(${request})`;
}

/** The backend's reply to this request carries a body (see REQUESTS). */
export function hasReplyBody(request: number): boolean {
  return REQUESTS[request]?.replyBody === true;
}

// ---- Header flags ----
/** Lower 2 bits of flags: the protocol version, always 1. */
export const VHOST_USER_VERSION_MASK = 0x3;
export const VHOST_USER_VERSION = 0x1;
/** Set on every message the backend sends in answer to a request. */
export const VHOST_USER_REPLY_MASK = 0x4;
/** REPLY_ACK: the frontend wants a u64 status for a request that has no reply body. */
export const VHOST_USER_NEED_REPLY_MASK = 0x8;
/** Bits a header may carry; anything else is a malformed header. */
const KNOWN_FLAGS = VHOST_USER_VERSION_MASK | VHOST_USER_REPLY_MASK | VHOST_USER_NEED_REPLY_MASK;

/** SET_VRING_KICK/CALL/ERR u64: bits 0-7 are the ring index, bit 8 says "no fd in the ancillary data". */
export const VHOST_USER_VRING_IDX_MASK = 0xff;
export const VHOST_USER_VRING_NOFD_MASK = 0x100;

/** VHOST_MEMORY_BASELINE_NREGIONS: the most regions (and fds) one SET_MEM_TABLE may carry. */
export const VHOST_MEMORY_BASELINE_NREGIONS = 8;

export const VHOST_USER_HDR_SIZE = 12;
/** Largest payload we accept. The biggest message we understand is SET_MEM_TABLE at 8 + 8*32 = 264
 * bytes; GET/SET_CONFIG can reach 12 + 256. Anything above 4 KiB is hostile or broken. */
export const VHOST_USER_MAX_PAYLOAD = 4096;

const U64_SIZE = 8;
const VRING_STATE_SIZE = 8;
const VRING_ADDR_SIZE = 40;
const MEM_REGION_SIZE = 32;
const MEM_TABLE_HDR_SIZE = 8;
const SINGLE_MEM_REGION_SIZE = 8 + MEM_REGION_SIZE;

export type ProtocolErrorCode =
  | 'SHORT_HEADER'
  | 'BAD_VERSION'
  | 'BAD_FLAGS'
  | 'PAYLOAD_TOO_LARGE'
  | 'SHORT_PAYLOAD'
  | 'SIZE_MISMATCH'
  | 'TOO_MANY_REGIONS'
  | 'BAD_FD_COUNT'
  | 'BAD_VALUE'
  | 'UNEXPECTED_REPLY'
  | 'TIMEOUT';

/** A message that does not follow the wire format. `request` is set when the header was readable. */
export class ProtocolError extends Error {
  readonly code: ProtocolErrorCode;
  readonly request: number | undefined;
  constructor(code: ProtocolErrorCode, message: string, request?: number) {
    super(request === undefined ? message : `${requestName(request)}: ${message}`);
    this.name = 'ProtocolError';
    this.code = code;
    this.request = request;
  }
}

// ---- Header ----
export interface VhostUserHeader {
  request: number;
  flags: number;
  size: number;
}

export function encodeHeader(h: VhostUserHeader): Buffer {
  const b = Buffer.alloc(VHOST_USER_HDR_SIZE);
  b.writeUInt32LE(h.request >>> 0, 0);
  b.writeUInt32LE(h.flags >>> 0, 4);
  b.writeUInt32LE(h.size >>> 0, 8);
  return b;
}

/** Decodes and checks a header: version bits must be 1, no unknown flag bits, size within maxPayload. */
export function decodeHeader(buf: Buffer, maxPayload = VHOST_USER_MAX_PAYLOAD): VhostUserHeader {
  if (buf.length < VHOST_USER_HDR_SIZE) {
    throw new ProtocolError('SHORT_HEADER', `header needs ${VHOST_USER_HDR_SIZE} bytes, got ${buf.length}`);
  }
  const request = buf.readUInt32LE(0);
  const flags = buf.readUInt32LE(4);
  const size = buf.readUInt32LE(8);
  if ((flags & VHOST_USER_VERSION_MASK) !== VHOST_USER_VERSION) {
    throw new ProtocolError('BAD_VERSION', `version bits are ${flags & VHOST_USER_VERSION_MASK}, expected 1`, request);
  }
  if ((flags & ~KNOWN_FLAGS) !== 0) {
    throw new ProtocolError('BAD_FLAGS', `unknown flag bits 0x${((flags & ~KNOWN_FLAGS) >>> 0).toString(16)}`, request);
  }
  if (size > maxPayload) {
    throw new ProtocolError('PAYLOAD_TOO_LARGE', `payload of ${size} bytes is over the ${maxPayload}-byte limit`, request);
  }
  return { request, flags, size };
}

/** Header and payload in one buffer, so one sendmsg() carries both along with any fds. */
export function encodeMessage(request: number, flags: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  return Buffer.concat([encodeHeader({ request, flags, size: payload.length }), payload]);
}

// ---- Payload helpers ----
function expectSize(payload: Buffer, size: number, request: number | undefined, what: string): void {
  if (payload.length < size) {
    throw new ProtocolError('SHORT_PAYLOAD', `${what} needs ${size} bytes, got ${payload.length}`, request);
  }
  if (payload.length !== size) {
    throw new ProtocolError('SIZE_MISMATCH', `${what} is ${size} bytes, got ${payload.length}`, request);
  }
}

/** Requests with no payload (GET_FEATURES, SET_OWNER, ...) must not carry one. */
export function expectEmpty(payload: Buffer, request?: number): void {
  if (payload.length !== 0) {
    throw new ProtocolError('SIZE_MISMATCH', `expects no payload, got ${payload.length} bytes`, request);
  }
}

const U64_MAX = (1n << 64n) - 1n;
function u64(v: bigint, what: string): bigint {
  if (v < 0n || v > U64_MAX) throw new RangeError(`${what} does not fit in a u64: ${v}`);
  return v;
}
function u32(v: number, what: string): number {
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new RangeError(`${what} does not fit in a u32: ${v}`);
  return v;
}

// ---- u64 ----
export function encodeU64(v: bigint): Buffer {
  const b = Buffer.alloc(U64_SIZE);
  b.writeBigUInt64LE(u64(v, 'value'), 0);
  return b;
}

export function decodeU64(payload: Buffer, request?: number): bigint {
  expectSize(payload, U64_SIZE, request, 'u64 payload');
  return payload.readBigUInt64LE(0);
}

// ---- vring state {index, num} ----
export interface VringState {
  index: number;
  num: number;
}

export function encodeVringState(s: VringState): Buffer {
  const b = Buffer.alloc(VRING_STATE_SIZE);
  b.writeUInt32LE(u32(s.index, 'index'), 0);
  b.writeUInt32LE(u32(s.num, 'num'), 4);
  return b;
}

export function decodeVringState(payload: Buffer, request?: number): VringState {
  expectSize(payload, VRING_STATE_SIZE, request, 'vring state');
  return { index: payload.readUInt32LE(0), num: payload.readUInt32LE(4) };
}

// ---- vring addr {index, flags, desc, used, avail, log} ----
/** VHOST_VRING_F_LOG in vring addr flags: log used-ring writes at `log` (a guest physical address). */
export const VHOST_VRING_F_LOG = 0x1;

export interface VringAddrMessage {
  index: number;
  flags: number;
  desc: bigint;
  used: bigint;
  avail: bigint;
  log: bigint;
}

export function encodeVringAddr(a: VringAddrMessage): Buffer {
  const b = Buffer.alloc(VRING_ADDR_SIZE);
  b.writeUInt32LE(u32(a.index, 'index'), 0);
  b.writeUInt32LE(u32(a.flags, 'flags'), 4);
  b.writeBigUInt64LE(u64(a.desc, 'desc'), 8);
  b.writeBigUInt64LE(u64(a.used, 'used'), 16);
  b.writeBigUInt64LE(u64(a.avail, 'avail'), 24);
  b.writeBigUInt64LE(u64(a.log, 'log'), 32);
  return b;
}

export function decodeVringAddr(payload: Buffer, request?: number): VringAddrMessage {
  expectSize(payload, VRING_ADDR_SIZE, request, 'vring address');
  return {
    index: payload.readUInt32LE(0),
    flags: payload.readUInt32LE(4),
    desc: payload.readBigUInt64LE(8),
    used: payload.readBigUInt64LE(16),
    avail: payload.readBigUInt64LE(24),
    log: payload.readBigUInt64LE(32),
  };
}

// ---- SET_LOG_BASE {mmap_size u64, mmap_offset u64} (VhostUserLog) ----
const LOG_SIZE = 16;
export interface LogDesc {
  size: bigint;
  offset: bigint;
}

export function encodeLog(l: LogDesc): Buffer {
  const b = Buffer.alloc(LOG_SIZE);
  b.writeBigUInt64LE(u64(l.size, 'size'), 0);
  b.writeBigUInt64LE(u64(l.offset, 'offset'), 8);
  return b;
}

export function decodeLog(payload: Buffer, request: number = VHOST_USER_SET_LOG_BASE): LogDesc {
  expectSize(payload, LOG_SIZE, request, 'log description');
  return { size: payload.readBigUInt64LE(0), offset: payload.readBigUInt64LE(8) };
}

/** SEND_RARP payload: a u64 whose first 6 bytes are the guest's MAC. Returns it as "52:54:00:...". */
export function decodeRarpMac(payload: Buffer, request: number = VHOST_USER_SEND_RARP): string {
  expectSize(payload, U64_SIZE, request, 'SEND_RARP payload');
  const mac = [...payload.subarray(0, 6)].map((x) => x.toString(16).padStart(2, '0')).join(':');
  if (payload[0]! & 1) throw new ProtocolError('BAD_VALUE', `not a unicast MAC: ${mac}`, request);
  return mac;
}

export function encodeRarpMac(mac: string): Buffer {
  const b = Buffer.alloc(U64_SIZE);
  Buffer.from(mac.split(':').map((h) => parseInt(h, 16))).copy(b, 0);
  return b;
}

// ---- memory regions ----
/** One region as it travels on the wire; field names match native MemRegion (which adds the fd). */
export interface MemoryRegionDesc {
  guestPhysAddr: bigint;
  size: bigint;
  userAddr: bigint;
  mmapOffset: bigint;
}

function writeRegion(b: Buffer, off: number, r: MemoryRegionDesc): void {
  b.writeBigUInt64LE(u64(r.guestPhysAddr, 'guest address'), off);
  b.writeBigUInt64LE(u64(r.size, 'size'), off + 8);
  b.writeBigUInt64LE(u64(r.userAddr, 'user address'), off + 16);
  b.writeBigUInt64LE(u64(r.mmapOffset, 'mmap offset'), off + 24);
}

function readRegion(b: Buffer, off: number): MemoryRegionDesc {
  return {
    guestPhysAddr: b.readBigUInt64LE(off),
    size: b.readBigUInt64LE(off + 8),
    userAddr: b.readBigUInt64LE(off + 16),
    mmapOffset: b.readBigUInt64LE(off + 24),
  };
}

/** SET_MEM_TABLE payload: {nregions u32, padding u32, regions[nregions]}, sized to the regions sent. */
export function encodeMemoryTable(regions: readonly MemoryRegionDesc[]): Buffer {
  if (regions.length > VHOST_MEMORY_BASELINE_NREGIONS) {
    throw new RangeError(`at most ${VHOST_MEMORY_BASELINE_NREGIONS} regions, got ${regions.length}`);
  }
  const b = Buffer.alloc(MEM_TABLE_HDR_SIZE + regions.length * MEM_REGION_SIZE);
  b.writeUInt32LE(regions.length, 0);
  regions.forEach((r, i) => writeRegion(b, MEM_TABLE_HDR_SIZE + i * MEM_REGION_SIZE, r));
  return b;
}

export function decodeMemoryTable(payload: Buffer, request: number = VHOST_USER_SET_MEM_TABLE): MemoryRegionDesc[] {
  if (payload.length < MEM_TABLE_HDR_SIZE) {
    throw new ProtocolError('SHORT_PAYLOAD', `memory table needs ${MEM_TABLE_HDR_SIZE} bytes, got ${payload.length}`, request);
  }
  const n = payload.readUInt32LE(0);
  if (n > VHOST_MEMORY_BASELINE_NREGIONS) {
    throw new ProtocolError('TOO_MANY_REGIONS', `${n} regions, at most ${VHOST_MEMORY_BASELINE_NREGIONS}`, request);
  }
  expectSize(payload, MEM_TABLE_HDR_SIZE + n * MEM_REGION_SIZE, request, `memory table of ${n} regions`);
  const regions: MemoryRegionDesc[] = [];
  for (let i = 0; i < n; i++) regions.push(readRegion(payload, MEM_TABLE_HDR_SIZE + i * MEM_REGION_SIZE));
  return regions;
}

/** ADD_MEM_REG / REM_MEM_REG payload: {padding u64, region}. */
export function encodeSingleMemRegion(r: MemoryRegionDesc): Buffer {
  const b = Buffer.alloc(SINGLE_MEM_REGION_SIZE);
  writeRegion(b, 8, r);
  return b;
}

export function decodeSingleMemRegion(payload: Buffer, request?: number): MemoryRegionDesc {
  expectSize(payload, SINGLE_MEM_REGION_SIZE, request, 'single memory region');
  return readRegion(payload, 8);
}

// ---- SET_VRING_KICK / CALL / ERR u64 ----
export interface VringFdPayload {
  index: number;
  /** VHOST_USER_VRING_NOFD_MASK: no fd came with the message (kick: poll the ring; call: no interrupts). */
  noFd: boolean;
}

export function encodeVringFd(p: VringFdPayload): Buffer {
  if (!Number.isInteger(p.index) || p.index < 0 || p.index > VHOST_USER_VRING_IDX_MASK) {
    throw new RangeError(`vring index ${p.index} does not fit in 8 bits`);
  }
  return encodeU64(BigInt(p.index | (p.noFd ? VHOST_USER_VRING_NOFD_MASK : 0)));
}

/** Decodes the u64 and checks that no bits beyond the index and NOFD flag are set. */
export function decodeVringFd(payload: Buffer, request?: number): VringFdPayload {
  const v = decodeU64(payload, request);
  const known = BigInt(VHOST_USER_VRING_IDX_MASK | VHOST_USER_VRING_NOFD_MASK);
  if ((v & ~known) !== 0n) {
    throw new ProtocolError('BAD_VALUE', `unknown bits 0x${(v & ~known).toString(16)} in vring fd payload`, request);
  }
  return { index: Number(v & BigInt(VHOST_USER_VRING_IDX_MASK)), noFd: (v & BigInt(VHOST_USER_VRING_NOFD_MASK)) !== 0n };
}

/** Checks the number of fds that came with a message, for messages with a fixed count. */
export function expectFdCount(fds: readonly number[], expected: number, request: number): void {
  if (fds.length !== expected) {
    throw new ProtocolError('BAD_FD_COUNT', `expects ${expected} fd(s), got ${fds.length}`, request);
  }
}
