// GET /v1/ports/{name}/capture: a running capture streamed as a pcap file (tcpdump's format, nanosecond
// timestamps, Ethernet), until `count` frames, the client hanging up, or the port going away. The data plane
// copies frames into a ring only while this runs; a client that reads slower than the port sends loses frames,
// counted in the Capture-Dropped trailer and the log, and never slows the port.
import type http from 'node:http';
import type { CaptureSession } from '../switch/views.js';

export const PCAP_CONTENT_TYPE = 'application/vnd.tcpdump.pcap';
/** How often the ring is drained. */
const POLL_MS = 20;

/** The pcap file header: nanosecond magic 0xa1b23c4d, version 2.4, snaplen, LINKTYPE_ETHERNET. */
export function pcapHeader(snaplen: number): Buffer {
  const b = Buffer.alloc(24);
  b.writeUInt32LE(0xa1b23c4d, 0);
  b.writeUInt16LE(2, 4);
  b.writeUInt16LE(4, 6);
  b.writeUInt32LE(snaplen, 16);
  b.writeUInt32LE(1, 20);
  return b;
}

export interface CaptureResult {
  frames: number;
  dropped: bigint;
}

/** Streams the session into res; resolves when it ends (and the capture is stopped). */
export async function streamCapture(cap: CaptureSession, res: http.ServerResponse, snaplen: number, count?: number): Promise<CaptureResult> {
  let frames = 0;
  let dropped = 0n;
  let closed = false;
  res.on('close', () => (closed = true));
  try {
    res.write(pcapHeader(snaplen));
    while (!closed && (count === undefined || frames < count)) {
      const r = cap.read(count === undefined ? undefined : count - frames);
      if (!r) break;  // the port went away
      dropped = r.dropped;
      if (r.records) {
        frames += r.records;
        if (!res.write(r.data)) await new Promise<void>((resolve) => (res.once('drain', resolve), res.once('close', resolve)));
        continue;
      }
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  } finally {
    cap.stop();
  }
  if (!closed) {
    res.addTrailers({ 'Capture-Frames': String(frames), 'Capture-Dropped': String(dropped) });
    res.end();
  }
  return { frames, dropped };
}
