// The soak's verdict on its samples (test/soak/soak.ts, judgeSamples), on synthetic series shaped like the CI
// soak's: 3 minutes, a sample every 5 s at a cycle's end, a port added and removed every 3 s, baseline after the
// 90 s warm-up. Flat passes; each leak the soak names fails: an fd per 8 ports, a mapping per port, 128 KiB per
// port, 300 KiB a minute of held memory, a growing C++ heap, a field not measured; a creep of RSS alone fails at the
// 30-minute length of scripts/soak.sh. The soak itself runs against the real
// daemon (test/e2e/fault-soak.test.ts).
import { describe, expect, it } from 'vitest';
import { DEFAULT_JUDGE_BOUNDS as bounds, judgeSamples, slope, type Sample } from '../soak/soak.js';

const WARMUP_MS = 90_000;
const RSS = 77_500;

/**
 * Samples every `everyMs`, a port per 3 s; `f(t, ports)` adds to a flat sample (rssAnonKiB, maps and fds are
 * added, other fields replaced).
 */
function series(count: number, everyMs: number, f: (min: number, ports: number) => Partial<Sample>, noiseKiB: number): Sample[] {
  return Array.from({ length: count }, (_, i) => {
    const tMs = (i + 1) * everyMs;
    const ports = Math.floor(tMs / 3000);
    // Deterministic noise of the size a collected daemon shows between samples.
    const noise = Math.round(noiseKiB * Math.sin(i * 2.3));
    const flat: Sample = { tMs, cycle: ports, rssKiB: RSS + 8000 + noise, rssAnonKiB: RSS + noise, fds: 35, maps: 166 + (i % 3 === 0 ? 3 : 0), heapKiB: 8900, mallocKiB: 5015 };
    const add = f(tMs / 60_000, ports);
    return { ...flat, ...add, rssAnonKiB: flat.rssAnonKiB! + (add.rssAnonKiB ?? 0), maps: flat.maps + (add.maps ?? 0), fds: flat.fds + (add.fds ?? 0) };
  });
}
/** CI's soak: 3 minutes, a sample every 5 s. */
const ciRun = (f: (min: number, ports: number) => Partial<Sample> = () => ({}), noiseKiB = 150) => series(36, 5000, f, noiseKiB);

const judge = (samples: Sample[]) => judgeSamples(samples, WARMUP_MS, bounds).violations;

describe('judgeSamples at the CI soak length', () => {
  it('passes a flat run with noise', () => {
    expect(judge(ciRun())).toEqual([]);
  });

  it('fails one fd leaked per 8 ports', () => {
    const v = judge(ciRun((_, ports) => ({ fds: Math.floor(ports / 8) })));
    expect(v.some((x) => / fds at /.test(x)), v.join('\n')).toBe(true);
  });

  it('fails one mapping leaked per port', () => {
    const v = judge(ciRun((_, ports) => ({ maps: ports })));
    expect(v.some((x) => x.startsWith('mappings grow')), v.join('\n')).toBe(true);
  });

  it('fails 128 KiB of RSS per port', () => {
    const v = judge(ciRun((_, ports) => ({ rssAnonKiB: 128 * ports })));
    expect(v.some((x) => x.startsWith('RSS grows')), v.join('\n')).toBe(true);
  });

  it('fails 300 KiB a minute of held memory (live JavaScript heap or malloc)', () => {
    const heap = judge(ciRun((min) => ({ heapKiB: 8900 + 300 * min, rssAnonKiB: 300 * min })));
    expect(heap.some((x) => x.startsWith('held memory rising')), heap.join('\n')).toBe(true);
    const malloc = judge(ciRun((min) => ({ mallocKiB: 5015 + 300 * min, rssAnonKiB: 300 * min })));
    expect(malloc.some((x) => x.startsWith('held memory rising')), malloc.join('\n')).toBe(true);
  });

  it('passes a one-time step of a megabyte, as a real daemon takes (a thread arena, a V8 page)', () => {
    expect(judge(ciRun((min) => ({ rssAnonKiB: min > 2.4 ? 1076 : 0 })))).toEqual([]);
  });

  it('fails a growing C++ heap', () => {
    const v = judge(ciRun((min) => ({ mallocKiB: 5015 + 1600 * min })));
    expect(v.some((x) => x.startsWith('malloc in use')), v.join('\n')).toBe(true);
  });

  it('fails a sample whose field was not measured, instead of skipping it', () => {
    const samples = ciRun();
    samples[25] = { ...samples[25]!, mallocKiB: undefined };
    expect(judge(samples)).toEqual([expect.stringMatching(/mallocKiB not measured/)]);
  });

  it('asks for a longer run when there are too few samples after the baseline', () => {
    expect(judge(ciRun().slice(0, 24))[0]).toMatch(/run longer/);
  });
});

describe('judgeSamples at the scripts/soak.sh length (30 minutes)', () => {
  // A sample every 10 s, baseline after the 120 s warm-up.
  const longRun = (f: (min: number, ports: number) => Partial<Sample> = () => ({})) => series(180, 10_000, f, 150);
  const judgeLong = (samples: Sample[]) => judgeSamples(samples, 120_000, bounds).violations;

  it('passes a flat run with one-time steps', () => {
    expect(judgeLong(longRun((min) => ({ rssAnonKiB: (min > 7 ? 1000 : 0) + (min > 19 ? 900 : 0) })))).toEqual([]);
  });

  it('fails a creep of 300 KiB a minute of RSS alone', () => {
    const v = judgeLong(longRun((min) => ({ rssAnonKiB: 300 * min })));
    expect(v.some((x) => x.startsWith('RSS rising')), v.join('\n')).toBe(true);
  });
});

describe('slope', () => {
  it('is the least-squares slope', () => {
    expect(slope([[0, 1], [1, 3], [2, 5]])).toBeCloseTo(2);
    expect(slope([[1, 4], [1, 9]])).toBe(0);
  });
});
