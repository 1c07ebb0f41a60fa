// HTTP plumbing for the control API: bounded body reading, JSON that carries 64-bit counters, and one error
// shape ({error, field, reason}) for every refusal so clients and the CLI print the same message.
import type http from 'node:http';
import { ValidationError } from '../config.js';
import { SwitchError } from '../switch/errors.js';

export const MAX_BODY_BYTES = 64 * 1024;

/** An HTTP error with its status; `field`/`reason` name the input at fault when there is one. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly field?: string,
    readonly reason?: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

/**
 * Counters are u64 in the data plane. JSON numbers are exact up to 2^53; beyond that a counter is sent as a
 * decimal string rather than silently rounded.
 */
export function jsonReplacer(_key: string, value: unknown): unknown {
  if (typeof value === 'bigint') return value <= BigInt(Number.MAX_SAFE_INTEGER) && value >= -BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value.toString();
  return value;
}

export function toJson(value: unknown): string {
  return JSON.stringify(value, jsonReplacer);
}

export function send(res: http.ServerResponse, status: number, body?: unknown, headers: Record<string, string> = {}): void {
  if (body === undefined) {
    res.writeHead(status, headers);
    res.end();
    return;
  }
  const text = typeof body === 'string' ? body : toJson(body) + '\n';
  res.writeHead(status, {
    'Content-Type': typeof body === 'string' ? 'text/plain; charset=utf-8' : 'application/json',
    'Content-Length': String(Buffer.byteLength(text)),
    ...headers,
  });
  res.end(text);
}

export interface ErrorBody {
  error: string;
  field?: string;
  reason?: string;
  issues?: Array<{ field: string; reason: string }>;
}

/** The HTTP status of each kind of refusal of the switch model. Something outside the switch that refused (an
 * interface, a socket path) is a problem of the request's input as far as the client can tell: 422, as invalid. */
const SWITCH_ERROR_STATUS: Record<SwitchError['kind'], number> = {
  invalid: 422,
  notFound: 404,
  conflict: 409,
  unavailable: 422,
  internal: 500,
};

/** Maps anything thrown by a handler to a status and body; unknown errors are 500 and are logged by the caller. */
export function errorResponse(err: unknown): { status: number; body: ErrorBody; headers: Record<string, string> } {
  if (err instanceof HttpError) {
    return { status: err.status, body: { error: err.message, field: err.field, reason: err.reason }, headers: err.headers };
  }
  if (err instanceof ValidationError) {
    const first = err.issues[0];
    return { status: 422, body: { error: err.message, field: first?.field, reason: first?.reason, issues: err.issues }, headers: {} };
  }
  if (err instanceof SwitchError) {
    return { status: SWITCH_ERROR_STATUS[err.kind], body: { error: err.message, field: err.field, reason: err.reason }, headers: {} };
  }
  return { status: 500, body: { error: `internal error: ${(err as Error)?.message ?? String(err)}` }, headers: {} };
}

/** Reads the whole body, refusing (413) past `limit` bytes without buffering the rest. */
export function readBody(req: http.IncomingMessage, limit = MAX_BODY_BYTES): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > limit) {
      reject(new HttpError(413, `request body is ${declared} bytes; the limit is ${limit}`));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    req.on('data', (chunk: Buffer) => {
      if (failed) return;
      size += chunk.length;
      if (size > limit) {
        failed = true;
        chunks.length = 0;
        reject(new HttpError(413, `request body exceeds the limit of ${limit} bytes`));
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (!failed) resolve(Buffer.concat(chunks));
    });
    req.on('error', (err) => {
      // A client that hangs up mid-body is the client's problem, not the daemon's: a 400, not a 500.
      const gone = (err as NodeJS.ErrnoException).code === 'ECONNRESET' || err.message === 'aborted';
      if (!failed) reject(gone ? new HttpError(400, 'client closed the connection before the body was complete', '', 'aborted') : err);
      failed = true;
    });
  });
}

/** Parses a JSON request body; 400 with the parser's reason when it is not JSON. */
export async function readJson(req: http.IncomingMessage, limit = MAX_BODY_BYTES): Promise<unknown> {
  const buf = await readBody(req, limit);
  const text = buf.toString('utf8');
  if (text.trim() === '') throw new HttpError(400, 'request body is empty; expected a JSON object', '', 'empty body');
  try {
    return JSON.parse(text);
  } catch (err) {
    const reason = (err as Error).message;
    throw new HttpError(400, `request body is not valid JSON: ${reason}`, '', reason);
  }
}
