// The typed surface of the native addon (build/Release/vhost_switch.node).
// Everything here is a thin wrapper over native/*.cc; no JavaScript runs per packet. A control call the data
// plane refuses throws NativeError with the status code of native/switch/status.h; argument checks of the
// binding itself throw TypeError/RangeError.
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

/** Bytes and file descriptors received by one recvmsg() call. */
export interface RecvResult {
  data: Buffer;
  fds: number[];
}

/** One region of SET_MEM_TABLE, as the frontend sent it, plus the fd that came with it. */
export interface MemRegion {
  guestPhysAddr: bigint;
  size: bigint;
  userAddr: bigint;
  mmapOffset: bigint;
  fd: number;
}

/** SET_VRING_ADDR payload: frontend (QEMU) virtual addresses of the ring parts. */
export interface VringAddr {
  flags: number;
  desc: bigint;
  used: bigint;
  avail: bigint;
  log: bigint;
}

/** SET_LOG_BASE payload (VhostUserLog) and the fd that came with it. */
export interface LogRegion {
  fd: number;
  size: bigint;
  offset: bigint;
}

export interface LogInfo {
  size: bigint;
  /** Pages written that the log did not cover (a log too small for the memory). */
  outside: bigint;
  logging: boolean;
}

/** Port security (native/switch/port_security.h): the MACs a port may send from, and the addresses it may claim. */
export interface PortSecurityOptions {
  /** The port's MAC first, then its allowed MACs. Frames from any other source MAC are dropped (`spoofed`). */
  macs: string[];
  /**
   * IPv4/IPv6 addresses or CIDR prefixes. Empty: only the source MAC is checked. Otherwise the source address, the
   * ARP sender and the ND target must be inside them, and only IPv4, ARP and IPv6 frames leave the port.
   */
  ips: string[];
}


/** A port's VLAN membership (native/switch/vlan.h); config.ts portSpecSchema validates it first. */
export interface VlanOptions {
  /** Access port: its VLAN (0: the untagged default domain). Trunk: the native VLAN, untagged. Default 0. */
  vlan?: number;
  /** Trunk: carry the allowed VLANs 802.1Q-tagged besides `vlan`. Access ports drop tagged frames. */
  trunk?: boolean;
  /** Trunks only: the tagged VLANs carried (1..4094); absent = every VLAN. */
  allowedVlans?: number[];
}

export interface PortOptions extends VlanOptions {
  name: string;
  /** Maximum queue pairs the port offers (GET_QUEUE_NUM). */
  queuePairs: number;
  mtu: number;
  /** Omitted: port security off. */
  security?: PortSecurityOptions;
  /** Poll thread per queue pair, -1 where the switch places it; omitted: all placed by the switch. */
  queueThreads?: number[];
}

export interface QueueStats {
  index: number;
  started: boolean;
  enabled: boolean;
  /** Stopped after bad descriptors or memory until the frontend resets it. */
  broken: boolean;
  packets: bigint;
  bytes: bigint;
  /** Drops counted on this queue, by reason. */
  drops: Record<string, bigint>;
}

export interface PortStats {
  id: number;
  name: string;
  /** Frames the switch received from the guest (guest TX virtqueues). */
  rxPackets: bigint;
  rxBytes: bigint;
  /** Frames the switch delivered to the guest (guest RX virtqueues). */
  txPackets: bigint;
  txBytes: bigint;
  /** Drops by reason. */
  drops: Record<string, bigint>;
  /** True once a ring was marked broken (bad descriptors) until the frontend resets it. */
  broken: boolean;
  /** NIC ports: the backend in use. */
  backend?: 'af_packet' | 'af_xdp' | 'tap';
  /** AF_XDP: the program runs in the driver (native) or in the generic (SKB) hook. */
  xdpMode?: 'native' | 'generic';
  /** Backend 'auto' that fell back to AF_PACKET: why AF_XDP could not be had. */
  backendNote?: string;
  queues: QueueStats[];
}

export interface ThreadStats {
  thread: number;
  busyCycles: bigint;
  idleCycles: bigint;
  packets: bigint;
  /** Poll passes that moved packets: packets / busyPasses is the mean burst the thread found per pass. */
  busyPasses: bigint;
  /** Times the thread parked for a control change (every reconfiguration parks every poll thread once). */
  parks: bigint;
  /** Times the thread slept on its kick eventfds (idle). */
  sleeps: bigint;
  /** busyCycles / packets, 0 when no packets. */
  cyclesPerPacket: number;
  sleeping: boolean;
  /** The CPU the thread is pinned to, or null. */
  cpu: number | null;
  /** The queues it polls: a guest's queue pair (its transmit ring) or a NIC queue. */
  queues: Array<{ portId: number; queue: number; pinned: boolean }>;
}

