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
  /** What was in use right after the last full collection (SIGUSR2 with --expose-gc), when there was one. */
  collected?: Collected;
}

export interface Collected {
  /** When it ran (ms since the epoch). */
  atMs: number;
  heapUsedBytes: number;
  mallocInUseBytes?: number;
}

let collected: Collected | undefined;

function mallocInUse(): { inUseBytes: number; heldBytes: number } | undefined {
  try {
    const ms = native().mallocStats();
    return { inUseBytes: ms.inUseBytes, heldBytes: ms.arenaBytes + ms.mmappedBytes };
  } catch {
    return undefined;  // an addon without mallocStats (or none)
  }
}

/**
 * Call right after a full garbage collection: what is in use then is what is alive. Read later (by GET /v1/stats,
 * say) the heap also holds what was allocated since, which is noise of a hundred KiB or more to a leak check.
 */
export function recordCollection(): void {
  collected = { atMs: Date.now(), heapUsedBytes: process.memoryUsage().heapUsed, mallocInUseBytes: mallocInUse()?.inUseBytes };
}

export function processMemory(): ProcessMemory {
  const m = process.memoryUsage();
  const out: ProcessMemory = { rssBytes: m.rss, heapUsedBytes: m.heapUsed, heapTotalBytes: m.heapTotal, externalBytes: m.external };
  const ms = mallocInUse();
  if (ms) {
    out.mallocInUseBytes = ms.inUseBytes;
    out.mallocHeldBytes = ms.heldBytes;
  }
  if (collected) out.collected = collected;
  return out;
}
