// Soak (the CI version: 3 minutes, the second half judged; scripts/soak.sh runs 30): steady generator traffic through the real
// daemon while a port is added and removed through the API every 3 s with a virtio-user frontend attaching to it
// (alternately server and client mode, removed under an attached frontend or after it left). The daemon's RSS, fd
// count and mapping count stay flat after warm-up, so do its C++ heap (malloc in use) and its live JavaScript heap
// (a full GC at the baseline and at the end), the steady ports count no drop and every frame sent toward them
// arrives, and the churn ports leave no FDB entry behind. See test/soak/soak.ts.
import { describe, expect, it } from 'vitest';
import { makeRunDir } from '../../harness/env.js';
import { nativeSwitchAvailable, requireBuild } from '../integration/support/daemon.js';
import { runSoak } from '../soak/soak.js';

const SECONDS = Number(process.env.VS_SOAK_SECONDS ?? 180);

describe('soak: ports added and removed under traffic', () => {
  it(`${SECONDS} s: memory, fds and mappings flat; no drops but on removed ports`, async () => {
    requireBuild();
    expect(nativeSwitchAvailable(), 'native addon with a Switch (npm run build:native)').toBe(true);
    const r = await runSoak({ durationMs: SECONDS * 1000, runDir: makeRunDir('soak'), cycleMs: 3000, sampleEveryMs: 5000, log: (l) => console.log(l) });
    console.log(JSON.stringify({ cycles: r.cycles, baseline: r.baseline, liveHeapKiB: r.liveHeapKiB, last: r.samples[r.samples.length - 1], steady: r.steady, removedPortDrops: r.removedPortDrops }));
    expect(r.violations).toEqual([]);
    expect(r.daemonAlive).toBe(true);
    expect(r.liveHeapKiB?.end, 'live heap measured at the end').toBeGreaterThan(0);
    // Enough churn to mean something: one port every 3 s, and samples on both sides of the warm-up.
    expect(r.cycles).toBeGreaterThanOrEqual(Math.floor(SECONDS / 3) - 2);
    expect(r.samples.length).toBeGreaterThanOrEqual(8);
  }, SECONDS * 1000 + 120_000);
});