export interface ParkStats {
  control: bigint;
  housekeeping: bigint;
}

export type CaptureDirection = 'in' | 'out' | 'both';

export interface CaptureRead {
  /** pcap records (nanosecond timestamps), ready to append after a pcap file header. */
  data: Buffer;
  records: number;
  captured: bigint;
  /** Frames the ring had no room for (the reader was slow). */
  dropped: bigint;
}

export interface FdbEntry {
  mac: string;
  vlan: number;
  portId: number;
  static: boolean;
  ageSeconds: number;
}

export interface SwitchOptions {
  /** Number of poll threads (default 1). */
  threads?: number;
  /** CPU to pin each poll thread to (index = thread); -1 or missing = no pinning. */
  cpus?: number[];
  /** MAC aging in seconds (default 300). */
  agingSeconds?: number;
  /** FDB slots = 2^fdbSizeLog2, 8..24 (default 16: 65,536 slots, at most 75% filled). */
  fdbSizeLog2?: number;
  /** Busy-poll this long without traffic before sleeping on kick eventfds (default 1000). */
  idleMicros?: number;
}

/**
 * The data plane. Ports are numbered by addPort(). All setters mirror vhost-user messages and are applied
 * on the poll thread between bursts (the call returns once applied). Setters throw Error with a message
 * on bad input; they never crash the process.
 *
 * Ownership: every fd passed in (mem regions, kick, call, err) belongs to the native side from then on
 * (closed when replaced, on resetPort, or on error).
 *
 * Ring life cycle (vhost-user spec): setVringKick starts the ring (fd -1 = VHOST_USER_VRING_NOFD_MASK:
 * the ring is polled without kicks); getVringBase stops it and returns the next avail index to process.
 * A started ring carries packets only while enabled (setVringEnable).
 */
export interface NicPortOptions extends VlanOptions {
  name: string;
  /** nic: AF_PACKET on an existing interface; tap: a tap device the switch creates. */
  kind: 'nic' | 'tap';
  iface: string;
  /** AF_PACKET sockets in one PACKET_FANOUT group (tap: 1). */
  queues?: number;
  mtu?: number;
  /**
   * nic only. 'auto': AF_XDP if the kernel and interface allow it, else AF_PACKET (portStats().backendNote
   * says why); 'af_xdp' or 'af_packet' forced. Omitted: AF_PACKET.
   */
  backend?: NicBackend;
  /** Omitted: port security off. */
  security?: PortSecurityOptions;
  /** Poll thread per queue, -1 where the switch places it. */
  queueThreads?: number[];
}

export type NicBackend = 'auto' | 'af_xdp' | 'af_packet';

