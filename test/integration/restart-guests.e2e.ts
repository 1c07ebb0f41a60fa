// e2e (QEMU guests; run by the e2e project, one file at a time): ports created through the API, guests pinging
// each other through them, the daemon SIGKILLed and started again on the same run directory. The ports come back
// from state.json and the guests' traffic resumes with no guest reboot — in server mode because QEMU reconnects
// (chardev reconnect=1), in client mode because the switch does.
//
//   guest a (169.254.30.1) --ra-- vhost-switch --rb-- guest b (169.254.30.2)
import { afterAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { makeRunDir, requireTool, uniqueSocketPath, waitUntil } from '../support/env.js';
import { startGuest, type Guest } from '../support/qemu.js';
import { cli, DaemonProcess } from './support/daemon.js';

const MAC_A = '52:54:00:00:30:01';
const MAC_B = '52:54:00:00:30:02';

async function portState(d: DaemonProcess, name: string): Promise<string> {
  const r = await d.api.request('GET', `/v1/ports/${name}`);
  return (r.body as { state: string }).state;
}

async function pingUntilOk(g: Guest, ip: string, timeoutMs: number): Promise<void> {
  await waitUntil(async () => /[1-9]\d* packets received/.test((await g.run(`ping -c 2 -W 2 ${ip}`, 30_000)).output), timeoutMs, `ping ${ip}`, 500);
}

describe('daemon restart with guests attached', () => {
  const guests: Guest[] = [];
  const daemons: DaemonProcess[] = [];
  afterAll(async () => {
    await Promise.all(guests.map((g) => g.stop()));
    await Promise.all(daemons.filter((d) => d.alive()).map((d) => d.stop()));
  });

  for (const mode of ['server', 'client'] as const) {
    it(`${mode} mode: SIGKILL, restart, API ports restored, traffic resumes without a reboot`, async () => {
      requireTool('qemu-system-x86_64');
      const dir = makeRunDir(`restart-${mode}`);
      const config = path.join(dir, 'switch.json');
      fs.writeFileSync(config, JSON.stringify({ ports: [] }));
      const sockA = uniqueSocketPath(dir, 'a');
      const sockB = uniqueSocketPath(dir, 'b');
      // QEMU's side is the opposite of the switch's.
      const qemuMode = mode === 'server' ? 'client' : 'server';
      const netdev = (socket: string, mac: string) => ({ socket, mode: qemuMode, mac, ...(qemuMode === 'client' ? { reconnect: 1 } : {}) }) as const;

      let d = await DaemonProcess.start(dir, ['--config', config]);
      daemons.push(d);
      for (const [name, sock] of [['ra', sockA], ['rb', sockB]]) {
        const r = await cli(dir, ['port', 'add', name!, '--mode', mode, '--socket', sock!]);
        expect(r.stderr).toBe('');
      }
      const a = await startGuest({ name: `rs-${mode}-a`, netdevs: [netdev(sockA, MAC_A)], ip: '169.254.30.1/16' });
      guests.push(a);
      const b = await startGuest({ name: `rs-${mode}-b`, netdevs: [netdev(sockB, MAC_B)], ip: '169.254.30.2/16' });
      guests.push(b);
      await Promise.all([a.waitReady(), b.waitReady()]);
      await Promise.all([a.waitLink('eth0'), b.waitLink('eth0')]);
      await waitUntil(async () => (await portState(d, 'ra')) === 'ready' && (await portState(d, 'rb')) === 'ready', 120_000, 'ports ready');
      await pingUntilOk(a, '169.254.30.2', 60_000);
      const bootedA = (await a.runOk('cat /proc/sys/kernel/random/boot_id')).trim();

      expect((await d.stop('SIGKILL')).signal).toBe('SIGKILL');
      d = await DaemonProcess.start(dir, ['--config', config]);
      daemons.push(d);
      expect(d.stderr).toMatch(/msg="port restored" port=ra/);
      expect(d.stderr).toMatch(/msg="port restored" port=rb/);
      await waitUntil(async () => (await portState(d, 'ra')) === 'ready' && (await portState(d, 'rb')) === 'ready', 120_000, 'ports ready again');
      await pingUntilOk(a, '169.254.30.2', 90_000);
      await pingUntilOk(b, '169.254.30.1', 60_000);
      // Same guest kernel instance: no reboot happened.
      expect((await a.runOk('cat /proc/sys/kernel/random/boot_id')).trim()).toBe(bootedA);

      await Promise.all([a.stop(), b.stop()]);
      await d.stop('SIGTERM');
    });
  }
});
