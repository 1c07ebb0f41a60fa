// vitest setupFiles entry (see vitest.config.ts): after every test file, kill
// the child processes it started (QEMU guests, testpmd, ...) and remove its
// run dirs, even when tests failed or timed out.
import { afterAll } from 'vitest';
import { cleanupAll } from '../../harness/env.js';

afterAll(async () => {
  await cleanupAll();
});
