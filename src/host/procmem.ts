// The daemon's own memory, for GET /v1/stats and the metrics: resident set, V8's heap, and the C/C++ heap the
// data plane allocates from. A leak shows as one of them growing while the ports stay the same.
import { native } from '../dataplane/native.js';

export interface ProcessMemory {
  rssBytes: number;
  /** V8 heap in use (JavaScript objects, live or not yet collected). */
  heapUsedBytes: number;
  /** V8 heap committed (what it holds from the system for its spaces). */
  heapTotalBytes: number;
  /** Memory of JavaScript-owned native objects (Buffers, ArrayBuffers). */
  externalBytes: number;
  /** glibc malloc in use (the data plane, the addon, Node's own C++), when the addon reports it. */
  mallocInUseBytes?: number;
  /** glibc malloc's arenas plus its mmapped chunks: in use, free and fragmented together. */
  mallocHeldBytes?: number;
}

export function processMemory(): ProcessMemory {
  const m = process.memoryUsage();
  const out: ProcessMemory = { rssBytes: m.rss, heapUsedBytes: m.heapUsed, heapTotalBytes: m.heapTotal, externalBytes: m.external };
  try {
    const ms = native().mallocStats();
    out.mallocInUseBytes = ms.inUseBytes;
    out.mallocHeldBytes = ms.arenaBytes + ms.mmappedBytes;
  } catch {
    /* an addon without mallocStats (or none): leave it out */
  }
  return out;
}
