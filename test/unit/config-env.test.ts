// The daemon's environment: where the run directory and control socket are, how a leftover socket is claimed, and
// what a log line looks like.
import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createLogger, formatLine, levelFromEnv, parseLevel } from '../../src/log.js';
import { claimSocketPath, defaultStateDir, resolveConfigFile, resolveControlSocket, resolveRunDir, socketIsAlive } from '../../src/host/runDir.js';

describe('run directory', () => {
  it('flag, then VHOST_SWITCH_RUN_DIR, then /run for root, XDG_RUNTIME_DIR, ./run', () => {
    const env = { VHOST_SWITCH_RUN_DIR: '/env/rd', XDG_RUNTIME_DIR: '/run/user/1000' };
    expect(resolveRunDir({ flag: '/flag', env, uid: 1000 })).toBe('/flag');
    expect(resolveRunDir({ env, uid: 1000 })).toBe('/env/rd');
    expect(resolveRunDir({ env: {}, uid: 0 })).toBe('/run/vhost-switch');
    expect(resolveRunDir({ env: { XDG_RUNTIME_DIR: '/run/user/1000' }, uid: 1000 })).toBe('/run/user/1000/vhost-switch');
    expect(resolveRunDir({ env: {}, uid: 1000, cwd: '/home/u' })).toBe('/home/u/run');
    expect(resolveRunDir({ flag: 'rel', env: {}, cwd: '/x' })).toBe('/x/rel');
  });

  it('state: /var/lib/vhost-switch beside the system run directory, else the run directory itself', () => {
    expect(defaultStateDir('/run/vhost-switch')).toBe('/var/lib/vhost-switch');
    expect(defaultStateDir('/run/vhost-switch/')).toBe('/var/lib/vhost-switch');
    expect(defaultStateDir('/tmp/rd')).toBe('/tmp/rd');
  });

  it('config file: --config, VHOST_SWITCH_CONFIG, /etc/vhost-switch/config.json when it exists, else none', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vs-cfg-'));
    const system = path.join(dir, 'config.json');
    expect(await resolveConfigFile('/f.json', { VHOST_SWITCH_CONFIG: '/e.json' }, system)).toBe('/f.json');
    expect(await resolveConfigFile(undefined, { VHOST_SWITCH_CONFIG: '/e.json' }, system)).toBe('/e.json');
    expect(await resolveConfigFile(undefined, {}, system)).toBeUndefined();
    fs.writeFileSync(system, '{}');
    expect(await resolveConfigFile(undefined, {}, system)).toBe(system);
    fs.rmSync(dir, { recursive: true });
  });

  it('control socket: --control, VHOST_SWITCH_CONTROL, RUN_DIR/control.sock', () => {
    expect(resolveControlSocket('/c.sock', { env: { VHOST_SWITCH_CONTROL: '/e.sock' } })).toBe('/c.sock');
    expect(resolveControlSocket(undefined, { env: { VHOST_SWITCH_CONTROL: '/e.sock' } })).toBe('/e.sock');
    expect(resolveControlSocket(undefined, { flag: '/rd', env: {} })).toBe('/rd/control.sock');
  });

  it('claiming a socket path: absent is fine, a dead socket is removed, a live one or a file is refused', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vs-claim-'));
    const p = path.join(dir, 'control.sock');
    await claimSocketPath(p, socketIsAlive);
    const server = net.createServer().listen(p);
    await new Promise((r) => server.once('listening', r));
    await expect(claimSocketPath(p, socketIsAlive)).rejects.toThrow(`another vhost-switch is already listening on ${p}`);
    // A socket nobody listens on any more: close the listener but keep the file, as a SIGKILLed daemon would.
    const dead = path.join(dir, 'dead.sock');
    fs.renameSync(p, dead);
    await new Promise((r) => server.close(r));
    await claimSocketPath(dead, socketIsAlive);
    expect(fs.existsSync(dead)).toBe(false);
    const file = path.join(dir, 'file');
    fs.writeFileSync(file, 'x');
    await expect(claimSocketPath(file, socketIsAlive)).rejects.toThrow('exists and is not a socket');
  });
});

describe('logs', () => {
  const t = new Date('2026-01-02T03:04:05.678Z');

  it('logfmt: quoted only when needed, bigints as digits, errors as messages', () => {
    expect(formatLine('logfmt', t, 'info', 'port added', { port: 'vhu0', id: 3, big: 2n ** 64n, ok: true })).toBe(
      'time=2026-01-02T03:04:05.678Z level=info msg="port added" port=vhu0 id=3 big=18446744073709551616 ok=true',
    );
    expect(formatLine('logfmt', t, 'error', 'x', { err: new Error('bad "thing"\nhere'), empty: '', skip: undefined })).toBe(
      'time=2026-01-02T03:04:05.678Z level=error msg=x err="bad \\"thing\\"\\nhere" empty=""',
    );
  });

  it('json lines', () => {
    expect(JSON.parse(formatLine('json', t, 'warn', 'm', { port: 'p', n: 5n }))).toEqual({ time: t.toISOString(), level: 'warn', msg: 'm', port: 'p', n: 5 });
  });

  it('levels filter, child loggers add the port to every line', () => {
    const lines: string[] = [];
    const log = createLogger({ level: 'info', write: (l) => lines.push(l), now: () => t });
    log.debug('hidden');
    log.child({ port: 'vm1' }).warn('state', { state: 'ready' });
    expect(lines).toEqual(['time=2026-01-02T03:04:05.678Z level=warn msg=state port=vm1 state=ready']);
  });

  it('level from the flag, else VHOST_SWITCH_LOG', () => {
    expect(levelFromEnv(undefined, { VHOST_SWITCH_LOG: 'debug' })).toBe('debug');
    expect(levelFromEnv('error', { VHOST_SWITCH_LOG: 'debug' })).toBe('error');
    expect(levelFromEnv(undefined, {})).toBe('info');
    expect(() => parseLevel('loud')).toThrow('invalid log level "loud": expected one of debug, info, warn, error');
  });
});
