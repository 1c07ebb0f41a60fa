// src/dataplane/limits.ts mirrors native/switch/limits.h and the drop reasons: this compares the mirror with what the addon
// exports, and checks that the addon refuses just past each limit (with the control plane's own checks skipped).
import { describe, expect, it } from 'vitest';
import { DROP_REASONS, MAX_MTU, MAX_QUEUE_PAIRS, MAX_THREADS, MIN_MTU, VIRTQUEUE_MAX_SIZE } from '../../src/dataplane/limits.js';
import { native, NativeError } from '../../src/dataplane/native.js';

describe('one source for limits', () => {
  it('the TypeScript mirror equals the native limits and drop reasons', () => {
    expect(native().limits).toEqual({
      maxThreads: MAX_THREADS,
      maxQueuePairs: MAX_QUEUE_PAIRS,
      minMtu: MIN_MTU,
      maxMtu: MAX_MTU,
      maxQueueSize: VIRTQUEUE_MAX_SIZE,
      maxNicQueues: MAX_QUEUE_PAIRS,
      dropReasons: [...DROP_REASONS],
    });
  });

  it('the addon takes each limit and refuses one past it (INVALID_ARGUMENT)', () => {
    const { Switch } = native();
    const refused = (fn: () => unknown) => {
      try {
        fn();
      } catch (e) {
        expect(e).toBeInstanceOf(NativeError);
        return (e as NativeError).code;
      }
      return 'accepted';
    };
    expect(refused(() => new Switch({ threads: MAX_THREADS + 1 }))).toBe('INVALID_ARGUMENT');
    const sw = new Switch({ threads: 1 });
    try {
      const port = (queuePairs: number, mtu: number) => () => sw.addPort({ name: 'p', queuePairs, mtu });
      expect(refused(port(MAX_QUEUE_PAIRS, MAX_MTU))).toBe('accepted');
      expect(refused(port(1, MIN_MTU))).toBe('accepted');
      expect(refused(port(MAX_QUEUE_PAIRS + 1, 1500))).toBe('INVALID_ARGUMENT');
      expect(refused(port(0, 1500))).toBe('INVALID_ARGUMENT');
      expect(refused(port(1, MAX_MTU + 1))).toBe('INVALID_ARGUMENT');
      expect(refused(port(1, MIN_MTU - 1))).toBe('INVALID_ARGUMENT');
      expect(sw.portStats(0).drops).toEqual(Object.fromEntries(DROP_REASONS.map((r) => [r, 0n])));
    } finally {
      sw.close();
    }
  });
});
