// The real daemon through HTTP on its unix socket: resources, refusals, a fuzz that must leave the daemon up and
// its state untouched, and restarts (SIGKILL and SIGTERM) that bring API-created ports back.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import fc from 'fast-check';
import { makeRunDir } from '../../harness/env.js';
import { DaemonProcess } from './support/daemon.js';

const T = { timeout: 120_000 };
let runDir: string;
let config: string;
let d: DaemonProcess;

function raw(method: string, url: string, body?: string | Buffer, headers: Record<string, string | number> = {}): Promise<{ status: number; text: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath: path.join(runDir, 'control.sock'), method, path: url, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, text: Buffer.concat(chunks).toString(), headers: res.headers }));
    });
    req.on('error', reject);
    // The daemon may answer (413, 400) and close before a large body is all written: the write then fails with
    // EPIPE on the socket after the response has been read, where the request no longer listens.
    req.on('socket', (s) => s.on('error', () => {}));
    req.end(body);
  });
}

const snapshot = async () => {
  const ports = (await d.api.call<{ ports: Array<Record<string, unknown>> }>('GET', '/v1/ports')).ports.map(({ state: _s, protocolErrors: _e, ...rest }) => rest);
  const fdb = (await d.api.call<{ entries: Array<{ static: boolean }> }>('GET', '/v1/fdb')).entries.filter((e) => e.static);
  const state = fs.existsSync(path.join(runDir, 'state.json')) ? fs.readFileSync(path.join(runDir, 'state.json'), 'utf8') : '';
  return JSON.stringify({ ports, fdb, state });
};

beforeAll(async () => {
  runDir = makeRunDir('api');
  config = path.join(runDir, 'switch.json');
  fs.writeFileSync(config, JSON.stringify({ ports: [{ name: 'cfg0' }] }));
  d = await DaemonProcess.start(runDir, ['--config', config]);
}, 30_000);

afterAll(async () => {
  if (d?.alive()) await d.stop('SIGTERM');
}, 30_000);

describe('HTTP API', T, () => {
  it('health, version, openapi, metrics', async () => {
    expect(JSON.parse((await raw('GET', '/v1/health')).text)).toMatchObject({ status: 'ok', ports: 1 });
    expect(JSON.parse((await raw('GET', '/v1/version')).text).features).toContain('prometheus-metrics');
    const oa = await raw('GET', '/v1/openapi');
    expect(oa.headers['content-type']).toContain('yaml');
    expect(oa.text).toContain('/v1/ports/{name}/stats:');
    const m = await raw('GET', '/v1/metrics');
    expect(m.text).toMatch(/^vhost_switch_port_rx_packets_total\{port="cfg0"\} \d+$/m);
    expect(m.text).toMatch(/^vhost_switch_thread_cycles_per_packet\{thread="0"\} [\d.]+$/m);
  });

  it('health is degraded, with the reason, while a client-mode port cannot reach its socket', async () => {
    expect(JSON.parse((await raw('GET', '/v1/health')).text)).toEqual(expect.objectContaining({ status: 'ok', reasons: [] }));
    await d.api.call('POST', '/v1/ports', { name: 'lost', mode: 'client', socket: 'nobody-listens.sock' });
    try {
      const h = JSON.parse((await raw('GET', '/v1/health')).text) as { status: string; reasons: string[] };
      expect(h.status).toBe('degraded');
      expect(h.reasons).toEqual([expect.stringMatching(/^port lost: cannot reach its socket .*nobody-listens\.sock/)]);
    } finally {
      await d.api.call('DELETE', '/v1/ports/lost');
    }
    expect(JSON.parse((await raw('GET', '/v1/health')).text).status).toBe('ok');
  });

  it('create, list, show, stats, delete', async () => {
    const c = await raw('POST', '/v1/ports', JSON.stringify({ name: 'h1', mode: 'client', socket: 'h1.sock', queues: 4 }));
    expect(c.status).toBe(201);
    expect(JSON.parse(c.text)).toMatchObject({ name: 'h1', mode: 'client', state: 'connecting', origin: 'api', queues: 4 });
    expect(JSON.parse((await raw('GET', '/v1/ports')).text).ports).toHaveLength(2);
    const st = JSON.parse((await raw('GET', '/v1/ports/h1/stats')).text);
    expect(st).toMatchObject({ name: 'h1', rxPackets: 0, broken: false });
    expect(st.queues).toHaveLength(8);
    expect(JSON.parse(fs.readFileSync(path.join(runDir, 'state.json'), 'utf8')).ports[0].name).toBe('h1');
    expect((await raw('DELETE', '/v1/ports/h1')).status).toBe(204);
    expect(JSON.parse(fs.readFileSync(path.join(runDir, 'state.json'), 'utf8')).ports).toEqual([]);
  });

  it.each([
    ['POST', '/v1/ports', '{"name":', 400, 'request body is not valid JSON'],
    ['POST', '/v1/ports', '{"name":"a","queues":true}', 422, 'queues: must be a number'],
    ['POST', '/v1/ports', '{"name":"cfg0"}', 409, 'already exists'],
    ['DELETE', '/v1/ports/cfg0', undefined, 409, 'declared in the config file'],
    ['GET', '/v1/ports/zzz', undefined, 404, 'no port named "zzz"'],
    ['PUT', '/v1/ports/cfg0', '{}', 405, 'PUT is not allowed'],
    ['PATCH', '/v1/ports/cfg0', '{"vlan":5}', 409, 'declared in the config file'],
    ['PATCH', '/v1/ports/cfg0?restart=maybe', '{}', 400, 'restart must be true or false'],
    ['GET', '/v2/ports', undefined, 404, 'no resource at /v2/ports'],
    ['DELETE', '/v1/fdb?all=1', undefined, 400, 'unknown query parameter "all"'],
  ])('%s %s %s → %i', async (method, url, body, status, message) => {
    const before = await snapshot();
    const r = await raw(method, url, body);
    expect(r.status).toBe(status);
    expect(JSON.parse(r.text).error).toContain(message);
    expect(await snapshot()).toBe(before);
  });

  it('huge bodies: 413, the daemon stays up', async () => {
    const before = await snapshot();
    const big = Buffer.alloc(8 * 1024 * 1024, 'x');
    const r = await raw('POST', '/v1/ports', big, { 'Content-Length': big.length });
    expect(r.status).toBe(413);
    const chunked = await raw('POST', '/v1/fdb', Buffer.concat([Buffer.from('{"mac":"'), big]), { 'Transfer-Encoding': 'chunked' });
    expect(chunked.status).toBe(413);
    expect(await snapshot()).toBe(before);
  });
});

