// The soak's verdict on its samples (test/soak/soak.ts, judgeSamples): flat passes; a slow creep, a fd leak or a
// C++ heap leak fails. Synthetic samples: the soak itself runs against the real daemon (test/e2e/fault-soak.test.ts).
import { describe, expect, it } from 'vitest';
import { judgeSamples, type Sample } from '../soak/soak.js';

const bounds = { rssSlackKiB: 8192, rssSlackRatio: 0.05, rssTrendSlackKiB: 4096, fdSlack: 4, mapsSlack: 32, mapsSlackRatio: 0.1 };
const MIN = 60_000;

/** 30 minutes of samples every 10 s; `rss(t)` in KiB for t in minutes. */
function run(rss: (min: number) => number, extra: (min: number) => Partial<Sample> = () => ({})): Sample[] {
  return Array.from({ length: 180 }, (_, i) => {
    const t = (i + 1) * 10_000;
    return { tMs: t, cycle: i, rssKiB: Math.round(rss(t / MIN)), fds: 35, maps: 171, mallocKiB: 5100, ...extra(t / MIN) };
  });
}

describe('judgeSamples', () => {
  it('passes a flat run with noise', () => {
    const noise = (m: number) => 79_000 + 800 * Math.sin(m * 7);
    expect(judgeSamples(run(noise), 2 * MIN, bounds).violations).toEqual([]);
  });

  it('fails a creep of 250 KiB a minute that stays inside the absolute slack', () => {
    const v = judgeSamples(run((m) => 79_000 + 250 * m), 2 * MIN, bounds).violations;
    expect(v.some((x) => x.startsWith('RSS rising'))).toBe(true);
    expect(v.some((x) => x.startsWith('RSS 8'))).toBe(false);
  });

  it('fails a leaked fd and a growing C++ heap', () => {
    const v = judgeSamples(run(() => 79_000, (m) => ({ fds: 35 + Math.floor(m / 4), mallocKiB: 5100 + 200 * m })), 2 * MIN, bounds).violations;
    expect(v.some((x) => x.includes('fds'))).toBe(true);
    expect(v.some((x) => x.startsWith('malloc in use'))).toBe(true);
  });

  it('asks for a longer run when there are too few samples', () => {
    expect(judgeSamples(run(() => 79_000).slice(0, 12), 2 * MIN, bounds).violations[0]).toMatch(/run longer/);
  });
});
