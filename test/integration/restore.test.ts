// Stored state across restarts of the real daemon on the real data plane: every port type created through the API
// (vhost-user server and client, nic on AF_PACKET and AF_XDP over veth pairs, tap, a trunk) and static FDB entries
// come back; a hand-damaged state.json loses only its bad entries, which are logged and kept in state.json.bad-TIME.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { makeRunDir, onCleanup, uniqueId } from '../../harness/env.js';
import { DaemonProcess, nativeSwitchAvailable } from './support/daemon.js';

const T = { timeout: 120_000 };
const ip = (...args: string[]) => execFileSync('ip', args, { encoding: 'utf8' });

interface PortView {
  name: string;
  type: string;
  mode: string;
  origin: string;
  socket: string;
  iface?: string;
  backend?: string;
  activeBackend?: string;
  trunk: boolean;
  vlan: number;
  mac?: string;
  queues: number;
  mtu: number;
}

const daemons: DaemonProcess[] = [];
afterAll(async () => {
  for (const d of daemons) if (d.alive()) await d.stop('SIGTERM');
}, 30_000);

/** Starts the daemon on the native data plane; fails (does not fall back) when the addon is not built. */
async function startReal(runDir: string): Promise<DaemonProcess> {
  expect(nativeSwitchAvailable(), 'the native addon must be built (npm run build:native): nic and tap ports need it').toBe(true);
  const d = await DaemonProcess.start(runDir);
  daemons.push(d);
  return d;
}

/** A veth pair: `outside` stays on the host for the switch, its peer lives in a namespace of its own. */
function vethPair(tag: string): string {
  const id = uniqueId('sta').slice(0, 11);
  const outside = `${id}${tag}o`;
  const ns = `${id}${tag}`;
  ip('netns', 'add', ns);
  onCleanup(() => void ip('netns', 'del', ns));
  ip('link', 'add', outside, 'type', 'veth', 'peer', 'name', `${id}${tag}i`);
  onCleanup(() => {
    try {
      ip('link', 'del', outside);
    } catch {
      // Gone with the namespace.
    }
  });
  ip('link', 'set', `${id}${tag}i`, 'netns', ns);
  ip('-n', ns, 'link', 'set', `${id}${tag}i`, 'up');
  return outside;
}

const ports = async (d: DaemonProcess) => (await d.api.call<{ ports: PortView[] }>('GET', '/v1/ports')).ports;
const statics = async (d: DaemonProcess) =>
  (await d.api.call<{ entries: Array<{ mac: string; vlan: number; port: string; static: boolean }> }>('GET', '/v1/fdb')).entries
    .filter((e) => e.static)
    .map(({ mac, vlan, port }) => ({ mac, vlan, port }))
    .sort((a, b) => a.mac.localeCompare(b.mac));
const view = (ps: PortView[]) =>
  ps.map(({ name, type, mode, origin, socket, iface, backend, activeBackend, trunk, vlan, mac, queues, mtu }) => ({
    name, type, mode, origin, socket, iface, backend, activeBackend, trunk, vlan, mac, queues, mtu,
  }));
const asideFiles = (runDir: string) => fs.readdirSync(runDir).filter((n) => n.startsWith('state.json.bad-'));

