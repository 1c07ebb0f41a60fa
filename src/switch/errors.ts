// The switch model's refusals, by kind: what a caller can do about them, without an HTTP status or a message to
// parse. The API layer (src/api/http.ts) alone maps them to HTTP statuses; errors of the data plane become
// these through their native code (fromNative), never through their text.
import { NativeError, type NativeErrorCode } from '../dataplane/native.js';

/** A refused change, and the input field it concerns when there is one. */
export abstract class SwitchError extends Error {
  abstract readonly kind: 'invalid' | 'notFound' | 'conflict' | 'unavailable' | 'internal';
  constructor(
    readonly field: string | undefined,
    readonly reason: string,
  ) {
    super(field ? `${field}: ${reason}` : reason);
    this.name = new.target.name;
  }
}

/** The request is wrong in itself (out of range, names something that cannot be). */
export class Invalid extends SwitchError {
  readonly kind = 'invalid';
}

/** What it names does not exist. */
export class NotFound extends SwitchError {
  readonly kind = 'notFound';
}

/** Valid, but it collides with the state the switch is in (a name taken, a capture running, shutting down). */
export class Conflict extends SwitchError {
  readonly kind = 'conflict';
}

/** Something outside the switch refused: an interface that cannot be opened, memory that cannot be mapped. */
export class Unavailable extends SwitchError {
  readonly kind = 'unavailable';
}

/** A fault of ours or of the host (state that could not be saved). */
export class Internal extends SwitchError {
  readonly kind = 'internal';
}

const BY_CODE: Record<NativeErrorCode, new (field: string | undefined, reason: string) => SwitchError> = {
  INVALID_ARGUMENT: Invalid,
  NOT_FOUND: NotFound,
  BUSY: Conflict,
  UNAVAILABLE: Unavailable,
  INTERNAL: Internal,
};

/**
 * The domain error for what a data-plane call threw: by its native code; the binding's own argument checks
 * (TypeError, RangeError) are invalid input; anything else is internal. `what` prefixes the reason.
 */
export function fromNative(err: unknown, field: string | undefined, what?: string): SwitchError {
  const message = err instanceof Error ? err.message : String(err);
  const reason = what ? `${what}: ${message}` : message;
  if (err instanceof NativeError) return new BY_CODE[err.code](field, reason);
  if (err instanceof TypeError || err instanceof RangeError) return new Invalid(field, reason);
  return new Internal(field, reason);
}
