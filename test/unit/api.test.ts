// The control API on a real unix socket, over a real VSwitch whose data plane is the FakeNativeSwitch (test/support) and whose endpoints
// are inert: every route, every refusal with its message, and a fuzz showing bad input changes nothing.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { createApiServer, listenUnix } from '../../src/api/server.js';
import { ApiClient } from '../../src/cli/client.js';
import { createLogger } from '../../src/log.js';
import type { NativeAddon } from '../../src/dataplane/native.js';
import { VSwitch } from '../../src/switch/model.js';
import type { EndpointParams, EndpointState } from '../../src/switch/port.js';
import type { PersistedState } from '../../src/switch/state.js';
// @ts-expect-error plain JS test helper
import { FakeNativeSwitch } from '../support/fake-native-switch.js';

class InertEndpoint extends EventEmitter {
  state: EndpointState = 'closed';
  protocolErrors = 0;
  constructor(readonly p: EndpointParams) {
    super();
  }
  start(): void {
    if (this.p.socketPath.includes('fail-start')) throw new Error('listen failed: EADDRINUSE');
    this.state = this.p.mode === 'server' ? 'listening' : 'connecting';
    this.emit('state', this.state, 'closed');
  }
  close(): void {
    this.state = 'closed';
  }
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vs-api-'));
const sock = path.join(dir, 'control.sock');
const saved: PersistedState[] = [];
let failPersist = false;
let vs: VSwitch;
let server: http.Server;
const client = new ApiClient(sock);

beforeAll(async () => {
  vs = new VSwitch({
    native: { Switch: FakeNativeSwitch } as unknown as NativeAddon,
    threads: 2,
    agingSeconds: 300,
    runDir: dir,
    socketDirs: [path.join(dir, 'extra')],
    log: createLogger({ level: 'error', write: () => {} }),
    endpointFactory: (p) => new InertEndpoint(p),
    persist: async (s) => {
      if (failPersist) throw new Error('disk full');
      saved.push(s);
    },
    lookupId: async (kind, who) => {
      if (typeof who === 'number') return who;
      if (who === 'qemu') return 107;
      throw new Error(`no ${kind} named "${who}"`);
    },
  });
  await vs.addPort({ name: 'cfg0' }, 'config');
  server = createApiServer({ vswitch: vs, version: '9.9.9', features: ['x'], log: createLogger({ level: 'error', write: () => {} }) });
  await listenUnix(server, sock);
});

afterAll(async () => {
  await new Promise<void>((r) => {
    server.close(() => r());
    server.closeAllConnections();
  });
  await vs.close();
});

beforeEach(async () => {
  failPersist = false;
  for (const p of vs.listPorts()) if (p.origin === 'api') await vs.removePort(p.name);
  await vs.fdbFlush();
  saved.length = 0;
});

/** A raw request, for bodies and headers the client would never send. */
function raw(method: string, url: string, body?: string | Buffer, headers: Record<string, string | number> = {}): Promise<{ status: number; headers: http.IncomingHttpHeaders; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath: sock, method, path: url, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, text: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('resources', () => {
  it('health and version', async () => {
    expect(await client.call('GET', '/v1/health')).toMatchObject({ status: 'ok', ports: 1 });
    expect(await client.call('GET', '/v1/version')).toEqual({ version: '9.9.9', api: 'v1', features: ['x'] });
  });

  it('the control socket is 0660', () => {
    expect(fs.statSync(sock).mode & 0o777).toBe(0o660);
  });

  it('creates, lists, shows and deletes a port; API ports are persisted', async () => {
    const res = await raw('POST', '/v1/ports', JSON.stringify({ name: 'vm1', queues: 2, vlan: 10, mac: '52:54:00:00:00:AA', socketOwner: 'qemu' }));
    expect(res.status).toBe(201);
    expect(res.headers.location).toBe('/v1/ports/vm1');
    const port = JSON.parse(res.text);
    expect(port).toMatchObject({ name: 'vm1', socket: path.join(dir, 'vm1.sock'), queues: 2, vlan: 10, mac: '52:54:00:00:00:aa', origin: 'api', state: 'listening', socketMode: 0o660 });
    expect(saved.at(-1)!.ports.map((p) => p.name)).toEqual(['vm1']);

    const { ports } = await client.call<{ ports: Array<{ name: string }> }>('GET', '/v1/ports');
    expect(ports.map((p) => p.name)).toEqual(['cfg0', 'vm1']);
    expect(await client.call('GET', '/v1/ports/vm1')).toMatchObject({ name: 'vm1', id: port.id });
    expect((await client.call<{ entries: unknown[] }>('GET', '/v1/fdb')).entries).toContainEqual({ mac: '52:54:00:00:00:aa', vlan: 10, port: 'vm1', static: true, ageSeconds: 0 });

    expect((await raw('DELETE', '/v1/ports/vm1')).status).toBe(204);
    expect(saved.at(-1)!.ports).toEqual([]);
    expect((await raw('GET', '/v1/ports/vm1')).status).toBe(404);
  });

  it('client-mode ports and sockets in an extra socket directory', async () => {
    const p = await client.call('POST', '/v1/ports', { name: 'c1', mode: 'client', socket: path.join(dir, 'extra', 'c1.sock') });
    expect(p).toMatchObject({ mode: 'client', state: 'connecting' });
  });

  it('stats: 64-bit counters beyond 2^53 are strings, others numbers', async () => {
    const s = await client.call<{ rxPackets: unknown; drops: Record<string, unknown>; state: string }>('GET', '/v1/ports/cfg0/stats');
    expect(typeof s.rxPackets).toBe('number');
    expect(s.drops).toEqual({ noRoute: 1, queueFull: (2n ** 60n).toString() });
    expect(s.state).toBe('listening');
    const all = await client.call<{ ports: unknown[]; threads: Array<{ cyclesPerPacket: number }>; process: Record<string, number> }>('GET', '/v1/stats');
    expect(all.ports).toHaveLength(1);
    expect(all.threads).toHaveLength(2);
    expect(all.threads[0]!.cyclesPerPacket).toBe(100);
    // The daemon's own memory: resident set, V8 heap, and glibc malloc (the addon's mallinfo2()).
    for (const k of ['rssBytes', 'heapUsedBytes', 'heapTotalBytes', 'externalBytes', 'mallocInUseBytes', 'mallocHeldBytes']) expect(all.process[k], k).toBeGreaterThan(0);
  });

  it('FDB: add (persisted), list; flush forgets learned entries only', async () => {
    await client.call('POST', '/v1/ports', { name: 'vm2', mac: '52:54:00:00:00:02', vlan: 5 });
    expect(await client.call('POST', '/v1/fdb', { mac: '52:54:00:00:00:03', vlan: 5, port: 'vm2' })).toEqual({ mac: '52:54:00:00:00:03', vlan: 5, port: 'vm2' });
    expect(saved.at(-1)!.fdb).toEqual([{ mac: '52:54:00:00:00:03', vlan: 5, port: 'vm2' }]);
    const macs = async (learned: boolean) =>
      (await client.call<{ entries: Array<{ mac: string; port: string; static: boolean }> }>('GET', '/v1/fdb')).entries
        .filter((e) => e.static !== learned)
        .map((e) => `${e.port}/${e.mac}`)
        .sort();
    expect(await macs(false)).toEqual(['vm2/52:54:00:00:00:02', 'vm2/52:54:00:00:00:03']);
    expect(await macs(true)).toEqual([expect.stringMatching(/^vm2\/02:00/)]); // the fake learns one MAC per new port
    await client.call('POST', '/v1/ports', { name: 'vm3' });
    expect((await raw('DELETE', '/v1/fdb?port=vm2')).status).toBe(204);
    expect(await macs(true)).toEqual([expect.stringMatching(/^vm3\//)]);
    expect(await macs(false)).toEqual(['vm2/52:54:00:00:00:02', 'vm2/52:54:00:00:00:03']);
    expect((await raw('DELETE', '/v1/fdb')).status).toBe(204);
    expect(await macs(true)).toEqual([]);
    // Static entries leave with their port, from the table and from the state.
    await client.call('DELETE', '/v1/ports/vm2');
    expect(await macs(false)).toEqual([]);
    expect(saved.at(-1)!.fdb).toEqual([]);
  });

  it('metrics in the Prometheus text format', async () => {
    const res = await raw('GET', '/v1/metrics');
    expect(res.headers['content-type']).toContain('text/plain; version=0.0.4');
    const lines = res.text.trim().split('\n').filter((l) => l !== ''); // prom-client separates families with a blank line
    for (const l of lines) expect(l).toMatch(/^(# (HELP|TYPE) \w+ .+|\w+(\{(\w+="[^"]*",?)*\})? [-+]?[\d.e+]+(Inf)?)$/);
    expect(res.text).toContain('vhost_switch_port_rx_packets_total{port="cfg0"} ');
    expect(res.text).toContain('vhost_switch_port_drops_total{port="cfg0",reason="queue_full"} 1152921504606846976');
    expect(res.text).toContain('vhost_switch_port_state{port="cfg0",state="listening"} 1');
    expect(res.text).toContain('vhost_switch_thread_cycles_per_packet{thread="1"} 100');
    expect(res.text).toContain('# TYPE vhost_switch_port_tx_bytes_total counter');
  });

  it('serves the OpenAPI document, which lists every route', async () => {
    const res = await raw('GET', '/v1/openapi');
    expect(res.status).toBe(200);
    expect(res.text).toMatch(/^openapi: 3\.0/);
    for (const p of ['/v1/health', '/v1/version', '/v1/ports', '/v1/ports/{name}', '/v1/ports/{name}/stats', '/v1/stats', '/v1/fdb', '/v1/metrics', '/v1/openapi']) {
      expect(res.text).toContain(`\n  ${p}:\n`);
    }
  });
});

describe('refusals carry {error, field, reason} and change nothing', () => {
  const cases: Array<[string, string, string | undefined, number, string, string?]> = [
    ['POST', '/v1/ports', '{"name": "x",', 400, 'request body is not valid JSON'],
    ['POST', '/v1/ports', '', 400, 'request body is empty'],
    ['POST', '/v1/ports', '[]', 422, 'must be a port object', ''],
    ['POST', '/v1/ports', '{"name":"a","queues":"2"}', 422, 'queues: must be a number', 'queues'],
    ['POST', '/v1/ports', '{"name":"a","mtu":100000}', 422, 'mtu: must be at most 9710', 'mtu'],
    ['POST', '/v1/ports', '{"name":"a","colour":1}', 422, 'colour: unknown field', 'colour'],
    ['POST', '/v1/ports', '{"name":"cfg0"}', 409, 'name: port "cfg0" already exists', 'name'],
    ['POST', '/v1/ports', '{"name":"a","socket":"cfg0.sock"}', 409, 'is already used by port "cfg0"', 'socket'],
    ['POST', '/v1/ports', '{"name":"a","socket":"/etc/x.sock"}', 422, 'is outside the allowed socket directories', 'socket'],
    ['POST', '/v1/ports', '{"name":"a","socket":"../x.sock"}', 422, 'is outside the allowed socket directories', 'socket'],
    ['POST', '/v1/ports', '{"name":"a","socket":"plain-file"}', 422, 'exists and is not a socket', 'socket'],
    ['POST', '/v1/ports', `{"name":"a","socket":"${'s'.repeat(120)}"}`, 422, 'unix sockets allow at most 107', 'socket'],
    ['POST', '/v1/ports', '{"name":"a","socketGroup":"nogroup9"}', 422, 'socketGroup: no group named "nogroup9"', 'socketGroup'],
    ['POST', '/v1/ports', '{"name":"a","socket":"fail-start.sock"}', 422, 'cannot open', 'socket'],
    ['DELETE', '/v1/ports/cfg0', undefined, 409, 'declared in the config file', 'name'],
    ['DELETE', '/v1/ports/nope', undefined, 404, 'no port named "nope"', 'name'],
    ['GET', '/v1/ports/nope/stats', undefined, 404, 'no port named "nope"', 'name'],
    ['GET', '/v1/ports/%E0%A4%A', undefined, 400, 'malformed percent-encoding', 'name'],
    ['POST', '/v1/fdb', '{"mac":"52:54:00:00:00:01","port":"nope"}', 422, 'port: no port named "nope"', 'port'],
    ['POST', '/v1/fdb', '{"mac":"ff:ff:ff:ff:ff:ff","port":"cfg0"}', 422, 'mac: must be a unicast address', 'mac'],
    ['POST', '/v1/fdb', '{"mac":"52:54:00:00:00:01","port":"cfg0","vlan":4095}', 422, 'vlan: must be at most 4094', 'vlan'],
    ['DELETE', '/v1/fdb?port=nope', undefined, 404, 'no port named "nope"', 'port'],
    ['DELETE', '/v1/fdb?prot=cfg0', undefined, 400, 'unknown query parameter "prot"', 'prot'],
    ['GET', '/v1/nothing', undefined, 404, 'no resource at /v1/nothing'],
    ['PUT', '/v1/ports', '{}', 405, 'PUT is not allowed on /v1/ports; allowed: GET, POST'],
    ['DELETE', '/v1/stats', undefined, 405, 'DELETE is not allowed'],
  ];

  it.each(cases)('%s %s %s → %i %s', async (method, url, body, status, message, field) => {
    fs.writeFileSync(path.join(dir, 'plain-file'), 'not a socket');
    const before = JSON.stringify([vs.listPorts(), vs.fdbList()]);
    const res = await raw(method, url, body);
    expect(res.status).toBe(status);
    const err = JSON.parse(res.text);
    expect(err.error).toContain(message);
    if (field !== undefined) expect(err.field).toBe(field);
    if (status === 405) expect(res.headers.allow).toBeTruthy();
    expect(JSON.stringify([vs.listPorts(), vs.fdbList()])).toBe(before);
    expect(saved).toEqual([]);
  });

  it('413 for a body over 64 KiB, declared or streamed', async () => {
    const big = JSON.stringify({ name: 'a', pad: 'x'.repeat(70_000) });
    const declared = await raw('POST', '/v1/ports', big, { 'Content-Length': Buffer.byteLength(big) });
    expect(declared.status).toBe(413);
    expect(JSON.parse(declared.text).error).toContain('the limit is 65536');
    const streamed = await raw('POST', '/v1/ports', Buffer.from(big), { 'Transfer-Encoding': 'chunked' });
    expect(streamed.status).toBe(413);
    expect(vs.listPorts()).toHaveLength(1);
    expect((await client.call<{ status: string }>('GET', '/v1/health')).status).toBe('ok');
  });

  it('a port whose state cannot be saved is not added (500, says why)', async () => {
    failPersist = true;
    const res = await raw('POST', '/v1/ports', '{"name":"vm9"}');
    expect(res.status).toBe(500);
    expect(JSON.parse(res.text).error).toContain('could not save state: disk full');
    expect(vs.listPorts().map((p) => p.name)).toEqual(['cfg0']);
  });
});

describe('fuzz', () => {
  const bodies = fc.oneof(
    fc.jsonValue().map((v) => JSON.stringify(v)),
    fc.string(),
    fc.record(
      {
        name: fc.oneof(fc.string(), fc.constantFrom('vmf', 'cfg0', 'a'.repeat(64)), fc.integer()),
        mode: fc.oneof(fc.constantFrom('server', 'client'), fc.string(), fc.boolean()),
        socket: fc.oneof(fc.string(), fc.constantFrom('/etc/passwd', '../x', 'cfg0.sock', 'plain-file')),
        queues: fc.oneof(fc.integer(), fc.double(), fc.string()),
        mtu: fc.oneof(fc.integer(), fc.constant(null)),
        vlan: fc.oneof(fc.integer({ min: -5, max: 5000 }), fc.string()),
        mac: fc.oneof(fc.string(), fc.constantFrom('52:54:00:00:00:01', '01:00:00:00:00:00')),
        socketMode: fc.oneof(fc.string(), fc.integer()),
        extra: fc.anything(),
      },
      { requiredKeys: [] },
    ).map((v) => JSON.stringify(v)),
    fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from(a).toString('latin1')),
  );

  it('random bodies to POST /v1/ports and /v1/fdb: never a 5xx, and a refusal changes nothing', async () => {
    fs.writeFileSync(path.join(dir, 'plain-file'), 'not a socket');
    await fc.assert(
      fc.asyncProperty(fc.constantFrom('/v1/ports', '/v1/fdb'), bodies, async (url, body) => {
        const before = JSON.stringify([vs.listPorts(), vs.fdbList()]);
        const res = await raw('POST', url, body);
        expect(res.status).toBeLessThan(500);
        expect(res.status === 201 || JSON.parse(res.text).error.length > 0).toBe(true);
        if (res.status !== 201) {
          expect([400, 404, 409, 413, 422]).toContain(res.status);
          expect(JSON.stringify([vs.listPorts(), vs.fdbList()])).toBe(before);
        } else if (url === '/v1/ports') {
          await vs.removePort(JSON.parse(res.text).name);
        } else {
          await vs.fdbFlush();
        }
      }),
      { numRuns: 300 },
    );
    expect((await client.call<{ status: string }>('GET', '/v1/health')).status).toBe('ok');
  }, 120_000); // 300 requests over a unix socket: seconds alone, much longer beside QEMU guests on two cores
});

describe('nothing left behind', () => {
  it('a server socket in a new subdirectory: the directory is created, and removed again if the port fails', async () => {
    const ok = await client.call<{ socket: string }>('POST', '/v1/ports', { name: 'sub1', socket: 'sub/dir/s1.sock' });
    expect(ok.socket).toBe(path.join(dir, 'sub/dir/s1.sock'));
    expect(fs.existsSync(path.join(dir, 'sub/dir'))).toBe(true);
    const bad = await raw('POST', '/v1/ports', JSON.stringify({ name: 'sub2', socket: 'new/fail-start.sock' }));
    expect(bad.status).toBe(422);
    expect(fs.existsSync(path.join(dir, 'new'))).toBe(false);
  });
});
