// The two sides of a measurement: a device under test (DUT) that owns vhost-user sockets and forwards
// between them, and a traffic generator that attaches to two of those sockets and keeps frames looping.

export type DutName = 'vhost-switch' | 'testpmd' | 'ovs';
export type GenName = 'testpmd' | 'gen';

/** "64", "512", "1518" or "imix". */
export type SizeLabel = string;

export interface WindowStats {
  /** DUT processing cycles per packet over the window (what the DUT itself reports), if it reports any. */
  cyclesPerPacket?: number;
  /** Share of the DUT's poll thread spent processing packets over the window, 0..1, if reported. */
  busy?: number;
  /** Mean frames the DUT found per busy poll pass (its burst size), if reported. */
  framesPerPass?: number;
}

export interface Dut {
  readonly name: DutName;
  /** Sockets the DUT listens on (generators connect); traffic uses the first two. */
  readonly sockets: string[];
  /** The process whose CPU use is measured. */
  readonly pid: number;
  start(): Promise<void>;
  /** Resets or snapshots the DUT's own counters at the start of a measurement window. */
  windowStart(): Promise<void>;
  windowEnd(): Promise<WindowStats>;
  stop(): Promise<void>;
  version(): string;
}

export interface GenCounters {
  /** process.hrtime.bigint() at the read. */
  tNs: bigint;
  rxPackets: number;
  rxBytes: number;
}

export interface TrafficGen {
  readonly name: GenName;
  /** Attaches to the two sockets and starts the io loop with frames of `size`. */
  start(sockets: [string, string], size: SizeLabel): Promise<void>;
  /** Received frames summed over both ports: what the DUT delivered in both directions. */
  counters(): Promise<GenCounters>;
  stop(): Promise<void>;
}

export interface ThroughputSample {
  mpps: number;
  gbps: number;
  cyclesPerPacket?: number;
  busy?: number;
  framesPerPass?: number;
  /** Core-to-core cache-line round trip between the generator's and the DUT's CPU, measured with both idle just
   * before this DUT instance started (ns; bench/native/c2c.cc). */
  c2cNs?: number;
}

export interface LatencySample {
  ratePps: number;
  /** Received rate at the sink over the window, in Mpps. */
  rxMpps: number;
  /** 1 - received/sent over the window. */
  loss: number;
  p50Us: number;
  p99Us: number;
  p999Us: number;
}
