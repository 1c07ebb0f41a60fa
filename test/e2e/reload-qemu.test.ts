// SIGHUP with real guests: two QEMU guests ping each other through two ports the config keeps as they are, while
// the reload removes one port, changes another and adds a third. The unchanged ports are not touched: their
// vhost-user connections stay up (no state change logged for them) and not one echo is lost.
//
//   guest a (169.254.23.1) --vhu-a-- vhost-switch --vhu-b-- guest b (169.254.23.2)     + vhu-c (removed), vhu-d (new)
import fs from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import type { DaemonProcess } from '../integration/support/daemon.js';
import { makeRunDir, requireTool, uniqueSocketPath, waitUntil } from '../../harness/env.js';
import { startGuest, type Guest } from '../support/qemu.js';
import { bootAndLink, parsePing, pingUntilOk } from './lib-e2e.js';
import { startSwitch, waitPortState, writeConfig, type E2ePort } from './switch-daemon.js';

describe('SIGHUP reload under guest traffic', () => {
  const guests: Guest[] = [];
  let d: DaemonProcess | undefined;
  afterAll(async () => {
    await Promise.all(guests.map((g) => g.stop()));
    await d?.stop();
  });

  it('unchanged ports keep their guests linked and lose no echo while other ports are removed, changed and added', async () => {
    requireTool('qemu-system-x86_64');
    const dir = makeRunDir('reload-qemu');
    const sockA = uniqueSocketPath(dir, 'a');
    const sockB = uniqueSocketPath(dir, 'b');
    const sockC = uniqueSocketPath(dir, 'c');
    const sockE = uniqueSocketPath(dir, 'e');
    const kept: E2ePort[] = [
      { name: 'vhu-a', mode: 'server', socket: sockA },
      { name: 'vhu-b', mode: 'server', socket: sockB },
    ];
    d = await startSwitch(dir, [...kept, { name: 'vhu-c', mode: 'server', socket: sockC }, { name: 'vhu-e', mode: 'server', socket: sockE }]);
    const a = await startGuest({ name: 'rl-a', netdevs: [{ socket: sockA, mode: 'client', mac: '52:54:00:00:23:01', reconnect: 1 }], ip: '169.254.23.1/16' });
    guests.push(a);
    const b = await startGuest({ name: 'rl-b', netdevs: [{ socket: sockB, mode: 'client', mac: '52:54:00:00:23:02', reconnect: 1 }], ip: '169.254.23.2/16' });
    guests.push(b);
    await bootAndLink([a, b]);
    await waitPortState(d, 'vhu-a', (s) => s === 'ready');
    await waitPortState(d, 'vhu-b', (s) => s === 'ready');
    await pingUntilOk(a, '169.254.23.2');
    const ids = async () => ((await d!.api.request('GET', '/v1/ports')).body as { ports: Array<{ name: string; id: number }> }).ports;
    const before = await ids();
    const stateLines = () => d!.stderr.split('\n').filter((l) => /msg="port state"/.test(l) && /port=vhu-[ab]\b/.test(l)).length;
    const linesBefore = stateLines();

    // 40 echoes at 0.25 s; the reload happens a few seconds in.
    const pinging = a.run('ping -c 40 -i 0.25 -W 3 169.254.23.2', 120_000);
    await new Promise((r) => setTimeout(r, 3000));
    writeConfig(dir, [...kept, { name: 'vhu-e', mode: 'server', socket: sockE, queues: 2 }, { name: 'vhu-d', mode: 'server', socket: uniqueSocketPath(dir, 'd') }]);
    const reloadsBefore = d.stderr.split('\n').filter((l) => /msg="config reloaded"/.test(l)).length;
    d.child.kill('SIGHUP');
    await waitUntil(() => d!.stderr.split('\n').filter((l) => /msg="config reloaded"/.test(l)).length > reloadsBefore, 30_000, 'config reloaded', 50);
    const ping = await pinging;
    const summary = parsePing(ping.output);

    const after = await ids();
    expect(after.map((p) => p.name).sort()).toEqual(['vhu-a', 'vhu-b', 'vhu-d', 'vhu-e']);
    for (const name of ['vhu-a', 'vhu-b']) expect(after.find((p) => p.name === name)?.id).toBe(before.find((p) => p.name === name)?.id);
    expect(fs.existsSync(sockC)).toBe(false);
    expect(fs.existsSync(sockE)).toBe(true);
    // The guests' vhost-user connections were never dropped: no state change of the kept ports since.
    expect(stateLines()).toBe(linesBefore);
    expect(summary.transmitted).toBe(40);
    expect(summary.received, ping.output).toBe(40);
    expect(d.alive()).toBe(true);
  });
});