describe('fuzz', T, () => {
  it('random methods, paths and bodies leave the daemon running and its state unchanged', async () => {
    // One valid API port and FDB entry, so "unchanged" covers stored state too.
    await d.api.call('POST', '/v1/ports', { name: 'keep', mac: '52:54:00:00:00:77' });
    await d.api.call('POST', '/v1/fdb', { mac: '52:54:00:00:00:78', port: 'keep' });
    const before = await snapshot();
    const json = fc.oneof(
      fc.jsonValue().map((v) => JSON.stringify(v)),
      fc.string({ maxLength: 300 }),
      fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a).toString('latin1')),
      // Wrong types in every field of a port (the names collide with existing ones, so nothing can be created).
      fc.record({
        name: fc.constantFrom('cfg0', 'keep', 7, null, ['x'], ''),
        mode: fc.oneof(fc.string(), fc.integer()),
        queues: fc.oneof(fc.string(), fc.double(), fc.constant(-1)),
        socket: fc.oneof(fc.constant('keep.sock'), fc.constant('/etc/passwd'), fc.integer()),
      }).map((v) => JSON.stringify(v)),
      fc.record({ mac: fc.string(), vlan: fc.anything(), port: fc.constantFrom('nope', 5) }).map((v) => JSON.stringify(v)),
      fc.constant('{"name":"z","pad":"' + 'x'.repeat(70_000) + '"}'),
    );
    const target = fc.oneof(
      fc.constantFrom('/v1/ports', '/v1/fdb', '/v1/ports/nope', '/v1/ports/nope/stats', '/v1/ports/%ZZ', '/v1/fdb?port=nope', '/v1//ports', '/v1/ports/keep/x'),
      fc.webPath().map((p) => (p.startsWith('/') ? p : `/${p}`)),
    );
    await fc.assert(
      fc.asyncProperty(fc.constantFrom('GET', 'POST', 'PUT', 'PATCH'), target, json, async (method, url, body) => {
        const r = await raw(method, url, body);
        expect(r.status).toBeGreaterThanOrEqual(200);
        expect(r.status).toBeLessThan(500);
        if (r.status >= 400) expect(typeof JSON.parse(r.text).error, `${method} ${url} → ${r.status} ${r.text.slice(0, 200)}`).toBe('string');
      }),
      { numRuns: 250 },
    );
    expect(d.alive()).toBe(true);
    expect(await snapshot()).toBe(before);
  });

  it('bytes that are not HTTP get a JSON 400 (or a closed connection), and nothing changes', async () => {
    const before = await snapshot();
    const send = (bytes: Buffer) =>
      new Promise<string>((resolve) => {
        const s = net.connect(path.join(runDir, 'control.sock'));
        let got = '';
        s.on('data', (c) => (got += c.toString('latin1')));
        s.on('error', () => resolve(got));
        s.on('close', () => resolve(got));
        s.setTimeout(300, () => s.destroy());
        s.end(bytes);
      });
    const garbage = fc.oneof(
      fc.uint8Array({ minLength: 1, maxLength: 400 }).map((a) => Buffer.from(a)),
      fc.string().map((t) => Buffer.from(`POST /v1/ports HTTP/1.1\r\nContent-Length: ${t.length + 5}\r\n\r\n${t}`)),
      fc.constant(Buffer.from(`GET /v1/ports HTTP/1.1\r\nX: ${'y'.repeat(20_000)}\r\n\r\n`)),
      fc.constant(Buffer.from('GET /v1/ports HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n')),
    );
    await fc.assert(
      fc.asyncProperty(garbage, async (bytes) => {
        const reply = await send(bytes);
        if (reply.startsWith('HTTP/1.1 4')) expect(reply).toMatch(/\r\n\r\n\{"error":/);
        expect(reply.startsWith('HTTP/1.1 5')).toBe(false);
      }),
      { numRuns: 100 },
    );
    expect(d.alive()).toBe(true);
    expect(await snapshot()).toBe(before);
  });
});