export interface NativeSwitch {
  addPort(opts: PortOptions): number;
  /** Opens the interface (throws with the reason if it cannot) and adds the port. */
  addNicPort(opts: NicPortOptions): number;
  removePort(id: number): void;
  /** Frontend went away or RESET_OWNER: stop all rings, unmap memory, close fds, forget features. */
  resetPort(id: number): void;
  setFeatures(id: number, features: bigint): void;
  setMemTable(id: number, regions: MemRegion[]): void;
  /** ADD_MEM_REG: one more region (the fd is native's); running rings it covers again resume. */
  addMemReg(id: number, region: MemRegion): void;
  /** REM_MEM_REG: the region of this guest address, size and user address goes; rings it held pause. */
  remMemReg(id: number, region: Omit<MemRegion, 'fd'>): void;
  /** GET_MAX_MEM_SLOTS: how many regions ADD_MEM_REG may build up. */
  maxMemSlots(): number;
  setVringNum(id: number, index: number, num: number): void;
  setVringAddr(id: number, index: number, addr: VringAddr): void;
  setVringBase(id: number, index: number, base: number): void;
  /**
   * SET_LOG_BASE: maps the dirty log (fd -1: none came, refused). From then on, while the features carry
   * VHOST_F_LOG_ALL, every page the switch writes into the guest's memory gets its bit set; with VHOST_VRING_F_LOG
   * in a ring's address flags, its used ring writes too (at addr.log, a guest physical address).
   */
  setLogBase(id: number, log: LogRegion): void;
  /** The port's dirty log: size 0 when none is mapped; `logging` while some ring writes it. */
  logInfo(id: number): LogInfo;
  /** SEND_RARP: a RARP from mac enters the switch on this port (FDB learning, flooded in its VLAN). */
  sendRarp(id: number, mac: string): void;
  getVringBase(id: number, index: number): number;
  setVringKick(id: number, index: number, fd: number): void;
  setVringCall(id: number, index: number, fd: number): void;
  setVringErr(id: number, index: number, fd: number): void;
  setVringEnable(id: number, index: number, enable: boolean): void;
  portStats(id: number): PortStats;
  threadStats(): ThreadStats[];
  /** Times the poll threads were parked: for control calls (a refused one never parks), and by the switch itself
   * (the respread after SET_VRING_ENABLE, closing retired fds). */
  parkStats(): ParkStats;
  /** Swaps in a running port's VLAN membership, port security and queue placement (no renegotiation). */
  updatePort(id: number, opts: VlanOptions & { security?: PortSecurityOptions; queueThreads?: number[] }): void;
  /** TSC ticks per second (the unit of the cycle counters). */
  tscHz(): number;
  /** Starts copying the port's frames into a capture ring (native/switch/capture.h); one capture per port. */
  startCapture(portId: number, opts?: { direction?: CaptureDirection; snaplen?: number; bufferBytes?: number }): void;
  /** Whole pcap records captured since the last read (at most maxBytes / maxRecords); null when none runs. */
  readCapture(portId: number, maxBytes: number, maxRecords?: number): CaptureRead | null;
  stopCapture(portId: number): void;
  fdbList(): FdbEntry[];
  fdbAdd(mac: string, vlan: number, portId: number): void;
  /** Removes the entry for mac+vlan (static or learned); false when there was none. */
  fdbRemove(mac: string, vlan: number): boolean;
  fdbFlush(portId?: number): void;
  close(): void;
}

export interface FdWatcher {
  /** Watch for readability (and writability if asked); cb runs on the JS thread. */
  start(readable: boolean, writable: boolean): void;
  stop(): void;
  close(): void;
}

export interface NativeLimits {
  maxThreads: number;
  maxQueuePairs: number;
  minMtu: number;
  maxMtu: number;
  maxQueueSize: number;
  maxNicQueues: number;
  dropReasons: string[];
}

export interface NativeAddon extends NativeAddonFrontend {
  /** Non-blocking listening AF_UNIX stream socket bound at path (the caller removes stale files first). */
  unixListen(path: string, backlog: number): number;
  /** Non-blocking connect; throws an Error with .code (ENOENT, ECONNREFUSED, ...) on failure. */
  unixConnect(path: string): number;
  /** Accepts one connection; -1 when none is pending. */
  unixAccept(fd: number): number;
  /** One recvmsg of up to maxBytes with SCM_RIGHTS; null on EAGAIN; empty data and no fds = EOF. */
  recvMsg(fd: number, maxBytes: number): RecvResult | null;
  /** sendmsg with optional SCM_RIGHTS; returns bytes sent; throws on error. */
  sendMsg(fd: number, data: Buffer, fds: number[]): number;
  closeFd(fd: number): void;
  /** One datagram to an AF_UNIX datagram socket ('@name': abstract), as sd_notify(3) sends; throws on error. */
  notifySend(socketPath: string, message: string): number;
  /** A libuv poll watcher on fd; cb(status, events) with events bit 1 = readable, 2 = writable. */
  FdWatcher: new (fd: number, cb: (status: number, events: number) => void) => FdWatcher;
  Switch: new (opts: SwitchOptions) => NativeSwitch;
  /** native/switch/limits.h and the drop reasons of native/core/counters.h; src/dataplane/limits.ts mirrors them. */
  limits: NativeLimits;
  /** glibc's malloc figures for the whole process (mallinfo2): in use (including mmapped chunks), mmapped, arena. */
  mallocStats(): { inUseBytes: number; mmappedBytes: number; arenaBytes: number };
  /** A memory-reducing V8 collection and malloc_trim(0); true when glibc gave memory back. Blocks the main thread. */
  trimMemory(): boolean;
}

