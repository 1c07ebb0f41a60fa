// Changing a running port (PATCH /v1/ports/NAME, `vhost-switch port set`) on the real daemon and data plane, with
// our own vhost-user frontends on the ports: VLANs and port security change live (the frontend stays connected and
// traffic follows the new VLAN at once); negotiated fields are refused unless the port may come up again.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VirtioUserPort } from '../../src/gen/virtio-user.js';
import { makeRunDir } from '../../harness/env.js';
import { cli, DaemonProcess, nativeSwitchAvailable } from './support/daemon.js';

const T = { timeout: 60_000 };
let runDir: string;
let d: DaemonProcess;
const fronts: VirtioUserPort[] = [];
const run = (...args: string[]) => cli(runDir, args);
const mac = (m: string) => Buffer.from(m.split(':').map((h) => parseInt(h, 16)));

function frame(src: string, dst = 'ff:ff:ff:ff:ff:ff', tag = 0x11): Buffer {
  const f = Buffer.alloc(64, tag);
  mac(dst).copy(f, 0);
  mac(src).copy(f, 6);
  f.writeUInt16BE(0x88b5, 12);
  return f;
}

beforeAll(async () => {
  expect(nativeSwitchAvailable(), 'the native addon must be built').toBe(true);
  runDir = makeRunDir('port-set');
  fs.writeFileSync(path.join(runDir, 'cfg.json'), JSON.stringify({ ports: [{ name: 'cfg1', socket: 'cfg1.sock' }] }));
  d = await DaemonProcess.start(runDir, ['--config', path.join(runDir, 'cfg.json')]);
}, 30_000);
afterAll(async () => {
  fronts.forEach((f) => f.close());
  if (d?.alive()) await d.stop('SIGTERM');
}, 30_000);

describe('port set', T, () => {
  it('a VLAN change applies live: the frontend stays connected and its frames reach the new VLAN at once', async () => {
    expect((await run('port', 'add', 'a', '--vlan', '10', '--mac', '02:00:00:00:00:0a')).code).toBe(0);
    expect((await run('port', 'add', 'b', '--vlan', '20', '--mac', '02:00:00:00:00:0b')).code).toBe(0);
    const a = await VirtioUserPort.connect(path.join(runDir, 'a.sock'));
    const b = await VirtioUserPort.connect(path.join(runDir, 'b.sock'));
    fronts.push(a, b);
    a.send([frame('02:00:00:00:00:0a')]);
    expect(await b.recvSome(1, 500)).toHaveLength(0); // VLAN 10 does not reach VLAN 20
    const stateLines = () => (d.stderr.match(/msg="port state" port=a /g) ?? []).length;
    const before = stateLines();

    const r = await run('port', 'set', 'a', '--vlan', '20');
    expect(r, r.stderr).toMatchObject({ code: 0, stdout: 'port a: vlan changed live (the guest kept its link)\n' });
    a.send([frame('02:00:00:00:00:0a', 'ff:ff:ff:ff:ff:ff', 0x22)]);
    const got = await b.recvSome(1, 2000);
    expect(got.map((f) => f[20])).toEqual([0x22]);
    expect(stateLines()).toBe(before); // no reconnection
    expect(JSON.parse((await run('port', 'show', 'a', '--json')).stdout)).toMatchObject({ vlan: 20, state: 'ready' });
    // Stored: a restarted daemon brings it back on VLAN 20.
    const stored = JSON.parse(fs.readFileSync(path.join(runDir, 'state.json'), 'utf8')) as { ports: Array<{ name: string; vlan: number }> };
    expect(stored.ports.find((p) => p.name === 'a')?.vlan).toBe(20);
    // The port's own MAC entry moved to the new VLAN.
    const fdb = JSON.parse((await run('fdb', 'list', '--json')).stdout) as Array<{ mac: string; vlan: number; static: boolean }>;
    expect(fdb.filter((e) => e.mac === '02:00:00:00:00:0a' && e.static).map((e) => e.vlan)).toEqual([20]);
  });

  it('port security turns on live and drops a spoofing frame at once', async () => {
    const [a, b] = fronts as [VirtioUserPort, VirtioUserPort];
    expect((await run('port', 'set', 'a', '--port-security')).stdout).toMatch(/portSecurity changed live/);
    a.send([frame('02:00:00:00:00:99', 'ff:ff:ff:ff:ff:ff', 0x33)]); // not a's MAC
    a.send([frame('02:00:00:00:00:0a', 'ff:ff:ff:ff:ff:ff', 0x44)]);
    expect((await b.recvSome(2, 1500)).map((f) => f[20])).toEqual([0x44]);
    const stats = JSON.parse((await run('port', 'show', 'a', '--json')).stdout) as { stats: { drops: Record<string, number> } };
    expect(Number(stats.stats.drops.spoofed)).toBeGreaterThanOrEqual(1);
    expect((await run('port', 'set', 'a', '--no-port-security')).code).toBe(0);
  });

  it('negotiated fields need --restart; config ports, stranded static entries and bad values are refused', async () => {
    const off = await run('port', 'set', 'a', '--offloads');
    expect(off.code).toBe(1);
    expect(off.stderr).toMatch(/offloads cannot change while the port runs .*pass restart.*\(HTTP 409\)/);
    const cfg = await run('port', 'set', 'cfg1', '--vlan', '5');
    expect(cfg.stderr).toMatch(/declared in the config file.*\(HTTP 409\)/);
    expect((await run('fdb', 'add', '02:00:00:00:00:77', '--port', 'a', '--vlan', '20')).code).toBe(0);
    const strand = await run('port', 'set', 'a', '--vlan', '30');
    expect(strand.stderr).toMatch(/static entry 02:00:00:00:00:77 vlan 20 would be stranded.*\(HTTP 409\)/);
    expect((await run('fdb', 'del', '02:00:00:00:00:77', '--vlan', '20')).code).toBe(0);
    expect((await run('port', 'set', 'a', '--vlan', '5000')).stderr).toMatch(/vlan: must be at most 4094/);
    expect((await run('port', 'set', 'a')).code).toBe(2);
    expect((await run('port', 'set', 'nope', '--vlan', '1')).stderr).toMatch(/no port named "nope"/);

    const re = await run('port', 'set', 'a', '--offloads', '--mtu', '2000', '--restart');
    expect(re, re.stderr).toMatchObject({ code: 0 });
    expect(re.stdout).toMatch(/^port a: mtu, offloads changed; the port came up again/);
    expect(JSON.parse((await run('port', 'show', 'a', '--json')).stdout)).toMatchObject({ vlan: 20, mtu: 2000, offloads: true });
  });
});
