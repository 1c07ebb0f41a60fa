// What the report may claim from a handful of samples: the modes a figure fell into, and whether one figure is
// higher than another. Deliberately plain rules a reader can check by eye against the samples in latest.json.
import { spread, type Spread } from './util.js';

/**
 * Samples split where consecutive sorted values jump by more than `gap` (relative to the lower one): runs of the
 * same set-up that settle on two different rates form two modes, and a median across them describes neither.
 */
export function modes(values: Array<number | undefined>, gap = 0.3): Spread[] {
  const v = values.filter((x): x is number => x !== undefined && Number.isFinite(x)).sort((a, b) => a - b);
  const out: number[][] = [];
  for (const x of v) {
    const cur = out[out.length - 1];
    if (cur && x <= cur[cur.length - 1]! * (1 + gap)) cur.push(x);
    else out.push([x]);
  }
  return out.map((m) => spread(m)!);
}

export type Verdict = 'higher' | 'lower' | 'level';

/**
 * a against b: higher or lower only where the two sets of samples do not overlap at all (every sample of one above
 * every sample of the other) and each has at least `minSamples`; otherwise level. With 5 samples each, no overlap
 * has a chance of 2 / C(10, 5) < 1% when the two come from one distribution.
 */
export function compare(a: Spread | undefined, b: Spread | undefined, minSamples = 3): Verdict {
  if (!a || !b || a.n < minSamples || b.n < minSamples) return 'level';
  if (a.min > b.max) return 'higher';
  if (a.max < b.min) return 'lower';
  return 'level';
}

/** "3.26 (3.10–3.71)", or with more than one mode "3.26 (3.10–3.71, ×7) | 7.80 (×1)". */
export function describeModes(values: Array<number | undefined>, digits: number): string {
  const m = modes(values);
  if (!m.length) return 'n/a';
  const one = (s: Spread) => (s.n > 1 ? `${s.median.toFixed(digits)} (${s.min.toFixed(digits)}–${s.max.toFixed(digits)})` : s.median.toFixed(digits));
  if (m.length === 1) return one(m[0]!);
  return m.map((s) => `${one(s)} ×${s.n}`).join(' or ');
}
