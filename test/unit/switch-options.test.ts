// VSwitch checks its own options against the data plane's limits (src/dataplane/limits.ts, through the schema the
// config file uses), so an embedder gets the domain error with the field before the data plane is ever created.
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log.js';
import { MAX_THREADS } from '../../src/dataplane/limits.js';
import type { NativeAddon } from '../../src/dataplane/native.js';
import { Invalid } from '../../src/switch/errors.js';
import { VSwitch, type VSwitchOptions } from '../../src/switch/model.js';
// @ts-expect-error plain JS test helper
import { FakeNativeSwitch } from '../support/fake-native-switch.js';

let created = 0;
class CountingSwitch extends FakeNativeSwitch {
  constructor(...args: unknown[]) {
    super(...args);
    created++;
  }
}

const options = (o: Partial<VSwitchOptions>): VSwitchOptions => ({
  native: { Switch: CountingSwitch } as unknown as NativeAddon,
  threads: 1,
  agingSeconds: 300,
  runDir: '/nonexistent/run',
  socketDirs: [],
  log: createLogger({ level: 'error', write: () => {} }),
  endpointFactory: () => {
    throw new Error('no endpoints here');
  },
  ...o,
});

const refusal = (o: Partial<VSwitchOptions>): Invalid => {
  const before = created;
  let err: unknown;
  try {
    new VSwitch(options(o));
  } catch (e) {
    err = e;
  }
  expect(err, JSON.stringify(o)).toBeInstanceOf(Invalid);
  expect(created, 'the data plane is not created').toBe(before);
  return err as Invalid;
};

describe('VSwitch options', () => {
  it('takes what the data plane takes', async () => {
    for (const o of [{}, { threads: MAX_THREADS }, { threads: 2, cpus: [0, 3] }, { agingSeconds: 1 }, { agingSeconds: 86400 }]) {
      const before = created;
      const vs = new VSwitch(options(o));
      expect(created).toBe(before + 1);
      await vs.close();
    }
  });

  it('refuses threads, CPUs and aging outside the limits, naming the field', () => {
    expect(refusal({ threads: 0 })).toMatchObject({ field: 'threads', reason: 'must be at least 1' });
    expect(refusal({ threads: MAX_THREADS + 1 })).toMatchObject({ field: 'threads', reason: `must be at most ${MAX_THREADS}` });
    expect(refusal({ threads: 1.5 })).toMatchObject({ field: 'threads', reason: 'must be an integer' });
    expect(refusal({ threads: 2, cpus: [0] })).toMatchObject({ field: 'cpus', reason: 'lists 1 CPUs for 2 threads' });
    expect(refusal({ cpus: [-1] })).toMatchObject({ field: 'cpus' });
    expect(refusal({ agingSeconds: 0 })).toMatchObject({ field: 'agingSeconds', reason: 'must be at least 1' });
    expect(refusal({ agingSeconds: 86401 })).toMatchObject({ field: 'agingSeconds', reason: 'must be at most 86400' });
  });

  it('several problems: one refusal that names them all', () => {
    const e = refusal({ threads: 0, agingSeconds: 0 });
    expect(e.field).toBeUndefined();
    expect(e.message).toContain('threads: must be at least 1');
    expect(e.message).toContain('agingSeconds: must be at least 1');
  });
});
