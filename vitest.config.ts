import { defineConfig } from 'vitest/config';

// .ci/run sets VS_VITEST_SUMMARY: test/support/summary-reporter.ts writes CI's closing line there.
const summary = process.env.VS_VITEST_SUMMARY;

// Two projects:
//  - unit: everything under test/ except test/e2e, short timeouts.
//  - e2e:  test/e2e/**, ONE FILE AT A TIME (2 cores shared by TCG guests and
//          busy-polling DPDK processes), long timeouts (a TCG guest boots in
//          ~10-40 s), run after the unit project has finished (groupOrder).
//          Note: in vitest 3.2 a project-level `fileParallelism`/`maxWorkers`
//          is ignored; `poolOptions.forks.singleFork` is what serializes files
//          (checked with maxWorkers 4).
// test/support/setup.ts kills every child a test file started (QEMU, testpmd, ...)
// when the file ends, whatever happened.
export default defineConfig({
  test: {
    reporters: [process.env.CI ? 'verbose' : 'default', ...(summary ? ['./test/support/summary-reporter.ts'] : [])],
    teardownTimeout: 60_000,
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/**/*.test.ts'],
          exclude: ['test/e2e/**', '**/node_modules/**'],
          environment: 'node',
          testTimeout: 10_000,
          hookTimeout: 10_000,
          setupFiles: ['test/support/setup.ts'],
          sequence: { groupOrder: 0 },
        },
      },
      {
        test: {
          name: 'e2e',
          include: ['test/e2e/**/*.test.ts'],
          environment: 'node',
          pool: 'forks',
          poolOptions: { forks: { singleFork: true } },
          testTimeout: 300_000,
          hookTimeout: 300_000,
          setupFiles: ['test/support/setup.ts'],
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
