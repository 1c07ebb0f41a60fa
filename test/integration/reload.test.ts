// Signals to the real daemon on the real data plane. SIGHUP reloads the config file: removed, changed and new ports
// and static entries are applied while frames keep flowing between two unchanged ports (our own virtio-user
// frontends, connected across the reload); a file that does not validate is refused and the running state kept;
// without --config there is nothing to reload. SIGTERM and SIGINT stop cleanly and leave no socket behind.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ethFrame, VirtioUserPort } from '../../src/gen/virtio-user.js';
import { makeRunDir, waitUntil } from '../../harness/env.js';
import { DaemonProcess, nativeSwitchAvailable } from './support/daemon.js';

const T = { timeout: 120_000 };
const MAC_A = '52:54:00:00:61:01';
const MAC_B = '52:54:00:00:61:02';

interface PortView {
  name: string;
  id: number;
  origin: string;
  vlan: number;
  mtu: number;
  state: string;
  socket: string;
}

const daemons: DaemonProcess[] = [];
const fronts: VirtioUserPort[] = [];
afterAll(async () => {
  for (const f of fronts) f.close();
  for (const d of daemons) if (d.alive()) await d.stop('SIGTERM');
}, 30_000);

async function startReal(runDir: string, args: string[] = []): Promise<DaemonProcess> {
  expect(nativeSwitchAvailable(), 'the native addon must be built (npm run build:native)').toBe(true);
  const d = await DaemonProcess.start(runDir, args);
  daemons.push(d);
  return d;
}

const ports = async (d: DaemonProcess) => (await d.api.call<{ ports: PortView[] }>('GET', '/v1/ports')).ports;
const byName = async (d: DaemonProcess) => Object.fromEntries((await ports(d)).map((p) => [p.name, p]));
const statics = async (d: DaemonProcess) =>
  (await d.api.call<{ entries: Array<{ mac: string; vlan: number; port: string; static: boolean }> }>('GET', '/v1/fdb')).entries
    .filter((e) => e.static)
    .map((e) => `${e.mac}/${e.vlan}/${e.port}`)
    .sort();

/** Sends HUP and waits for the log line that ends the reload (`config reloaded` or the refusal). */
async function hup(d: DaemonProcess, until: RegExp): Promise<void> {
  const from = d.stderr.length;
  d.child.kill('SIGHUP');
  await waitUntil(() => until.test(d.stderr.slice(from)), 20_000, `${until} after SIGHUP`, 20);
  expect(d.alive()).toBe(true);
}

/** A, B: frames with a sequence number from `a` to `b`, one every few ms, until stopped; returns what b got. */
function stream(a: VirtioUserPort, b: VirtioUserPort) {
  let seq = 0;
  const got = new Set<number>();
  const tick = setInterval(() => {
    const payload = Buffer.alloc(4);
    payload.writeUInt32BE(seq);
    if (a.send([ethFrame(MAC_B, MAC_A, 64, payload)]) === 1) seq++;
    for (const f of b.recv(32)) if (f.readUInt16BE(12) === 0x88b5) got.add(f.readUInt32BE(14));
  }, 3);
  return {
    sent: () => seq,
    got,
    async stop(): Promise<void> {
      clearInterval(tick);
      await waitUntil(() => {
        for (const f of b.recv(32)) if (f.readUInt16BE(12) === 0x88b5) got.add(f.readUInt32BE(14));
        return got.size >= seq;
      }, 5000, 'the last frames', 5).catch(() => {});
    },
  };
}

