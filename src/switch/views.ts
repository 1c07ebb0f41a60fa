// What the switch reports of its running state, read from the data plane and named with the model's port names:
// the poll threads and their queues, the forwarding table, and captures.
import type { CaptureDirection, CaptureRead, FdbEntry, NativeSwitch, ThreadStats } from '../dataplane/native.js';
import type { Logger } from '../log.js';
import { fromNative } from './errors.js';

/** Bytes moved from a capture ring per read: a little over 14 full-size GSO frames. */
export const CAPTURE_READ_BYTES = 1 << 20;

export interface CaptureSession {
  /** Records captured since the last read; null once the port or the capture is gone. */
  read(maxRecords?: number): CaptureRead | null;
  stop(): void;
}

export interface ThreadView {
  thread: number;
  cpu: number | null;
  sleeping: boolean;
  busyPercent: number;
  packets: bigint;
  busyCycles: bigint;
  idleCycles: bigint;
  cyclesPerPacket: number;
  queues: Array<{ port: string; queue: number; pinned: boolean }>;
}

export interface FdbView {
  mac: string;
  vlan: number;
  port: string;
  static: boolean;
  ageSeconds: number;
}

/** Port names by data-plane id; an id without a name (a port going away) shows as "#id". */
export type PortNames = ReadonlyMap<number, string>;
const nameOf = (names: PortNames, id: number) => names.get(id) ?? `#${id}`;

/** Each thread's counters since its baseline (the stats at the last clear), with its queues by port name. */
export function threadViews(threads: ThreadStats[], baseline: ReadonlyMap<number, ThreadStats>, names: PortNames): ThreadView[] {
  return threads.map((t) => {
    const base = baseline.get(t.thread);
    const busy = t.busyCycles - (base?.busyCycles ?? 0n);
    const idle = t.idleCycles - (base?.idleCycles ?? 0n);
    const packets = t.packets - (base?.packets ?? 0n);
    return {
      thread: t.thread,
      cpu: t.cpu,
      sleeping: t.sleeping,
      busyPercent: busy + idle > 0n ? Number((busy * 10000n) / (busy + idle)) / 100 : 0,
      packets,
      busyCycles: busy,
      idleCycles: idle,
      cyclesPerPacket: packets > 0n ? Number(busy / packets) : 0,
      queues: t.queues.map((q) => ({ port: nameOf(names, q.portId), queue: q.queue, pinned: q.pinned })),
    };
  });
}

export function fdbViews(entries: FdbEntry[], names: PortNames): FdbView[] {
  return entries.map((e) => ({
    mac: e.mac,
    vlan: e.vlan,
    port: nameOf(names, e.portId),
    static: e.static,
    ageSeconds: e.ageSeconds,
  }));
}

/**
 * Starts capturing port `id` (named `name`). The session reads and stops only while `current()` says the port is
 * still the one it started on: the port may go (and its capture with it) while the capture runs.
 */
export function openCapture(
  dataPlane: NativeSwitch,
  log: Logger,
  port: { name: string; id: number; current: () => boolean },
  opts: { direction: CaptureDirection; snaplen: number },
): CaptureSession {
  const { name, id, current } = port;
  try {
    dataPlane.startCapture(id, { direction: opts.direction, snaplen: opts.snaplen });
  } catch (err) {
    throw fromNative(err, undefined, `capture on ${name}`);
  }
  log.info('capture started', { port: name, direction: opts.direction, snaplen: opts.snaplen });
  let stopped = false;
  return {
    read: (maxRecords) => (stopped || !current() ? null : dataPlane.readCapture(id, CAPTURE_READ_BYTES, maxRecords)),
    stop: () => {
      if (stopped) return;
      stopped = true;
      if (current()) dataPlane.stopCapture(id);
      log.info('capture stopped', { port: name });
    },
  };
}