/** The codes of native/switch/status.h (status_code_name), as a refused control call carries them. */
export const NATIVE_ERROR_CODES = ['INVALID_ARGUMENT', 'NOT_FOUND', 'BUSY', 'UNAVAILABLE', 'INTERNAL'] as const;
export type NativeErrorCode = (typeof NATIVE_ERROR_CODES)[number];

/** What the data plane throws when it refuses a control call: the reason, and a code to act on. */
export class NativeError extends Error {
  readonly code: NativeErrorCode;
  constructor(message: string, code: string) {
    super(message);
    this.name = 'NativeError';
    // An unknown code is a newer addon than this file: the caller cannot act on it, so it is internal.
    this.code = (NATIVE_ERROR_CODES as readonly string[]).includes(code) ? (code as NativeErrorCode) : 'INTERNAL';
  }
}

const require = createRequire(import.meta.url);

function findAddon(): string {
  // dist/src/dataplane/native.js or src/dataplane/native.ts: the project root is where binding.gyp lives.
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i++) {
    const candidate = path.join(dir, 'build', 'Release', 'vhost_switch.node');
    try {
      require.resolve(candidate);
      return candidate;
    } catch {
      dir = path.dirname(dir);
    }
  }
  throw new Error('native addon build/Release/vhost_switch.node not found: run `npm run build:native`');
}

let cached: NativeAddon | undefined;
export function native(): NativeAddon {
  if (!cached) {
    const addon = require(findAddon()) as NativeAddon & { setErrorClass(cls: typeof NativeError): void };
    addon.setErrorClass(NativeError);
    cached = addon;
  }
  return cached;
}

/** Addresses and eventfds of one vring of our own driver, as the handshake sends them. */
export interface DriverVring {
  desc: bigint;
  avail: bigint;
  used: bigint;
  kickFd: number;
  callFd: number;
}

export interface DriverInfo {
  memFd: number;
  memSize: bigint;
  memUva: bigint;
  queueSize: number;
  hdrLen: number;
  vrings: DriverVring[];
}

/**
 * Our virtio-net driver (the guest role) over a memfd we create: used by the generator, tests and the
 * hostile frontend. Queue 0 = receive, 1 = transmit (2k / 2k+1 per pair). The fds stay ours: sending them
 * over a socket passes duplicates.
 */
export interface NativeDriver {
  info(): DriverInfo;
  setFeatures(features: bigint): void;
  fillRx(queue: number): void;
  /** Sends frames (Ethernet header onwards); returns how many fitted in the ring. */
  send(queue: number, frames: Buffer[]): number;
  recv(queue: number, max?: number): Buffer[];
  reclaimTx(queue: number): number;
  // Raw ring access for hostile tests.
  writeDesc(queue: number, index: number, addr: bigint, len: number, flags: number, next: number): void;
  writeBuf(queue: number, index: number, data: Buffer): void;
  bufGpa(queue: number, index: number): bigint;
  pushAvail(queue: number, head: number): void;
  setAvailIdx(queue: number, idx: number): void;
  kick(queue: number): void;
  usedIdx(queue: number): number;
}

export interface GeneratorPortOptions {
  /** sink: receive and count; source: send (at ratePps, 0 = as fast as possible) and receive; io: forward to peer. */
  role: 'sink' | 'source' | 'io';
  peer?: number;
  srcMac?: string;
  dstMac?: string;
  sizes?: number[];
  ratePps?: number;
  count?: number;
  /** io: frames injected once at start, as testpmd's `start tx_first`. */
  firstBurst?: number;
}

export interface GeneratorPortStats {
  txPackets: bigint;
  txBytes: bigint;
  rxPackets: bigint;
  rxBytes: bigint;
  txRingFull: bigint;
  latencySamples: bigint;
  latencyP50Ns: number;
  latencyP99Ns: number;
  latencyP999Ns: number;
}

export interface NativeGenerator {
  addPort(driver: NativeDriver, opts: GeneratorPortOptions): number;
  start(): void;
  stop(): void;
  stats(): GeneratorPortStats[];
}

export interface NativeAddonFrontend {
  Driver: new (opts?: { queueSize?: number; queuePairs?: number; bufSize?: number; packed?: boolean }) => NativeDriver;
  /** idleSleepMicros: sleep after a pass that moved nothing instead of spinning (0..100000; 0 spins). */
  Generator: new (opts?: { cpu?: number; idleSleepMicros?: number }) => NativeGenerator;
}
