// The core-to-core round trip between the generator's and the DUT's CPU (bench/native/c2c.cc), built on first use.
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { repoRoot } from './util.js';

let built: string | null | undefined;

function binary(): string | null {
  if (built !== undefined) return built;
  const out = path.join(repoRoot, 'build', 'native-bench', 'c2c');
  fs.mkdirSync(path.dirname(out), { recursive: true });
  const r = spawnSync('g++', ['-std=c++17', '-O2', '-pthread', '-o', out, path.join(repoRoot, 'bench', 'native', 'c2c.cc')], { encoding: 'utf8' });
  built = r.status === 0 ? out : null;
  return built;
}

/** Minimum round trip in ns over ~100 ms of probing, or undefined when it cannot be measured. */
export function c2cRoundTripNs(cpuA: number, cpuB: number): number | undefined {
  const bin = binary();
  if (!bin) return undefined;
  const r = spawnSync(bin, [String(cpuA), String(cpuB), '100'], { encoding: 'utf8', timeout: 10_000 });
  const m = r.stdout?.match(/min (\d+)/);
  return m ? Number(m[1]) : undefined;
}
