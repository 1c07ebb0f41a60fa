// Memory trim: after ports go away, hand the memory the daemon no longer uses back to the system.
//
// Why: V8 collects the old generation only when it has grown to a multiple of what is alive (up to 4x on a
// machine with much memory), and even then keeps the pages it emptied; glibc keeps freed chunks in its arenas.
// A daemon whose ports come and go therefore grew its RSS all through a 30-minute soak (~300 KiB a minute),
// although nothing leaked (docs/notes.md, "Memory under churn"). A trim a few seconds after a port is
// removed (V8's memory-reducing collection and malloc_trim, native/node/binding.cc) brings it back to what is alive.
// It costs 10-30 ms of the main thread (the control plane; the data plane's threads run on), and it runs at
// most once per `minIntervalMs` however fast ports churn. OVS has the same idea as `memory-trim-on-compaction`.

export interface TrimStats {
  /** Trims run since the daemon started. */
  count: number;
  /** When the last one ran (ms since the epoch), how long it took, and how much RSS it gave back. */
  lastAtMs?: number;
  lastDurationMs?: number;
  lastRssFreedBytes?: number;
}

export interface MemoryTrimmerOptions {
  /** Does the trim (the addon's trimMemory). */
  trim: () => void;
  /** Wait after a removal before trimming, so that a batch of removals is trimmed once. Default 5 s. */
  delayMs?: number;
  /** At most one trim per this interval. Default 30 s. */
  minIntervalMs?: number;
  /** For tests. */
  now?: () => number;
  rss?: () => number;
  onError?: (err: unknown) => void;
}

export class MemoryTrimmer {
  private timer: NodeJS.Timeout | undefined;
  private readonly st: TrimStats = { count: 0 };
  private closed = false;

  constructor(private readonly opts: MemoryTrimmerOptions) {}

  /** Something large was released (a port removed): schedule a trim unless one is already due. */
  noteRelease(): void {
    if (this.closed || this.timer) return;
    const now = this.now();
    const earliest = this.st.lastAtMs === undefined ? now : this.st.lastAtMs + (this.opts.minIntervalMs ?? 30_000);
    const at = Math.max(now + (this.opts.delayMs ?? 5000), earliest);
    this.timer = setTimeout(() => this.run(), at - now);
    // A pending trim must not keep the daemon alive at shutdown.
    this.timer.unref();
  }

  stats(): TrimStats {
    return { ...this.st };
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private run(): void {
    this.timer = undefined;
    if (this.closed) return;
    const rss = this.opts.rss ?? (() => process.memoryUsage.rss());
    const before = rss();
    const t0 = performance.now();
    try {
      this.opts.trim();
    } catch (err) {
      this.opts.onError?.(err);
      return;
    }
    this.st.count++;
    this.st.lastAtMs = this.now();
    this.st.lastDurationMs = Math.round((performance.now() - t0) * 10) / 10;
    this.st.lastRssFreedBytes = Math.max(0, before - rss());
  }

  private now(): number {
    return (this.opts.now ?? Date.now)();
  }
}
