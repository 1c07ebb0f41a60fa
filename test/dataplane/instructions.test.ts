// The packet path's cost as a deterministic figure: callgrind's instructions per forwarded frame in the poll pass
// (scripts/native-bench.sh --instructions SIZE), against the committed baseline in bench/native/instructions.json.
// Instruction counts do not depend on the machine's load, so this is a regression check, not a timing assertion.
// A change that makes the path cheaper lowers the baseline in the same commit; one that raises it says why.
// Needs valgrind (Debian: valgrind); without it this FAILS, it does not skip.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const root = path.resolve(import.meta.dirname, '../..');
const baseline = JSON.parse(fs.readFileSync(path.join(root, 'bench/native/instructions.json'), 'utf8')) as {
  margin: number;
  perFrame: Record<string, number>;
};

// A key is a frame size, with "-packed" for packed rings on both guests ("64-packed").
function measure(key: string): Promise<{ perFrame: number | undefined; out: string; code: number | null }> {
  const [size, layout] = key.split('-');
  const args = ['scripts/native-bench.sh', '--instructions', size!, ...(layout ? [layout] : [])];
  return new Promise((resolve) => {
    const p = spawn('bash', args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (out += d));
    p.on('exit', (code) => {
      const m = out.match(/instructions per frame \(poll pass, both directions\): ([\d.]+)/);
      resolve({ perFrame: m ? Number(m[1]) : undefined, out, code });
    });
  });
}

describe('instructions per frame under callgrind (bench/native/instructions.json)', () => {
  for (const [key, base] of Object.entries(baseline.perFrame)) {
    it(`${key}: at most ${base} x (1 + ${baseline.margin})`, async () => {
      const r = await measure(key);
      expect(r.code, `scripts/native-bench.sh --instructions ${key.replace('-', ' ')} exited ${r.code}\n${r.out.slice(-2000)}`).toBe(0);
      expect(r.perFrame, `no figure in the output:\n${r.out.slice(-2000)}`).toBeDefined();
      const limit = base * (1 + baseline.margin);
      expect(r.perFrame!, `${r.perFrame} instructions per frame (${key}), baseline ${base}; where they go:\n${r.out}`).toBeLessThanOrEqual(limit);
      if (r.perFrame! < base * (1 - baseline.margin))
        console.log(`${key}: ${r.perFrame} instructions per frame, below the baseline ${base}: lower it in bench/native/instructions.json`);
    }, 5 * 60_000);
  }
});