describe('SIGHUP reloads the config file', T, () => {
  it('applies removed, changed and new ports and entries; unchanged ports keep their guests and their traffic', async () => {
    const runDir = makeRunDir('reload');
    const config = path.join(runDir, 'switch.json');
    const write = (c: object) => fs.writeFileSync(config, JSON.stringify(c));
    const keepA = { name: 'keepA', socket: 'a.sock', mac: MAC_A };
    const keepB = { name: 'keepB', socket: 'b.sock', mac: MAC_B };
    write({
      ports: [keepA, keepB, { name: 'chg', socket: 'chg.sock' }, { name: 'gone', socket: 'gone.sock' }],
      fdb: [
        { mac: '52:54:00:00:62:01', port: 'keepA' },
        { mac: '52:54:00:00:62:02', port: 'gone' },
        { mac: '52:54:00:00:62:03', port: 'chg' },
      ],
    });
    const d = await startReal(runDir, ['--config', config]);
    await d.api.call('POST', '/v1/ports', { name: 'api1', socket: 'api1.sock' });
    await d.api.call('POST', '/v1/ports', { name: 'taken', socket: 'taken-api.sock' });
    await d.api.call('POST', '/v1/fdb', { mac: '52:54:00:00:63:01', port: 'chg' }); // an API entry on a config port
    await d.api.call('POST', '/v1/fdb', { mac: '52:54:00:00:63:02', port: 'taken' });
    const before = await byName(d);

    const a = await VirtioUserPort.connect(path.join(runDir, 'a.sock'));
    const b = await VirtioUserPort.connect(path.join(runDir, 'b.sock'));
    fronts.push(a, b);
    await waitUntil(async () => (await byName(d)).keepB!.state === 'ready', 10_000, 'keepB ready');
    const s = stream(a, b);
    await waitUntil(() => s.got.size > 20, 10_000, 'frames from keepA to keepB before the reload', 10);

    write({
      ports: [
        { socket: 'a.sock', mac: MAC_A, name: 'keepA' }, // the same spec, fields in another order
        keepB,
        { name: 'chg', socket: 'chg.sock', mtu: 9000 },
        { name: 'new', socket: 'new.sock' },
        { name: 'taken', socket: 'taken-cfg.sock' },
      ],
      fdb: [
        { mac: '52:54:00:00:62:03', port: 'chg' },
        { mac: '52:54:00:00:62:04', port: 'keepB' },
      ],
    });
    await hup(d, /msg="config reloaded"/);
    const sentAtReload = s.sent();
    await waitUntil(() => s.got.size > sentAtReload + 20, 10_000, 'frames from keepA to keepB after the reload', 10);
    await s.stop();
    // Every frame arrived, through the reload: the unchanged ports were never taken down.
    expect(s.got.size).toBe(s.sent());

    expect(d.stderr).toMatch(/level=info msg="config reloaded" config=\S+ added=new,taken removed=gone changed=chg unchanged=2 fdbAdded=2 fdbRemoved=1 failed=0/);
    expect(d.stderr).toMatch(/msg="config port changed: bringing it up again" port=chg fields=mtu/);
    expect(d.stderr).toMatch(/level=warn msg="API port has the name of a new config port: the config wins, the API port is dropped" port=taken/);
    const after = await byName(d);
    expect(Object.keys(after)).toEqual(['keepA', 'keepB', 'api1', 'chg', 'new', 'taken']);
    for (const name of ['keepA', 'keepB', 'api1']) expect(after[name]!.id).toBe(before[name]!.id);
    expect(after.keepB!.state).toBe('ready');
    expect(after.chg!.id).not.toBe(before.chg!.id);
    expect(after.chg!.mtu).toBe(9000);
    expect(after.taken).toMatchObject({ origin: 'config', socket: path.join(runDir, 'taken-cfg.sock') });
    expect(fs.existsSync(path.join(runDir, 'gone.sock'))).toBe(false);
    expect(fs.existsSync(path.join(runDir, 'taken-api.sock'))).toBe(false);
    expect(fs.lstatSync(path.join(runDir, 'new.sock')).isSocket()).toBe(true);
    // 62:01 left the file, 62:02 went with its port, 62:04 is new; 62:03 (config) and 63:01 (API) came back with chg.
    expect(await statics(d)).toEqual([
      `${MAC_A}/0/keepA`,
      `${MAC_B}/0/keepB`,
      '52:54:00:00:62:03/0/chg',
      '52:54:00:00:62:04/0/keepB',
      '52:54:00:00:63:01/0/chg',
    ]);
    // The API port the config took is gone from state.json and kept in the set-aside file with its entry.
    const stored = JSON.parse(fs.readFileSync(path.join(runDir, 'state.json'), 'utf8'));
    expect(stored.ports.map((p: { name: string }) => p.name)).toEqual(['api1']);
    expect(stored.fdb).toEqual([{ mac: '52:54:00:00:63:01', vlan: 0, port: 'chg' }]);
    const aside = fs.readdirSync(runDir).filter((n) => n.startsWith('state.json.bad-'));
    expect(aside).toHaveLength(1);
    const kept = JSON.parse(fs.readFileSync(path.join(runDir, aside[0]!), 'utf8'));
    expect(kept.rejected.map((r: { value: { name?: string; mac?: string } }) => r.value.name ?? r.value.mac)).toEqual(['taken', '52:54:00:00:63:02']);

    // A second reload of the same file changes nothing.
    await hup(d, /msg="config reloaded"/);
    expect(d.stderr).toMatch(/msg="config reloaded" config=\S+ unchanged=5 fdbAdded=0 fdbRemoved=0 failed=0\n/);
    const again = await byName(d);
    for (const name of Object.keys(after)) expect(again[name]!.id).toBe(after[name]!.id);
  });

  it('a file that does not validate is refused with a log line; the running state is kept', async () => {
    const runDir = makeRunDir('reload-bad');
    const config = path.join(runDir, 'switch.json');
    fs.writeFileSync(config, JSON.stringify({ ports: [{ name: 'p0' }, { name: 'p1' }], fdb: [{ mac: '52:54:00:00:64:01', port: 'p1' }] }));
    const d = await startReal(runDir, ['--config', config]);
    const before = JSON.stringify([await ports(d), await statics(d)]);
    for (const [text, reason] of [
      [JSON.stringify({ ports: [{ name: 'p0' }, { name: 'p2', mtu: 'big' }] }), 'ports[1].mtu: must be a number (bytes)'],
      ['{"ports": [', 'not valid JSON'],
      [JSON.stringify({ ports: [{ name: 'p0' }, { name: 'p0' }] }), 'ports[1].name: duplicate port name'],
    ] as const) {
      fs.writeFileSync(config, text);
      await hup(d, /msg="config reload refused; the running config is kept"/);
      expect(d.stderr.split('\n').filter((l) => l.includes('reload refused')).pop()).toContain(reason);
      expect(JSON.stringify([await ports(d), await statics(d)])).toBe(before);
    }
    fs.rmSync(config);
    await hup(d, /msg="config reload refused; the running config is kept" config=\S+ reason="config \S+: ENOENT/);
    expect(JSON.stringify([await ports(d), await statics(d)])).toBe(before);
  });

  it('without --config: logs that there is nothing to reload, changes nothing', async () => {
    const runDir = makeRunDir('reload-none');
    const d = await startReal(runDir);
    const before = JSON.stringify(await ports(d));
    await hup(d, /level=warn msg="no config file to reload: the daemon runs the embedded default config/);
    expect(JSON.stringify(await ports(d))).toBe(before);
  });
});

describe('SIGTERM and SIGINT', T, () => {
  it.each(['SIGTERM', 'SIGINT'] as const)('%s: exit 0, every port socket and the control socket removed', async (signal) => {
    const runDir = makeRunDir(`stop-${signal}`);
    const config = path.join(runDir, 'switch.json');
    fs.writeFileSync(config, JSON.stringify({ ports: [{ name: 'c0', socket: 'c0.sock' }] }));
    const d = await startReal(runDir, ['--config', config]);
    await d.api.call('POST', '/v1/ports', { name: 'a0', socket: 'a0.sock' });
    const front = await VirtioUserPort.connect(path.join(runDir, 'c0.sock'));
    fronts.push(front);
    const sockets = ['control.sock', 'c0.sock', 'a0.sock'].map((n) => path.join(runDir, n));
    for (const s of sockets) expect(fs.lstatSync(s).isSocket()).toBe(true);
    const exit = await d.stop(signal);
    expect(exit).toEqual({ code: 0, signal: null });
    for (const s of sockets) expect(fs.existsSync(s)).toBe(false);
    expect(d.stderr).toMatch(new RegExp(`msg="signal received" signal=${signal}[\\s\\S]*msg=stopped`));
  });
});
