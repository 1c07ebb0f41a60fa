// The native tests as the addon is built (-O2), then the native core under AddressSanitizer +
// UndefinedBehaviorSanitizer and a short coverage-guided fuzz of the descriptor-chain parser and memory-table
// mapping: scripts/native-test.sh and scripts/sanitize.sh, whose exit codes are the verdicts.
// Needs g++, clang++ and the libFuzzer runtime (Debian: g++ clang libclang-rt-14-dev); without them this FAILS,
// it does not skip. Fuzz time per target: VS_SANITIZE_FUZZ_SECONDS (default 20; scripts/fuzz.sh runs longer).
// Takes about 2-4 minutes on two shared cores, most of it compiling with sanitizers.
import { spawn, spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const root = path.resolve(import.meta.dirname, '../..');
const fuzzSeconds = process.env.VS_SANITIZE_FUZZ_SECONDS ?? '20';

function run(cmd: string, args: string[]): Promise<{ code: number | null; signal: NodeJS.Signals | null; out: string }> {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (out += d));
    p.on('exit', (code, signal) => resolve({ code, signal, out }));
  });
}

describe('sanitizers and fuzzing (scripts/sanitize.sh)', () => {
  it('the compilers are installed (g++, clang++ with libFuzzer)', () => {
    for (const tool of ['g++', 'clang++']) {
      const r = spawnSync(tool, ['--version'], { encoding: 'utf8' });
      expect(r.error, `${tool} is missing: apt-get install g++ clang libclang-rt-14-dev`).toBeUndefined();
      expect(r.status, `${tool} --version`).toBe(0);
    }
  });

  it('native tests pass in the optimised build (-O2, as the addon is built)', async () => {
    const r = await run('bash', ['scripts/native-test.sh']);
    const first = r.out.match(/(invariant failed[^\n]*|FAIL [^\n]*)/)?.[0] ?? '';
    expect(r.code, `scripts/native-test.sh exited ${r.code ?? r.signal}\n${first}\n${r.out.slice(-2000)}`).toBe(0);
  }, 10 * 60_000);

  it(`native tests pass under ASan+UBSan and ${fuzzSeconds}s of fuzzing per target finds nothing`, async () => {
    const r = await run('bash', ['scripts/sanitize.sh', fuzzSeconds]);
    // On failure, the summary and the first report are what matter; the whole log is long.
    const summary = r.out.slice(r.out.lastIndexOf('=== sanitize: done'));
    const first = r.out.match(/(ERROR: \w+Sanitizer[^\n]*|runtime error[^\n]*|invariant failed[^\n]*|FAIL [^\n]*)/)?.[0] ?? '';
    expect(r.code, `scripts/sanitize.sh exited ${r.code ?? r.signal}\n${first}\n${summary}`).toBe(0);
    expect(summary).toMatch(/native tests \(ASan\+UBSan\): ok/);
    expect(summary).toMatch(/no finding/);
  }, 20 * 60_000);
});
