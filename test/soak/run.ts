// Entry point of scripts/soak.sh: `vite-node test/soak/run.ts [DURATION] [--cycle SECONDS] [--sample SECONDS]`.
// DURATION is seconds, or a number with s, m or h (default 30m). Prints one line per sample, then a JSON summary;
// exits 1 when the soak found a violation.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { cleanupAll, logFilePath, makeRunDir } from '../../harness/env.js';
import { requireBuild } from '../integration/support/daemon.js';
import { runSoak } from './soak.js';

function parseDuration(s: string): number {
  const m = /^(\d+(?:\.\d+)?)([smh]?)$/.exec(s.trim());
  if (!m) throw new Error(`bad duration "${s}" (e.g. 1800, 90s, 30m, 2h)`);
  return Number(m[1]) * { '': 1000, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as '' | 's' | 'm' | 'h'];
}

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  let duration = '30m';
  let cycleMs: number | undefined;
  let sampleEveryMs: number | undefined;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--cycle') cycleMs = parseDuration(args[++i] ?? '');
    else if (a === '--sample') sampleEveryMs = parseDuration(args[++i] ?? '');
    else if (a === '-h' || a === '--help') {
      console.log('usage: scripts/soak.sh [DURATION (default 30m)] [--cycle 3s] [--sample 10s]');
      return 0;
    } else duration = a;
  }
  requireBuild();
  const durationMs = parseDuration(duration);
  const logFile = logFilePath('soak');
  const out = fs.createWriteStream(logFile);
  const log = (line: string) => {
    console.log(line);
    out.write(line + os.EOL);
  };
  const runDir = makeRunDir('soak');
  const r = await runSoak({ durationMs, runDir, cycleMs, sampleEveryMs: sampleEveryMs ?? (durationMs >= 600_000 ? 10_000 : 5000), log });
  // Growth after warm-up per minute (least squares), to spot a slow leak that stays inside the bounds.
  const after = r.baseline ? r.samples.filter((x) => x.tMs >= r.baseline!.tMs) : [];
  const slope = (f: (x: (typeof after)[number]) => number) => {
    if (after.length < 2) return undefined;
    const mx = after.reduce((a, x) => a + x.tMs, 0) / after.length;
    const my = after.reduce((a, x) => a + f(x), 0) / after.length;
    const sxy = after.reduce((a, x) => a + (x.tMs - mx) * (f(x) - my), 0);
    const sxx = after.reduce((a, x) => a + (x.tMs - mx) ** 2, 0);
    return Math.round((sxy / sxx) * 60_000 * 100) / 100;
  };
  const summary = {
    passed: r.violations.length === 0,
    growthPerMinute: { rssKiB: slope((x) => x.rssKiB), fds: slope((x) => x.fds), maps: slope((x) => x.maps) },
    cycles: r.cycles,
    baseline: r.baseline,
    last: r.samples[r.samples.length - 1],
    steady: r.steady,
    removedPortDrops: r.removedPortDrops,
    violations: r.violations,
  };
  log(JSON.stringify(summary, null, 2));
  const samplesFile = path.join(path.dirname(logFile), `${path.basename(logFile, '.log')}-samples.json`);
  fs.writeFileSync(samplesFile, JSON.stringify(r.samples));
  log(`soak: ${summary.passed ? 'PASSED' : 'FAILED'} (log: ${logFile}, samples: ${samplesFile})`);
  out.end();
  return summary.passed ? 0 : 1;
}

main()
  .then(async (code) => {
    await cleanupAll();
    process.exit(code);
  })
  .catch(async (err) => {
    console.error(err);
    await cleanupAll();
    process.exit(2);
  });
