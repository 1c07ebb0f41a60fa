// Two "hosts": two vhost-switch daemons, each in its own network namespace, joined by a veth pair bound as
// a VLAN trunk on both sides. A QEMU guest on each host, both on access VLAN 100, reach each other across
// the trunk; a third guest on VLAN 200 does not reach them.
//
//   guest a (VLAN 100) -- switch 1 [ns h1] --trunk-- veth --trunk-- switch 2 [ns h2] -- guest b (VLAN 100)
//                                                                                   \-- guest c (VLAN 200)
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ApiClient } from '../../src/cli/client.js';
import { BIN, requireBuild } from '../integration/support/daemon.js';
import { makeRunDir, requireTool, trackChild, uniqueSocketPath, waitUntil } from '../../harness/env.js';
import { startGuest, type Guest } from '../support/qemu.js';

const ip = (...a: string[]) => execFileSync('ip', a, { encoding: 'utf8' });

describe('two switches in two namespaces over a VLAN trunk', () => {
  const guests: Guest[] = [];
  const cleanup: (() => void)[] = [];
  afterAll(async () => {
    await Promise.all(guests.map((g) => g.stop()));
    for (const c of cleanup.reverse()) {
      try {
        c();
      } catch {
        /* already gone */
      }
    }
  });

  /** Starts a daemon inside namespace ns; its control socket is a file, reachable from here. */
  async function hostSwitch(ns: string, dir: string, ports: object[]): Promise<ApiClient> {
    requireBuild();
    const config = path.join(dir, 'switch.json');
    fs.writeFileSync(config, JSON.stringify({ switch: { threads: 1 }, ports }));
    const child = spawn('ip', ['netns', 'exec', ns, process.execPath, BIN, 'run', '--run-dir', dir, '--config', config], { stdio: 'ignore' });
    trackChild(child, `vhost-switch in ${ns}`);
    cleanup.push(() => child.kill('SIGTERM'));
    const api = new ApiClient(path.join(dir, 'control.sock'));
    await waitUntil(() => api.request('GET', '/v1/health').then((r) => r.status === 200, () => false), 20_000, `switch in ${ns}`, 100);
    return api;
  }

  it('VLAN 100 crosses the trunk, VLAN 200 stays apart', async () => {
    requireTool('qemu-system-x86_64');
    requireTool('ip');
    const id = process.pid % 100000;
    const h1 = `vs-h1-${id}`;
    const h2 = `vs-h2-${id}`;
    for (const ns of [h1, h2]) {
      ip('netns', 'add', ns);
      cleanup.push(() => ip('netns', 'del', ns));
    }
    ip('link', 'add', 'trunk1', 'netns', h1, 'type', 'veth', 'peer', 'name', 'trunk2', 'netns', h2);

    const dir1 = makeRunDir('h1');
    const dir2 = makeRunDir('h2');
    const sa = uniqueSocketPath(dir1, 'a');
    const sb = uniqueSocketPath(dir2, 'b');
    const sc = uniqueSocketPath(dir2, 'c');
    await hostSwitch(h1, dir1, [
      { name: 'uplink', type: 'nic', iface: 'trunk1', trunk: true },
      { name: 'vm-a', mode: 'server', socket: sa, vlan: 100 },
    ]);
    const api2 = await hostSwitch(h2, dir2, [
      { name: 'uplink', type: 'nic', iface: 'trunk2', trunk: true },
      { name: 'vm-b', mode: 'server', socket: sb, vlan: 100 },
      { name: 'vm-c', mode: 'server', socket: sc, vlan: 200 },
    ]);

    const net = (socket: string, mac: string) => [{ socket, mode: 'client' as const, mac, reconnect: 1 }];
    const a = await startGuest({ name: 'h1-a', netdevs: net(sa, '52:54:00:00:70:0a'), ip: '169.254.70.1/16' });
    const b = await startGuest({ name: 'h2-b', netdevs: net(sb, '52:54:00:00:70:0b'), ip: '169.254.70.2/16' });
    const c = await startGuest({ name: 'h2-c', netdevs: net(sc, '52:54:00:00:70:0c'), ip: '169.254.70.3/16' });
    guests.push(a, b, c);
    await Promise.all([a.waitReady(), b.waitReady(), c.waitReady()]);
    await Promise.all([a.waitLink('eth0'), b.waitLink('eth0'), c.waitLink('eth0')]);

    const ab = await a.run('ping -c 3 -W 5 169.254.70.2', 60_000);
    expect(ab.output).toMatch(/3 packets transmitted, 3 packets received/);
    const ac = await a.run('ping -c 2 -W 2 169.254.70.3', 60_000);
    expect(ac.exitCode).not.toBe(0);
    const uplink = (await api2.call<{ rxPackets: number; txPackets: number }>('GET', '/v1/ports/uplink/stats'));
    expect(Number(uplink.rxPackets)).toBeGreaterThanOrEqual(3);
    expect(Number(uplink.txPackets)).toBeGreaterThanOrEqual(3);
  });
});
