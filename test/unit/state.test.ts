// state.json: atomic replacement, round trips, entries validated one by one (a bad one is set aside, the others
// load), a corrupt file set aside whole (not fatal), saves serialised.
import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseWith, portSpecSchema } from '../../src/config.js';
import { createLogger } from '../../src/log.js';
import { StateStore, writeFileAtomic, type LoadedState, type PersistedState } from '../../src/switch/state.js';

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

/** The loaded entries in state.json's own shape. */
const asState = (l: LoadedState): PersistedState => ({ version: 1, ports: l.ports.map((p) => p.spec), fdb: l.fdb.map((e) => e.spec) });

describe('StateStore', () => {
  it('loads nothing when there is no file', async () => {
    const { log } = capture();
    expect(await new StateStore(path.join(tmp(), 'state.json'), log).load()).toEqual({ ports: [], fdb: [], invalid: [] });
  });

  it('round-trips ports and FDB entries', async () => {
    const { log } = capture();
    const store = new StateStore(path.join(tmp(), 'state.json'), log);
    await store.save(sample);
    const loaded = await store.load();
    expect(asState(loaded)).toEqual(sample);
    expect(loaded.ports.map((p) => p.entry)).toEqual(['ports[0]']);
    expect(loaded.invalid).toEqual([]);
  });

  it('a bad entry is returned as invalid and logged; the others load', async () => {
    const dir = tmp();
    const f = path.join(dir, 'state.json');
    const bad = { name: 'a', mtu: 1 };
    fs.writeFileSync(f, JSON.stringify({ ...sample, ports: [bad, ...sample.ports], fdb: [...sample.fdb, { mac: 'x', port: 'vm1' }] }));
    const { lines, log } = capture();
    const loaded = await new StateStore(f, log).load();
    expect(asState(loaded)).toEqual(sample);
    expect(loaded.ports[0]!.entry).toBe('ports[1]');
    expect(loaded.invalid).toEqual([
      { entry: 'ports[0]', reason: 'mtu: must be at least 68', value: bad },
      { entry: 'fdb[1]', reason: expect.stringContaining('mac: must be a MAC address'), value: { mac: 'x', port: 'vm1' } },
    ]);
    expect(lines.join('\n')).toMatch(/level=error msg="stored entry is invalid and is set aside" entry=ports\[0\] reason="mtu: must be at least 68"/);
    expect(fs.readFileSync(f, 'utf8')).toContain('"mtu":1'); // left as it is: the caller rewrites it once the rest is restored
  });

  it('a host port stored with an empty socket (as earlier versions did) loads without it', async () => {
    const f = path.join(tmp(), 'state.json');
    fs.writeFileSync(f, JSON.stringify({ version: 1, ports: [{ name: 't', type: 'tap', iface: 'vstap0', socket: '' }], fdb: [] }));
    const loaded = await new StateStore(f, capture().log).load();
    expect(loaded.invalid).toEqual([]);
    expect(loaded.ports[0]!.spec).toMatchObject({ name: 't', type: 'tap', iface: 'vstap0' });
    expect(loaded.ports[0]!.spec).not.toHaveProperty('socket');
  });

  it('setAside writes the rejected entries to state.json.bad-TIME, 0600, a new name each time', async () => {
    const dir = tmp();
    const store = new StateStore(path.join(dir, 'state.json'), capture().log);
    const rejected = [{ entry: 'ports[0]', reason: 'mtu: must be at least 68', value: { name: 'a', mtu: 1 } }];
    const a = await store.setAside(rejected);
    const b = await store.setAside(rejected);
    expect(a).not.toBe(b);
    for (const p of [a, b]) {
      expect(path.basename(p)).toMatch(/^state\.json\.bad-\d{4}-\d\d-\d\dT\d{9}Z(-\d+)?$/);
      expect(fs.statSync(p).mode & 0o777).toBe(0o600);
      expect(JSON.parse(fs.readFileSync(p, 'utf8'))).toMatchObject({ from: path.join(dir, 'state.json'), rejected });
    }
  });

  it.each([
    ['not JSON', '{"version":1,', 'not valid JSON'],
    ['wrong version', '{"version":2,"ports":[],"fdb":[]}', 'version'],
    ['ports that are not a list', '{"version":1,"ports":{},"fdb":[]}', 'ports: '],
  ])('sets aside a file with %s whole and starts empty', async (_what, text, reason) => {
    const dir = tmp();
    const f = path.join(dir, 'state.json');
    fs.writeFileSync(f, text);
    const { lines, log } = capture();
    expect(await new StateStore(f, log).load()).toEqual({ ports: [], fdb: [], invalid: [] });
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
    expect((await store.load()).fdb[0]!.spec.vlan).toBe(19);
  });

  it('a failed save does not block the next one', async () => {
    const { log } = capture();
    const dir = tmp();
    const store = new StateStore(path.join(dir, 'sub', 'state.json'), log);
    await expect(store.save(sample)).rejects.toThrow();
    fs.mkdirSync(path.join(dir, 'sub'));
    await store.save(sample);
    expect(asState(await store.load())).toEqual(sample);
  });
});
