// The daemon's own memory, for GET /v1/stats and the metrics: resident set, V8's heap, and the C/C++ heap the
// data plane allocates from. A leak shows as one of them growing while the ports stay the same.
import { native } from './native.js';

export interface ProcessMemory {
  rssBytes: number;
  /** V8 heap in use (JavaScript objects). */
  heapUsedBytes: number;
  /** Memory of JavaScript-owned native objects (Buffers, ArrayBuffers). */
  externalBytes: number;
  /** glibc malloc in use (the data plane, the addon, Node's own C++), when the addon reports it. */
  mallocInUseBytes?: number;
}

export function processMemory(): ProcessMemory {
  const m = process.memoryUsage();
  const out: ProcessMemory = { rssBytes: m.rss, heapUsedBytes: m.heapUsed, externalBytes: m.external };
  try {
    out.mallocInUseBytes = native().mallocStats().inUseBytes;
  } catch {
    /* an addon without mallocStats (or none): leave it out */
  }
  return out;
}
