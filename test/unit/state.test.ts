// state.json: atomic replacement, round trips, a corrupt file set aside (not fatal), saves serialised.
import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseWith, portSpecSchema } from '../../src/config.js';
import { createLogger } from '../../src/log.js';
import { emptyState, StateStore, writeFileAtomic, type PersistedState } from '../../src/state.js';

function tmp(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'vs-state-'));
}

function capture() {
  const lines: string[] = [];
  return { lines, log: createLogger({ level: 'debug', write: (l) => lines.push(l) }) };
}

const sample: PersistedState = {
  version: 1,
  ports: [{ ...parseWith(portSpecSchema, { name: 'vm1', mode: 'client', queues: 2, mac: '52:54:00:00:00:01' }), socket: '/run/x/vm1.sock' }],
  fdb: [{ mac: '52:54:00:00:00:02', vlan: 3, port: 'vm1' }],
};

describe('writeFileAtomic', () => {
  it('replaces the file whole, with the given mode, and leaves no temp file', async () => {
    const dir = tmp();
    const f = path.join(dir, 'state.json');
    fs.writeFileSync(f, 'old');
    await writeFileAtomic(f, 'new content', 0o600);
    expect(fs.readFileSync(f, 'utf8')).toBe('new content');
    expect(fs.statSync(f).mode & 0o777).toBe(0o600);
    expect(fs.readdirSync(dir)).toEqual(['state.json']);
  });

  it('fails without touching the old file when the directory is gone', async () => {
    const dir = tmp();
    await expect(writeFileAtomic(path.join(dir, 'nope', 'state.json'), 'x')).rejects.toThrow(/ENOENT/);
  });
});

describe('StateStore', () => {
  it('loads nothing when there is no file', async () => {
    const { log } = capture();
    expect(await new StateStore(path.join(tmp(), 'state.json'), log).load()).toEqual(emptyState());
  });

  it('round-trips ports and FDB entries', async () => {
    const { log } = capture();
    const store = new StateStore(path.join(tmp(), 'state.json'), log);
    await store.save(sample);
    expect(await store.load()).toEqual(sample);
  });

  it.each([
    ['not JSON', '{"version":1,', 'not valid JSON'],
    ['wrong version', '{"version":2,"ports":[],"fdb":[]}', 'version'],
    ['a bad port', '{"version":1,"ports":[{"name":"a","mtu":1}],"fdb":[]}', 'ports[0].mtu: must be at least 68'],
  ])('sets aside a file with %s and starts empty', async (_what, text, reason) => {
    const dir = tmp();
    const f = path.join(dir, 'state.json');
    fs.writeFileSync(f, text);
    const { lines, log } = capture();
    expect(await new StateStore(f, log).load()).toEqual(emptyState());
    const aside = fs.readdirSync(dir).filter((n) => n.startsWith('state.json.bad-'));
    expect(aside).toHaveLength(1);
    expect(fs.readFileSync(path.join(dir, aside[0]!), 'utf8')).toBe(text);
    expect(fs.existsSync(f)).toBe(false);
    expect(lines.join('\n')).toMatch(/level=error msg="stored state is invalid; starting without it"/);
    expect(lines.join('\n')).toContain(reason);
  });

  it('serialises concurrent saves: the last one wins', async () => {
    const { log } = capture();
    const f = path.join(tmp(), 'state.json');
    const store = new StateStore(f, log);
    const saves = Array.from({ length: 20 }, (_, i) => store.save({ ...sample, fdb: [{ mac: '52:54:00:00:00:02', vlan: i, port: 'vm1' }] }));
    await Promise.all(saves);
    expect((await store.load()).fdb[0]!.vlan).toBe(19);
  });

  it('a failed save does not block the next one', async () => {
    const { log } = capture();
    const dir = tmp();
    const store = new StateStore(path.join(dir, 'sub', 'state.json'), log);
    await expect(store.save(sample)).rejects.toThrow();
    fs.mkdirSync(path.join(dir, 'sub'));
    await store.save(sample);
    expect(await store.load()).toEqual(sample);
  });
});
