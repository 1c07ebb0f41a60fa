// The control API: HTTP/1.1 + JSON on RUN_DIR/control.sock, in the style of Firecracker's and Cloud Hypervisor's
// unix-socket REST APIs. Routes are a small table; every request is validated before anything changes, and each
// refusal carries {error, field, reason}. docs/openapi.yaml describes the same routes and is served at /v1/openapi.
import fs from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { captureQuerySchema, parseWith } from '../config.js';
import type { HealthReport } from '../switch/health.js';
import { PCAP_CONTENT_TYPE, streamCapture } from './capture.js';
import type { Logger } from '../log.js';
import type { TrimStats } from '../host/memtrim.js';
import { processMemory } from '../host/procmem.js';
import { CONTROL_SOCKET_MODE } from '../host/runDir.js';
import type { VSwitch } from '../switch/model.js';
import { errorResponse, HttpError, MAX_BODY_BYTES, readJson, send } from './http.js';
import { Metrics, METRICS_CONTENT_TYPE, type MetricsInput } from './metrics.js';

/** The part of VSwitch the API drives (a fake in tests). */
export type SwitchApi = Pick<
  VSwitch,
  'addPort' | 'ensurePort' | 'updatePort' | 'removePort' | 'listPorts' | 'getPort' | 'portStats' | 'stats' | 'threads' | 'clearStats' | 'fdbList' | 'fdbAdd' | 'fdbRemove' | 'fdbFlush' | 'tscHz' | 'startCapture'
>;

export interface ApiOptions {
  vswitch: SwitchApi;
  version: string;
  features: string[];
  log: Logger;
  /** docs/openapi.yaml; found next to the package when not given. */
  openapiPath?: string;
  maxBodyBytes?: number;
  startedAt?: number;
  /** The memory trims (src/host/memtrim.ts) for GET /v1/stats, when the daemon runs them. */
  trimStats?: () => TrimStats;
  /** GET /v1/metrics; by default one of its own over vswitch (the daemon shares one with its TCP listener). */
  metrics?: Metrics;
  /** What GET /v1/health reports (src/switch/health.ts); without it, ok with no reasons. */
  health?: () => HealthReport;
}

interface Request {
  req: http.IncomingMessage;
  params: Record<string, string>;
  query: URLSearchParams;
}
interface Reply {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
  /** A response written over time (a capture): called after the head is sent, resolves when it is done. */
  stream?: (res: http.ServerResponse) => Promise<void>;
}
type Handler = (r: Request) => Promise<Reply>;
interface Route {
  pattern: RegExp;
  keys: string[];
  methods: Record<string, Handler>;
  /** Query parameters the route understands; others are refused so a typo cannot widen a DELETE. */
  query?: Record<string, string[]>;
}

function route(template: string, methods: Record<string, Handler>, query?: Record<string, string[]>): Route {
  const keys: string[] = [];
  const pattern = new RegExp('^' + template.replace(/\{(\w+)\}/g, (_m, k: string) => (keys.push(k), '([^/]+)')) + '/?$');
  return { pattern, keys, methods, query };
}

async function locateOpenapi(explicit: string | undefined): Promise<string> {
  if (explicit) return explicit;
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const candidate = path.join(dir, 'docs', 'openapi.yaml');
    if (await fs.stat(candidate).then(() => true, () => false)) return candidate;
    dir = path.dirname(dir);
  }
  throw new HttpError(404, 'docs/openapi.yaml is not installed with this build');
}

/** What the metrics are made of, read at each scrape. */
export function metricsSampler(vs: SwitchApi, version: string, startedAt = Date.now()): () => MetricsInput {
  return () => {
    const stats = vs.stats();
    return {
      version,
      uptimeSeconds: (Date.now() - startedAt) / 1000,
      ports: stats.ports,
      portInfo: vs.listPorts(),
      threads: stats.threads,
      fdb: vs.fdbList(),
      tscHz: vs.tscHz(),
    };
  };
}

