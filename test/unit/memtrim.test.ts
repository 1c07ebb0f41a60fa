// The memory trim's schedule (src/host/memtrim.ts): a trim a few seconds after a removal, one for a batch of removals,
// at most one per interval however fast ports churn. The trim itself (V8 + malloc_trim) is the addon's; its effect
// on RSS is what the soak measures (test/soak/soak.ts).
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { MemoryTrimmer } from '../../src/host/memtrim.js';
import { native } from '../../src/dataplane/native.js';

describe('MemoryTrimmer', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  function make(rss: number[] = []) {
    const trim = vi.fn();
    const t = new MemoryTrimmer({ trim, delayMs: 5000, minIntervalMs: 30_000, rss: () => rss.shift() ?? 0 });
    return { t, trim };
  }

  it('trims once, a few seconds after a batch of removals', () => {
    const { t, trim } = make([100, 60]);
    t.noteRelease();
    vi.advanceTimersByTime(1000);
    t.noteRelease();
    t.noteRelease();
    vi.advanceTimersByTime(3999);
    expect(trim).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(trim).toHaveBeenCalledTimes(1);
    expect(t.stats()).toMatchObject({ count: 1, lastRssFreedBytes: 40 });
  });

  it('runs at most once per interval under continuous churn', () => {
    const { t, trim } = make();
    for (let s = 0; s < 120; s++) {
      t.noteRelease();
      vi.advanceTimersByTime(1000);
    }
    // First at 5 s, then every 30 s: 5, 35, 65, 95.
    expect(trim).toHaveBeenCalledTimes(4);
  });

  it('does nothing without removals, and nothing after close', () => {
    const { t, trim } = make();
    vi.advanceTimersByTime(120_000);
    t.noteRelease();
    t.close();
    vi.advanceTimersByTime(120_000);
    t.noteRelease();
    vi.advanceTimersByTime(120_000);
    expect(trim).not.toHaveBeenCalled();
    expect(t.stats().count).toBe(0);
  });

  it('counts no trim when the trim throws, and reports the error', () => {
    const errors: unknown[] = [];
    const t = new MemoryTrimmer({ trim: () => { throw new Error('boom'); }, delayMs: 10, onError: (e) => errors.push(e) });
    t.noteRelease();
    vi.advanceTimersByTime(10);
    expect(t.stats().count).toBe(0);
    expect(errors).toHaveLength(1);
    // The next removal schedules again.
    t.noteRelease();
    vi.advanceTimersByTime(10);
    expect(errors).toHaveLength(2);
  });
});

describe('addon trimMemory', () => {
  it('gives V8 heap pages back after garbage', () => {
    let junk: Array<{ i: number; s: string }> | undefined = Array.from({ length: 200_000 }, (_, i) => ({ i, s: `x${i}` }));
    const grown = process.memoryUsage().heapTotal;
    expect(junk.length).toBe(200_000);
    junk = undefined;
    expect(typeof native().trimMemory()).toBe('boolean');
    expect(process.memoryUsage().heapTotal).toBeLessThan(grown);
  });
});