describe('restart', T, () => {
  it('SIGKILL then restart: API ports and FDB entries come back, the stale control socket is replaced', async () => {
    const state = fs.readFileSync(path.join(runDir, 'state.json'), 'utf8');
    expect(JSON.parse(state).ports.map((p: { name: string }) => p.name)).toEqual(['keep']);
    const exit = await d.stop('SIGKILL');
    expect(exit.signal).toBe('SIGKILL');
    expect(fs.lstatSync(path.join(runDir, 'control.sock')).isSocket()).toBe(true); // left behind
    d = await DaemonProcess.start(runDir, ['--config', config]);
    const ports = (await d.api.call<{ ports: Array<{ name: string; origin: string; state: string; mac?: string }> }>('GET', '/v1/ports')).ports;
    expect(ports.map((p) => [p.name, p.origin, p.state])).toEqual([
      ['cfg0', 'config', 'listening'],
      ['keep', 'api', 'listening'],
    ]);
    const fdb = (await d.api.call<{ entries: Array<{ mac: string; port: string; static: boolean }> }>('GET', '/v1/fdb')).entries;
    expect(fdb.filter((e) => e.static).map((e) => e.mac).sort()).toEqual(['52:54:00:00:00:77', '52:54:00:00:00:78']);
    expect(d.stderr).toMatch(/level=info msg="port restored" port=keep/);
    expect(fs.readFileSync(path.join(runDir, 'state.json'), 'utf8')).toBe(state);
  });

  it('a second daemon on the same run directory is refused', async () => {
    const other = DaemonProcess.spawn(runDir, ['--config', config]);
    const exit = await other.exited;
    expect(exit.code).toBe(1);
    expect(other.stderr).toContain('another vhost-switch is already listening on');
    expect(d.alive()).toBe(true);
  });

  it('config wins over a stored port of the same name, and says so', async () => {
    expect((await d.stop('SIGTERM')).code).toBe(0);
    expect(fs.existsSync(path.join(runDir, 'control.sock'))).toBe(false);
    fs.writeFileSync(config, JSON.stringify({ ports: [{ name: 'cfg0' }, { name: 'keep', socket: 'keep-cfg.sock' }] }));
    d = await DaemonProcess.start(runDir, ['--config', config]);
    expect(d.stderr).toMatch(/level=warn msg="stored port has the name of a config port: the config wins, the stored port is dropped" port=keep/);
    const keep = await d.api.call<{ origin: string; socket: string }>('GET', '/v1/ports/keep');
    expect(keep).toMatchObject({ origin: 'config', socket: path.join(runDir, 'keep-cfg.sock') });
    const stored = JSON.parse(fs.readFileSync(path.join(runDir, 'state.json'), 'utf8'));
    expect(stored).toEqual({ version: 1, ports: [], fdb: [] });
    // The stored FDB entry belonged to the dropped port and goes with it.
    expect(d.stderr).toMatch(/level=warn msg="stored fdb entry of a dropped port is dropped" port=keep mac=52:54:00:00:00:78/);
    const statics = (await d.api.call<{ entries: Array<{ mac: string; static: boolean }> }>('GET', '/v1/fdb')).entries.filter((e) => e.static);
    expect(statics).toEqual([]);
  });

  it('a bad config file stops the start with the field and the reason', async () => {
    await d.stop('SIGTERM');
    fs.writeFileSync(config, JSON.stringify({ ports: [{ name: 'cfg0', mtu: 'big' }] }));
    const bad = DaemonProcess.spawn(runDir, ['--config', config]);
    expect((await bad.exited).code).toBe(1);
    expect(bad.stderr).toContain(`config ${config}: ports[0].mtu: must be a number (bytes)`);
  });

  it('no --config: the embedded default (vhu0, vhu1)', async () => {
    const dir = makeRunDir('default');
    const def = await DaemonProcess.start(dir);
    const names = (await def.api.call<{ ports: Array<{ name: string; mode: string }> }>('GET', '/v1/ports')).ports.map((p) => `${p.name}:${p.mode}`);
    expect(names).toEqual(['vhu0:server', 'vhu1:server']);
    expect((await def.stop('SIGINT')).code).toBe(0);
  });
});