export function createApiServer(opts: ApiOptions): http.Server {
  const vs = opts.vswitch;
  const startedAt = opts.startedAt ?? Date.now();
  const limit = opts.maxBodyBytes ?? MAX_BODY_BYTES;
  const ok = (body?: unknown, status = 200) => Promise.resolve({ status, body });
  const metrics = opts.metrics ?? new Metrics(metricsSampler(vs, opts.version, startedAt));

  const routes: Route[] = [
    route('/v1/health', {
      GET: () => ok({ ...(opts.health?.() ?? { status: 'ok', reasons: [] }), uptimeSeconds: Math.floor((Date.now() - startedAt) / 1000), ports: vs.listPorts().length }),
    }),
    route('/v1/version', { GET: () => ok({ version: opts.version, api: 'v1', features: opts.features }) }),
    route(
      '/v1/ports',
      {
        GET: () => ok({ ports: vs.listPorts() }),
        POST: async ({ req, query }) => {
          const mayExist = query.get('mayExist');
          if (mayExist !== null && mayExist !== 'true' && mayExist !== 'false') throw new HttpError(400, 'mayExist must be true or false', 'mayExist');
          const body = await readJson(req, limit);
          // 200 when mayExist found the port already there, 201 when it was created.
          const { port, created } = mayExist === 'true' ? await vs.ensurePort(body) : { port: await vs.addPort(body, 'api'), created: true };
          return { status: created ? 201 : 200, body: port, headers: { Location: `/v1/ports/${encodeURIComponent(port.name)}` } };
        },
      },
      { POST: ['mayExist'] },
    ),
    route(
      '/v1/ports/{name}',
      {
        GET: async ({ params }) => ok(vs.getPort(params.name!)),
        PATCH: async ({ req, params, query }) => {
          const restart = query.get('restart');
          if (restart !== null && restart !== 'true' && restart !== 'false') throw new HttpError(400, 'restart must be true or false', 'restart');
          return ok(await vs.updatePort(params.name!, await readJson(req, limit), { restart: restart === 'true' }));
        },
        DELETE: async ({ params }) => (await vs.removePort(params.name!), { status: 204 }),
      },
      { PATCH: ['restart'] },
    ),
    route('/v1/ports/{name}/stats', { GET: async ({ params }) => ok(vs.portStats(params.name!)) }),
    route(
      '/v1/ports/{name}/capture',
      {
        GET: async ({ params, query }) => {
          const q = parseWith(captureQuerySchema, Object.fromEntries(query));
          const name = params.name!;
          const cap = vs.startCapture(name, { direction: q.direction, snaplen: q.snaplen });
          return {
            status: 200,
            headers: { 'Content-Type': PCAP_CONTENT_TYPE, Trailer: 'Capture-Frames, Capture-Dropped' },
            stream: async (res) => {
              const r = await streamCapture(cap, res, q.snaplen, q.count);
              opts.log.info('capture ended', { port: name, frames: r.frames, dropped: r.dropped });
            },
          };
        },
      },
      { GET: ['direction', 'count', 'snaplen'] },
    ),
    route('/v1/threads', { GET: () => ok({ threads: vs.threads() }) }),
    route('/v1/stats/clear', { POST: () => (vs.clearStats(), Promise.resolve({ status: 204 })) }),
    route('/v1/stats', { GET: () => ok({ ...vs.stats(), process: { ...processMemory(), ...(opts.trimStats ? { trims: opts.trimStats() } : {}) } }) }),
    route(
      '/v1/fdb',
      {
        GET: () => ok({ entries: vs.fdbList() }),
        POST: async ({ req }) => ({ status: 201, body: await vs.fdbAdd(await readJson(req, limit), 'api') }),
        DELETE: async ({ query }) => (await vs.fdbFlush(query.get('port') ?? undefined), { status: 204 }),
      },
      { DELETE: ['port'] },
    ),
    route(
      '/v1/fdb/{mac}',
      { DELETE: async ({ params, query }) => ok(await vs.fdbRemove(params.mac!, query.has('vlan') ? Number(query.get('vlan')) : 0)) },
      { DELETE: ['vlan'] },
    ),
    route('/v1/metrics', {
      GET: async () => ({ status: 200, body: await metrics.text(), headers: { 'Content-Type': METRICS_CONTENT_TYPE } }),
    }),
    route('/v1/openapi', {
      GET: async () => {
        const text = await fs.readFile(await locateOpenapi(opts.openapiPath), 'utf8');
        return { status: 200, body: text, headers: { 'Content-Type': 'application/yaml; charset=utf-8' } };
      },
    }),
  ];

  const dispatch = async (req: http.IncomingMessage): Promise<Reply> => {
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://localhost');
    } catch {
      throw new HttpError(400, `malformed request target ${JSON.stringify(req.url)}`);
    }
    for (const r of routes) {
      const m = r.pattern.exec(url.pathname);
      if (!m) continue;
      const method = req.method ?? 'GET';
      const handler = r.methods[method];
      const allow = Object.keys(r.methods).join(', ');
      if (!handler) throw new HttpError(405, `${method} is not allowed on ${url.pathname}; allowed: ${allow}`, undefined, undefined, { Allow: allow });
      const params: Record<string, string> = {};
      for (const [i, k] of r.keys.entries()) {
        try {
          params[k] = decodeURIComponent(m[i + 1]!);
        } catch {
          throw new HttpError(400, `malformed percent-encoding in ${url.pathname}`, k, 'bad percent-encoding');
        }
      }
      const known = r.query?.[method] ?? [];
      for (const key of url.searchParams.keys()) {
        if (!known.includes(key)) {
          throw new HttpError(400, `unknown query parameter "${key}"${known.length ? ` (known: ${known.join(', ')})` : ''}`, key, 'unknown query parameter');
        }
      }
      return handler({ req, params, query: url.searchParams });
    }
    throw new HttpError(404, `no resource at ${url.pathname}`);
  };

  // requireHostHeader off: on a unix socket the Host header means nothing, and Node's own 400 for its absence would
  // bypass the JSON error shape.
  const server = http.createServer({ requireHostHeader: false }, async (req, res) => {
    const t0 = process.hrtime.bigint();
    let status: number;
    try {
      const out = await dispatch(req);
      status = out.status;
      if (out.stream) {
        res.writeHead(out.status, out.headers);
        await out.stream(res);
      } else send(res, out.status, out.body, out.headers);
    } catch (err) {
      const { status: s, body, headers } = errorResponse(err);
      status = s;
      if (s === 500) opts.log.error('request failed', { method: req.method, url: req.url, err: err as Error });
      else if (err instanceof HttpError && err.reason === 'aborted') {
        // The client hung up mid-body (src/api/http.ts): nobody is left to answer.
        opts.log.debug('client went away mid-request', { method: req.method, url: req.url });
        return;
      }
      // A refused change is worth a line in the daemon's log (who tried what, and why not); a failed read is not.
      else if (req.method !== 'GET') opts.log.info('request refused', { method: req.method, url: req.url, status: s, error: body.error });
      // After a 413 the rest of the body is read and thrown away, so a client still writing it gets the answer
      // rather than EPIPE; a client that keeps streaming past a bound is cut off.
      if (s === 413) {
        let drained = 0;
        const cut = setTimeout(() => req.destroy(), 5000);
        req.on('data', (c: Buffer) => (drained += c.length) > 64 * limit && req.destroy());
        req.on('close', () => clearTimeout(cut));
      }
      send(res, s, body, headers);
    }
    // Drain what the handler did not read (GET with a body), or keep-alive would parse it as the next request.
    req.resume();
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    opts.log.debug('request', { method: req.method, url: req.url, status, ms: Math.round(ms * 10) / 10 });
  });
  // Bytes that are not HTTP (or a body with no framing, parsed as the next request) never reach the handler:
  // answer them in the same JSON shape instead of Node's bare 400, then close, since the stream is out of step.
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
    const body = JSON.stringify({ error: `malformed HTTP request: ${err.code ?? err.message}` }) + '\n';
    socket.end(
      `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  });
  // Clients on a local socket are operators and scripts; a stuck one must not pin a connection forever.
  server.requestTimeout = 30_000;
  server.headersTimeout = 10_000;
  return server;
}

/**
 * Listens on `socketPath`, then narrows it to 0660. Between bind() and chmod() the socket has the mode the umask
 * gives (0755 under the usual 022), which already denies connect() to others: connecting needs write permission.
 */
export async function listenUnix(server: http.Server, socketPath: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => {
      server.off('error', reject);
      resolve();
    });
  });
  await fs.chmod(socketPath, CONTROL_SOCKET_MODE);
}
