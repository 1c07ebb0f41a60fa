// Refusals mapped once at each edge: a data-plane error becomes a domain error by its native code (never its
// text), and only the API layer turns the domain error into an HTTP status.
import { describe, expect, it } from 'vitest';
import { errorResponse } from '../../src/api/http.js';
import { NATIVE_ERROR_CODES, NativeError } from '../../src/dataplane/native.js';
import { Conflict, Internal, Invalid, NotFound, Unavailable, fromNative } from '../../src/switch/errors.js';

describe('native errors to domain errors', () => {
  it('each native code has its domain error, whatever the message says', () => {
    const want = { INVALID_ARGUMENT: Invalid, NOT_FOUND: NotFound, BUSY: Conflict, UNAVAILABLE: Unavailable, INTERNAL: Internal };
    for (const code of NATIVE_ERROR_CODES) {
      // The message names another kind on purpose: only the code counts.
      const e = fromNative(new NativeError('no such port, already running', code), 'iface', 'data plane refused the port');
      expect(e, code).toBeInstanceOf(want[code]);
      expect(e.field).toBe('iface');
      expect(e.message).toBe('iface: data plane refused the port: no such port, already running');
    }
  });

  it('an unknown code is internal; the binding\'s argument errors are invalid input; anything else internal', () => {
    expect(new NativeError('x', 'SOMETHING_NEW').code).toBe('INTERNAL');
    expect(fromNative(new TypeError('port must be a bigint or number'), undefined)).toBeInstanceOf(Invalid);
    expect(fromNative(new RangeError('vlan must be 0..4094'), undefined)).toBeInstanceOf(Invalid);
    expect(fromNative(new Error('boom'), undefined)).toBeInstanceOf(Internal);
    expect(fromNative('a string', undefined).reason).toBe('a string');
  });
});

describe('domain errors to HTTP (src/api/http.ts only)', () => {
  it('maps every kind to its status, with the field and reason in the body', () => {
    const cases: Array<[Error, number]> = [
      [new Invalid('mtu', 'too big'), 422],
      [new NotFound('name', 'no port named "x"'), 404],
      [new Conflict('name', 'exists'), 409],
      [new Unavailable('iface', 'cannot open eth9'), 422],
      [new Internal(undefined, 'state not saved'), 500],
    ];
    for (const [err, status] of cases) {
      const r = errorResponse(err);
      expect(r.status, err.name).toBe(status);
      expect(r.body.error).toBe(err.message);
    }
    expect(errorResponse(new Invalid('mtu', 'too big')).body).toMatchObject({ field: 'mtu', reason: 'too big' });
  });
});