describe('restart with stored state', T, () => {
  it('every port type and static FDB entries come back after SIGTERM and start', async () => {
    const runDir = makeRunDir('restore-all');
    const tapIface = `${uniqueId('sta').slice(0, 11)}t`;
    const specs = [
      { name: 'srv', mode: 'server', socket: 'srv.sock', queues: 2, vlan: 10, mac: '52:54:00:00:51:01' },
      { name: 'cli', mode: 'client', socket: 'cli.sock', mac: '52:54:00:00:51:02' },
      { name: 'np', type: 'nic', iface: vethPair('p'), backend: 'af_packet', vlan: 10 },
      { name: 'nx', type: 'nic', iface: vethPair('x'), backend: 'af_xdp' },
      { name: 'tp', type: 'tap', iface: tapIface, mac: '52:54:00:00:51:03' },
      { name: 'tr', type: 'nic', iface: vethPair('r'), trunk: true },
    ];
    let d = await startReal(runDir);
    for (const s of specs) await d.api.call('POST', '/v1/ports', s);
    for (const [mac, vlan, port] of [['52:54:00:00:52:01', 10, 'srv'], ['52:54:00:00:52:02', 0, 'nx'], ['52:54:00:00:52:03', 20, 'tr'], ['52:54:00:00:52:04', 0, 'tp']] as const) {
      await d.api.call('POST', '/v1/fdb', { mac, vlan, port });
    }
    const before = view(await ports(d)).filter((p) => p.origin === 'api');
    expect(before.map((p) => [p.name, p.activeBackend])).toEqual([
      ['srv', undefined], ['cli', undefined], ['np', 'af_packet'], ['nx', 'af_xdp'], ['tp', 'tap'], ['tr', expect.stringMatching(/^af_/)],
    ]);
    const fdbBefore = await statics(d);
    expect(fdbBefore).toHaveLength(7); // four added, three ports' own MACs
    const state = fs.readFileSync(path.join(runDir, 'state.json'), 'utf8');

    expect((await d.stop('SIGTERM')).code).toBe(0);
    d = await startReal(runDir);
    expect(d.stderr).not.toMatch(/level=(warn|error)/);
    expect(view(await ports(d)).filter((p) => p.origin === 'api')).toEqual(before);
    expect(await statics(d)).toEqual(fdbBefore);
    for (const name of ['srv', 'cli', 'np', 'nx', 'tp', 'tr']) expect(d.stderr).toMatch(new RegExp(`level=info msg="port restored" port=${name}\\b`));
    expect(fs.readFileSync(path.join(runDir, 'state.json'), 'utf8')).toBe(state);
    expect(asideFiles(runDir)).toEqual([]);
  });

  it('a hand-damaged entry is logged and set aside; the good ones come back', async () => {
    const runDir = makeRunDir('restore-bad');
    const tapIface = `${uniqueId('sta').slice(0, 11)}t`;
    const good = [
      { name: 'a', type: 'vhost-user', mode: 'server', socket: path.join(runDir, 'a.sock'), queues: 1, mtu: 1500, vlan: 0, trunk: false, offloads: false, socketMode: 0o660 },
      // As versions before this one stored host ports: with an empty socket. Still accepted.
      { name: 't', type: 'tap', iface: tapIface, socket: '', queues: 1, mtu: 1500, vlan: 0, trunk: false, mode: 'server', offloads: false, socketMode: 0o660 },
    ];
    const badPort = { name: 'b', mode: 'server', mtu: 1 };
    const badFdb = { mac: 'zz:54:00:00:00:01', port: 'a' };
    const orphanFdb = { mac: '52:54:00:00:53:02', vlan: 0, port: 'b' };
    fs.writeFileSync(
      path.join(runDir, 'state.json'),
      JSON.stringify({
        version: 1,
        ports: [good[0], badPort, good[1]],
        fdb: [{ mac: '52:54:00:00:53:01', vlan: 0, port: 'a' }, badFdb, orphanFdb, { mac: '52:54:00:00:53:03', vlan: 0, port: 't' }],
      }),
    );
    const d = await startReal(runDir);
    expect(d.stderr).not.toContain('starting without it');
    expect((await ports(d)).filter((p) => p.origin === 'api').map((p) => p.name)).toEqual(['a', 't']);
    expect(await statics(d)).toEqual([
      { mac: '52:54:00:00:53:01', vlan: 0, port: 'a' },
      { mac: '52:54:00:00:53:03', vlan: 0, port: 't' },
    ]);
    expect(d.stderr).toMatch(/level=error msg="stored entry is invalid and is set aside" entry=ports\[1\] reason="mtu: must be at least 68"/);
    expect(d.stderr).toMatch(/level=error msg="stored entry is invalid and is set aside" entry=fdb\[1\] reason="mac: must be a MAC address/);
    expect(d.stderr).toMatch(/level=warn msg="stored fdb entry of a dropped port is dropped" port=b mac=52:54:00:00:53:02 vlan=0 entry=fdb\[2\]/);
    const aside = asideFiles(runDir);
    expect(aside).toHaveLength(1);
    expect(d.stderr).toContain(`movedTo=${path.join(runDir, aside[0]!)}`);
    const kept = JSON.parse(fs.readFileSync(path.join(runDir, aside[0]!), 'utf8'));
    expect(kept.rejected.map((r: { entry: string; value: unknown }) => [r.entry, r.value])).toEqual([
      ['ports[1]', badPort],
      ['fdb[1]', badFdb],
      ['fdb[2]', orphanFdb],
    ]);
    expect(kept.rejected[0].reason).toBe('mtu: must be at least 68');
    // state.json now holds exactly what runs, and the host port no longer has a socket field.
    const stored = JSON.parse(fs.readFileSync(path.join(runDir, 'state.json'), 'utf8'));
    expect(stored.ports.map((p: { name: string }) => p.name)).toEqual(['a', 't']);
    expect(stored.ports[1]).not.toHaveProperty('socket');
    expect(stored.fdb).toHaveLength(2);
  });

  it('a stored port that cannot be reopened (its interface is gone) is set aside, not lost', async () => {
    const runDir = makeRunDir('restore-gone');
    const missing = `${uniqueId('sta').slice(0, 11)}m`;
    const gone = { name: 'g', type: 'nic', iface: missing, backend: 'af_packet', queues: 1, mtu: 1500, vlan: 0, trunk: false, mode: 'server', offloads: false, socketMode: 0o660 };
    fs.writeFileSync(path.join(runDir, 'state.json'), JSON.stringify({ version: 1, ports: [gone], fdb: [{ mac: '52:54:00:00:54:01', vlan: 0, port: 'g' }] }));
    const d = await startReal(runDir);
    expect(d.stderr).toMatch(/level=error msg="stored port could not be restored and is set aside" port=g entry=ports\[0\] err=/);
    const aside = asideFiles(runDir);
    expect(aside).toHaveLength(1);
    const kept = JSON.parse(fs.readFileSync(path.join(runDir, aside[0]!), 'utf8'));
    expect(kept.rejected.map((r: { entry: string }) => r.entry)).toEqual(['ports[0]', 'fdb[0]']);
    expect(kept.rejected[0].value).toMatchObject(gone);  // as stored, with the defaults of fields added since
    expect(kept.rejected[0].reason).toContain(missing);
  });
});

describe('state directory', T, () => {
  it('a state.json left in the run directory is taken over by a new state directory, and its ports come back', async () => {
    const runDir = makeRunDir('adopt');
    const stateDir = path.join(runDir, 'var-lib');
    let d = await startReal(runDir);
    await d.api.call('POST', '/v1/ports', { name: 'kept', socket: 'kept.sock' });
    await d.stop('SIGTERM');
    expect(fs.existsSync(path.join(runDir, 'state.json'))).toBe(true);
    d = await DaemonProcess.start(runDir, ['--state-dir', stateDir]);
    daemons.push(d);
    const ports = (await d.api.call<{ ports: PortView[] }>('GET', '/v1/ports')).ports;
    expect(ports.map((p) => p.name)).toContain('kept');
    expect(fs.existsSync(path.join(stateDir, 'state.json'))).toBe(true);
    expect(fs.existsSync(path.join(runDir, 'state.json'))).toBe(false);
    expect(d.stderr).toMatch(/msg="state.json taken over from its old place"/);
    await d.stop('SIGTERM');
  });
});

describe('health', T, () => {
  it('is degraded, naming the port, while a nic port\'s interface is gone', async () => {
    const runDir = makeRunDir('health-iface');
    const d = await startReal(runDir);
    const iface = vethPair('h');
    await d.api.call('POST', '/v1/ports', { name: 'up1', type: 'nic', iface, backend: 'af_packet' });
    expect((await d.api.call<{ status: string }>('GET', '/v1/health')).status).toBe('ok');
    ip('link', 'del', iface);
    const h = await d.api.call<{ status: string; reasons: string[] }>('GET', '/v1/health');
    expect(h.status).toBe('degraded');
    expect(h.reasons).toEqual([`port up1: its interface ${iface} is gone (unplugged, renamed or moved to another namespace)`]);
    await d.stop('SIGTERM');
  });
});
