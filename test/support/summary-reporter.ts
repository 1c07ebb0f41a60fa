// CI's closing line, "vitest: N passed, N failed[, N skipped]", counted so that it never shows fewer failures than
// there were: vitest's own totals leave out a file that failed to load (no test ran), errors thrown outside any
// test, and the tests a failed beforeAll left unrun (reported as skipped). .ci/run prints the line last.
import fs from 'node:fs';
import type { Reporter } from 'vitest/reporters';

/** The parts of vitest's task tree the count reads. */
export interface TaskLike {
  type: string;
  name: string;
  mode: string;
  result?: { state?: string; errors?: unknown[] };
  tasks?: TaskLike[];
}

export interface Summary {
  passed: number;
  failed: number;
  skipped: number;
}

export function summarize(files: readonly TaskLike[], unhandledErrors: readonly unknown[]): Summary {
  const s: Summary = { passed: 0, failed: 0, skipped: 0 };
  const visit = (t: TaskLike, underFailedSuite: boolean): number => {
    if (t.type === 'test') {
      if (t.result?.state === 'pass') s.passed++;
      else if (t.result?.state === 'fail' || underFailedSuite) s.failed++;
      else s.skipped++;
      return 1;
    }
    // A suite (or file) whose own hooks failed: what under it did not pass did not run because of it.
    const failedHere = underFailedSuite || (t.result?.state === 'fail' && (t.result.errors?.length ?? 0) > 0);
    let tests = 0;
    for (const c of t.tasks ?? []) tests += visit(c, failedHere);
    return tests;
  };
  for (const f of files) {
    const tests = visit(f, false);
    // A file that failed before any test was collected (an import error, a syntax error): one failure.
    if (tests === 0 && f.result?.state === 'fail') s.failed++;
  }
  s.failed += unhandledErrors.length;
  return s;
}

export function summaryLine(s: Summary): string {
  return `vitest: ${s.passed} passed, ${s.failed} failed` + (s.skipped ? `, ${s.skipped} skipped` : '');
}

/** Writes the line to $VS_VITEST_SUMMARY (for .ci/run) and prints it. */
export default class SummaryReporter implements Reporter {
  onFinished(files: TaskLike[] = [], errors: unknown[] = []): void {
    const line = summaryLine(summarize(files, errors));
    const out = process.env.VS_VITEST_SUMMARY;
    if (out) fs.writeFileSync(out, line + '\n');
    console.log(line);
  }
}
