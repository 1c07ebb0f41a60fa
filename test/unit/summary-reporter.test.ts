// CI's closing line counts every failure shape: a plain failure, a file that fails to load, tests a failed
// beforeAll left unrun, and an error thrown outside any test. The fixtures run in a real vitest child process.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../../harness/env.js';
import { summarize, summaryLine } from '../support/summary-reporter.js';

describe('CI summary line', () => {
  it('counts load failures, unrun tests and unhandled errors as failures', () => {
    const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'vs-summary-')), 'line');
    const r = spawnSync(
      process.execPath,
      [path.join(repoRoot, 'node_modules/vitest/vitest.mjs'), 'run', '--config', 'test/fixtures/summary/vitest.config.ts', '--reporter', './test/support/summary-reporter.ts'],
      { cwd: repoRoot, env: { ...process.env, VS_VITEST_SUMMARY: out, CI: '' }, encoding: 'utf8', timeout: 60_000 },
    );
    expect(r.status, r.stdout + r.stderr).toBe(1);
    // passed: "passes", "passes, but leaves...", "passes after a while"; failed: "fails", the unloadable file,
    // "unrun 1", "unrun 2", the error thrown after its test; skipped: the one skipped on purpose.
    expect(fs.readFileSync(out, 'utf8').trim()).toBe('vitest: 3 passed, 5 failed, 1 skipped');
  }, 60_000);

  it('prints no skipped count when nothing was skipped', () => {
    const file = { type: 'suite', name: 'f', mode: 'run', result: { state: 'pass' }, tasks: [{ type: 'test', name: 't', mode: 'run', result: { state: 'pass' } }] };
    expect(summaryLine(summarize([file], []))).toBe('vitest: 1 passed, 0 failed');
  });
});
