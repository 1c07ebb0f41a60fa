import { describe, expect, it } from 'vitest';
import { compare, describeModes, modes } from '../../bench/lib/stats.js';
import { spread } from '../../bench/lib/util.js';

describe('bench statistics (bench/lib/stats.ts)', () => {
  it('finds the two modes of a bimodal figure and keeps a steady one whole', () => {
    const bimodal = [3.26, 3.1, 3.71, 7.8, 3.4, 3.55, 3.2, 3.3];
    const m = modes(bimodal);
    expect(m.map((s) => s.n)).toEqual([7, 1]);
    expect(m[0]!.max).toBe(3.71);
    expect(m[1]!.median).toBe(7.8);
    expect(modes([5.8, 5.9, 6.3, 6.9, 6.1])).toHaveLength(1);
    expect(describeModes(bimodal, 2)).toBe('3.30 (3.10–3.71) ×7 or 7.80 ×1');
    expect(describeModes([2.2, 2.1, 2.3], 2)).toBe('2.20 (2.10–2.30)');
    expect(describeModes([undefined], 2)).toBe('n/a');
  });

  it('calls a difference only where the samples do not overlap', () => {
    const a = spread([2.4, 2.5, 2.46, 2.41, 2.48]);
    const b = spread([2.1, 2.2, 2.17, 2.15, 2.3]);
    expect(compare(a, b)).toBe('higher');
    expect(compare(b, a)).toBe('lower');
    // One sample of b above a's lowest: level, however far apart the medians.
    expect(compare(a, spread([2.1, 2.2, 2.17, 2.15, 2.45]))).toBe('level');
    // Too few samples to say anything.
    expect(compare(spread([9]), spread([1]))).toBe('level');
    expect(compare(undefined, b)).toBe('level');
  });
});
