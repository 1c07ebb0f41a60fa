// Control calls the real data plane refuses throw NativeError (registered by src/dataplane/native.ts through
// setErrorClass) with the code of native/switch/status.h; the binding's own argument checks throw TypeError or
// RangeError. No call here parks the poll thread: each is refused before.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { native, NativeError, type NativeSwitch } from '../../src/dataplane/native.js';

let sw: NativeSwitch;
let id: number;

beforeAll(() => {
  sw = new (native().Switch)({ threads: 1 });
  id = sw.addPort({ name: 'p', vlan: 0, queuePairs: 1, mtu: 1500 });
});

afterAll(() => sw?.close());

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(NativeError);
    return (e as NativeError).code;
  }
  throw new Error('expected the call to be refused');
}

describe('native control calls refused with a code', () => {
  it('NOT_FOUND, INVALID_ARGUMENT, BUSY and UNAVAILABLE, each with its reason', () => {
    const parks0 = sw.parkStats().control;
    expect(codeOf(() => sw.removePort(999))).toBe('NOT_FOUND');
    expect(codeOf(() => sw.portStats(999))).toBe('NOT_FOUND');
    expect(codeOf(() => sw.stopCapture(id))).toBe('NOT_FOUND');
    expect(codeOf(() => sw.setVringNum(id, 0, 3))).toBe('INVALID_ARGUMENT');
    expect(codeOf(() => sw.setVringNum(id, 7, 256))).toBe('INVALID_ARGUMENT');
    expect(codeOf(() => sw.setVringKick(id, 1, -1))).toBe('INVALID_ARGUMENT'); // before memory and addresses
    expect(codeOf(() => sw.addNicPort({ name: 'n', kind: 'nic', iface: 'vs-no-such0', queues: 1, mtu: 1500, backend: 'af_packet' }))).toBe('UNAVAILABLE');
    expect(sw.parkStats().control).toBe(parks0);
    sw.startCapture(id, {});
    expect(codeOf(() => sw.startCapture(id, {}))).toBe('BUSY');
    sw.stopCapture(id);
    try {
      sw.removePort(999);
    } catch (e) {
      expect((e as Error).message).toBe('no such port');
    }
  });

  it('argument errors of the binding stay TypeError / RangeError', () => {
    expect(() => sw.removePort('x' as unknown as number)).toThrow(TypeError);
    expect(() => sw.fdbAdd('02:00:00:00:00:01', 5000, id)).toThrow(RangeError);
  });
});
