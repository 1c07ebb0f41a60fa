// Issue 8, the control client disconnecting mid-request: raw unix-socket clients that write part of an HTTP request
// (request line, headers, or a body shorter than its Content-Length) and close, or send a whole request and close
// before reading the answer, or stall with a half request open. The daemon stays up, keeps answering other
// clients while one stalls, changes nothing for a request that never arrived whole, and holds no fd for the dead
// connections afterwards.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { makeRunDir, uniqueSocketPath, waitUntil } from '../../harness/env.js';
import { cli, DaemonProcess, nativeSwitchAvailable } from '../integration/support/daemon.js';
import { writeSpecConfig } from './lib-e2e.js';

/** Connects, writes each chunk (pausing between), then closes; resolves with whatever the daemon answered. */
function rawExchange(sock: string, chunks: Array<string | Buffer>, opts: { pauseMs?: number; end?: 'end' | 'destroy'; waitMs?: number } = {}): Promise<string> {
  return new Promise((resolve) => {
    const c = net.createConnection({ path: sock });
    let got = '';
    c.on('data', (b) => (got += b.toString()));
    c.on('error', () => {});
    c.on('close', () => resolve(got));
    c.on('connect', async () => {
      for (const ch of chunks) {
        c.write(ch);
        if (opts.pauseMs) await new Promise((r) => setTimeout(r, opts.pauseMs));
      }
      if (opts.waitMs) await new Promise((r) => setTimeout(r, opts.waitMs));
      if (opts.end === 'end') c.end();
      else c.destroy();
    });
  });
}

function fdCount(pid: number): number {
  return fs.readdirSync(`/proc/${pid}/fd`).length;
}

describe('control clients that go away mid-request', () => {
  let d: DaemonProcess | undefined;
  afterAll(async () => {
    await d?.stop();
  });

  it('half requests, cut bodies, early closes and a stalled client leave the daemon running and its state unchanged', async () => {
    // The data plane must be the real one: this is the real daemon, as deployed.
    expect(nativeSwitchAvailable(), 'native addon with a Switch (npm run build:native)').toBe(true);
    const dir = makeRunDir('fault-ctl');
    const config = writeSpecConfig(dir, [{ name: 'p-cfg', mode: 'server', socket: uniqueSocketPath(dir, 'cfg') }]);
    d = await DaemonProcess.start(dir, ['--config', config]);
    const api = d.api;
    const ctl = path.join(dir, 'control.sock');
    const stateFile = path.join(dir, 'state.json');
    const created = await api.request('POST', '/v1/ports', { name: 'p-api', socket: uniqueSocketPath(dir, 'api') });
    expect(created.status, created.text).toBe(201);
    const stateBefore = fs.readFileSync(stateFile, 'utf8');
    const portsBefore = (await api.request('GET', '/v1/ports')).text;
    const pid = d.child.pid!;
    // Settle: the first requests opened whatever the daemon keeps open.
    await api.request('GET', '/v1/health');
    const fdsBefore = fdCount(pid);

    const newPort = (name: string) => JSON.stringify({ name, socket: uniqueSocketPath(dir, name) });
    const post = (body: string, declared = Buffer.byteLength(body)) =>
      `POST /v1/ports HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${declared}\r\n\r\n${body}`;
    const full = newPort('p-cut');
    const cases: Array<[string, Array<string | Buffer>, Parameters<typeof rawExchange>[2]?]> = [
      ['half a request line', ['GET /v1/po']],
      ['a request line, no headers end', ['GET /v1/ports HTTP/1.1\r\nHost: x\r\n']],
      ['half a header', ['POST /v1/ports HTTP/1.1\r\nContent-Le']],
      ['headers, then a body cut short', [post(full).slice(0, -10)]],
      ['a body cut short, in pieces', [post(full).slice(0, 60), post(full).slice(60, -5)], { pauseMs: 50 }],
      ['a chunked body cut mid-chunk', ['POST /v1/ports HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n', `${full.length.toString(16)}\r\n${full.slice(0, 10)}`], { pauseMs: 50 }],
      ['half a request, then a half-close', ['POST /v1/fdb HTTP/1.1\r\nContent-Length: 50\r\n\r\n{"mac":'], { end: 'end' }],
      ['a whole GET, closed before the answer', ['GET /v1/metrics HTTP/1.1\r\nHost: x\r\n\r\n']],
      ['a whole GET of a big answer, closed before reading', ['GET /v1/openapi HTTP/1.1\r\nHost: x\r\n\r\n']],
      ['a pipelined GET, then half a second one', ['GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\nGET /v1/stats HTTP/1.1\r\nHo']],
      ['one byte', [Buffer.from([0x50])]],
    ];
    for (const [what, chunks, opts] of cases) {
      await rawExchange(ctl, chunks, opts);
      expect(d.alive(), `daemon alive after: ${what}`).toBe(true);
      const h = await api.request('GET', '/v1/health');
      expect(h.status, `health after: ${what}`).toBe(200);
    }

    // Many at once.
    await Promise.all(Array.from({ length: 100 }, (_, i) => rawExchange(ctl, [post(newPort(`p-many${i}`)).slice(0, 40 + (i % 60))])));
    expect(d.alive()).toBe(true);

    // A client stalls with a half request open: everyone else is still served meanwhile.
    const stalled = rawExchange(ctl, ['POST /v1/ports HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"na'], { waitMs: 3000 });
    for (let i = 0; i < 5; i++) expect((await api.request('GET', '/v1/ports')).status).toBe(200);
    const st = await cli(dir, ['port', 'list']);
    expect(st.code, st.stderr).toBe(0);
    await stalled;

    // Nothing changed: no port from a cut request, state.json as it was, and no fd left for the dead clients.
    expect((await api.request('GET', '/v1/ports')).text).toBe(portsBefore);
    expect(fs.readFileSync(stateFile, 'utf8')).toBe(stateBefore);
    await waitUntil(() => fdCount(pid) <= fdsBefore, 10_000, `daemon fds back to ${fdsBefore} (now ${fdCount(pid)})`, 200);

    // And it still takes changes, and a clean shutdown.
    const later = await api.request('POST', '/v1/ports', JSON.parse(newPort('p-later')) as object);
    expect(later.status, later.text).toBe(201);
    expect((await api.request('DELETE', '/v1/ports/p-later')).status).toBe(204);
    // No error line at all: a client hanging up mid-body is the client's problem, not the daemon's.
    const errors = d.stderr.split('\n').filter((l) => /level=error/.test(l));
    expect(errors).toEqual([]);
    const exit = await d.stop('SIGTERM');
    expect(exit.code).toBe(0);
  });
});
