// The CLI's side of the control API: one HTTP request over the unix socket, with errors turned into the sentence
// an operator needs ("is the daemon running?") instead of an ECONNREFUSED stack.
import http from 'node:http';

export interface ApiResponse {
  status: number;
  /** Parsed JSON when the reply is JSON, the text otherwise. */
  body: unknown;
  text: string;
}

/** A non-2xx reply, carrying the API's {error, field, reason}. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly body: { error?: string; field?: string; reason?: string } | undefined,
    fallback: string,
  ) {
    super(body?.error ?? fallback);
    this.name = 'ApiError';
  }
}

/** The daemon is not there (no socket, nobody listening, no permission). */
export class UnreachableError extends Error {
  constructor(socketPath: string, cause: NodeJS.ErrnoException) {
    const hint =
      cause.code === 'EACCES'
        ? 'permission denied: run as the daemon user or a member of the socket group'
        : 'is the daemon running? start it with `vhost-switch run`, or pass --control PATH';
    super(`cannot reach vhost-switch at ${socketPath} (${cause.code ?? cause.message}): ${hint}`);
    this.name = 'UnreachableError';
  }
}

export class ApiClient {
  constructor(
    readonly socketPath: string,
    private readonly timeoutMs = 10_000,
  ) {}

  request(method: string, urlPath: string, body?: unknown): Promise<ApiResponse> {
    const payload = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const req = http.request(
        {
          socketPath: this.socketPath,
          method,
          path: urlPath,
          headers: payload === undefined ? {} : { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(payload) },
          timeout: this.timeoutMs,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', reject);
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let parsed: unknown = text;
            if ((res.headers['content-type'] ?? '').startsWith('application/json') && text !== '') {
              try {
                parsed = JSON.parse(text);
              } catch {
                parsed = text;
              }
            }
            resolve({ status: res.statusCode ?? 0, body: parsed, text });
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error(`no answer from ${this.socketPath} within ${this.timeoutMs} ms`)));
      req.on('error', (err: NodeJS.ErrnoException) => {
        reject(['ENOENT', 'ECONNREFUSED', 'EACCES', 'ENOTSOCK'].includes(err.code ?? '') ? new UnreachableError(this.socketPath, err) : err);
      });
      req.end(payload);
    });
  }

  /** Like request(), but a non-2xx status throws ApiError. */
  async call<T = unknown>(method: string, urlPath: string, body?: unknown): Promise<T> {
    const res = await this.request(method, urlPath, body);
    if (res.status < 200 || res.status >= 300) {
      const b = typeof res.body === 'object' && res.body !== null ? (res.body as ApiError['body']) : undefined;
      throw new ApiError(res.status, b, `HTTP ${res.status}: ${res.text.trim()}`);
    }
    return res.body as T;
  }
}
