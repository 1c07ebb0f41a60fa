// Issues 4 and 8, faults with real guests:
//  - the switch SIGKILLed and restarted on the same run directory and config: QEMU reconnects (server mode,
//    chardev reconnect=1) or the switch reconnects (client mode), and ping resumes with the same QEMU processes
//    and no guest reboot; ports created through the API and the CLI, and a static FDB entry, are restored;
//  - a QEMU SIGKILLed: its port goes down, traffic between the other guests is not disturbed, and a new QEMU on the
//    same socket works.
//
//   guest a (169.254.33.1) --p-a (config)--+
//   guest b (169.254.33.2) --p-b (API)-----+-- vhost-switch        (server mode: the switch listens)
//   guest c (169.254.33.3) --p-c (CLI)-----+
//
//   guest d (169.254.34.1) --p-d (config, client)--+-- vhost-switch (client mode: QEMU listens)
//   guest e (169.254.34.2) --p-e (CLI, client)-----+
import { afterAll, describe, expect, it } from 'vitest';
import { makeRunDir, requireTool, uniqueId, uniqueSocketPath, waitUntil } from '../../harness/env.js';
import { startGuest, type Guest } from '../support/qemu.js';
import { cli, DaemonProcess } from '../integration/support/daemon.js';
import { portState, waitPortState } from './switch-daemon.js';
import { bootAndLink, fullStats, parsePing, pingUntilOk, writeSpecConfig } from './lib-e2e.js';

const STATIC_MAC = '52:54:00:00:33:99';

/** Leaves a random mark in the guest's tmpfs: still there later means the guest did not reboot. */
async function markGuest(g: Guest): Promise<string> {
  const mark = `mark-${uniqueId()}`;
  await g.runOk(`echo ${mark} > /tmp/vs-mark`);
  return mark;
}

async function expectNoReboot(g: Guest, mark: string, pid: number | undefined): Promise<void> {
  expect(g.hasExited, `${g.name} QEMU still running`).toBe(false);
  expect(g.pid).toBe(pid);
  expect((await g.runOk('cat /tmp/vs-mark')).trim()).toBe(mark);
  expect(g.console.match(/^VS-GUEST-READY/gm)?.length, `${g.name} booted once`).toBe(1);
}

/** Waits until the guest sees its NIC lose carrier (QEMU noticed the backend went away). */
async function waitLinkDown(g: Guest, ms = 60_000): Promise<void> {
  await waitUntil(async () => (await g.runOk('cat /sys/class/net/eth0/operstate')).trim() === 'down', ms, `${g.name} eth0 down`, 500);
}

describe('the switch and QEMU killed', () => {
  const guests: Guest[] = [];
  const daemons: DaemonProcess[] = [];
  afterAll(async () => {
    await Promise.all(guests.map((g) => g.stop()));
    await Promise.all(daemons.filter((d) => d.alive()).map((d) => d.stop()));
  });

  // Shared by the server-mode tests below (they run in order).
  const srv = {} as { dir: string; config: string; socks: Record<'a' | 'b' | 'c', string>; d: DaemonProcess; a: Guest; b: Guest; c: Guest };

  it('server mode: SIGKILL + restart: QEMU reconnects, ping resumes without a reboot, API/CLI ports and a static FDB entry are restored', async () => {
    requireTool('qemu-system-x86_64');
    const dir = makeRunDir('fault-srv');
    const socks = { a: uniqueSocketPath(dir, 'a'), b: uniqueSocketPath(dir, 'b'), c: uniqueSocketPath(dir, 'c') };
    const config = writeSpecConfig(dir, [{ name: 'p-a', mode: 'server', socket: socks.a }]);
    let d = await DaemonProcess.start(dir, ['--config', config]);
    daemons.push(d);
    // p-b through the API, p-c through the CLI, a static entry through the API.
    const rb = await d.api.request('POST', '/v1/ports', { name: 'p-b', mode: 'server', socket: socks.b });
    expect(rb.status, rb.text).toBe(201);
    const rc = await cli(dir, ['port', 'add', 'p-c', '--mode', 'server', '--socket', socks.c]);
    expect(rc.code, rc.stderr).toBe(0);
    const rf = await d.api.request('POST', '/v1/fdb', { mac: STATIC_MAC, port: 'p-b' });
    expect(rf.status, rf.text).toBe(201);

    const mk = (n: 'a' | 'b' | 'c', i: number) =>
      startGuest({ name: `fault-${n}`, netdevs: [{ socket: socks[n], mode: 'client', mac: `52:54:00:00:33:0${i}`, reconnect: 1 }], ip: `169.254.33.${i}/16`, noIpv6: true });
    const a = await mk('a', 1);
    guests.push(a);
    const b = await mk('b', 2);
    guests.push(b);
    const c = await mk('c', 3);
    guests.push(c);
    await bootAndLink([a, b, c]);
    Object.assign(srv, { dir, config, socks, d, a, b, c });
    for (const p of ['p-a', 'p-b', 'p-c']) await waitPortState(d, p, (s) => s === 'ready');
    expect(parsePing(await a.runOk('ping -c 2 -W 5 169.254.33.2', 60_000)).received).toBe(2);
    expect(parsePing(await a.runOk('ping -c 2 -W 5 169.254.33.3', 60_000)).received).toBe(2);
    const marks = await Promise.all([a, b, c].map(markGuest));
    const pids = [a, b, c].map((g) => g.pid);

    // Killed under traffic: a pings b ten times a second through the kill and the restart.
    await a.runOk('ping -i 0.1 169.254.33.2 > /tmp/ping-bg.txt 2>&1 &');
    await waitUntil(async () => /seq=5 /.test(await a.runOk('cat /tmp/ping-bg.txt')), 60_000, 'background ping replies', 500);
    const exit = await d.stop('SIGKILL');
    expect(exit.signal).toBe('SIGKILL');
    // QEMU noticed: the guests' NICs lose carrier while the switch is gone.
    await Promise.all([a, b, c].map((g) => waitLinkDown(g)));

    d = await DaemonProcess.start(dir, ['--config', config]);
    daemons.push(d);
    srv.d = d;
    const ports = (await d.api.request('GET', '/v1/ports')).body as { ports: Array<{ name: string; origin: string; socket: string }> };
    expect(ports.ports.map((p) => [p.name, p.origin, p.socket]).sort()).toEqual([
      ['p-a', 'config', socks.a],
      ['p-b', 'api', socks.b],
      ['p-c', 'api', socks.c],
    ]);
    const fdb = (await d.api.request('GET', '/v1/fdb')).body as { entries: Array<{ mac: string; port: string; static: boolean; vlan: number }> };
    expect(fdb.entries).toContainEqual(expect.objectContaining({ mac: STATIC_MAC, port: 'p-b', static: true, vlan: 0 }));
    const listed = await cli(dir, ['port', 'list', '--json']);
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).toContain('"p-c"');

    // QEMU reconnects by itself (reconnect=1); the same guests, no reboot.
    for (const p of ['p-a', 'p-b', 'p-c']) await waitPortState(d, p, (s) => s === 'ready');
    await Promise.all([a, b, c].map((g) => g.waitLink('eth0', 120_000)));
    await pingUntilOk(a, '169.254.33.2');
    // The background ping had replies before the kill (the switch was killed under traffic). What it shows after
    // the restart is the guest's business (an echo request queued in the TX ring during the outage is answered
    // after the reconnect, with a long round trip): it is logged, not judged; the fresh pings below are.
    const bg = await a.runOk('P=$(pidof ping); cat /proc/$P/wchan 2>/dev/null; echo; kill -INT $P; sleep 1; cat /tmp/ping-bg.txt');
    const seqs = [...bg.matchAll(/seq=(\d+) /g)].map((m) => Number(m[1]));
    console.log(`background ping through the kill and restart: ${seqs.length} replies, last seq ${seqs[seqs.length - 1]}\n${bg.split('\n').slice(-4).join('\n')}`);
    expect(seqs.length, bg).toBeGreaterThanOrEqual(6);
    expect(parsePing(await a.runOk('ping -c 3 -W 5 169.254.33.2', 60_000))).toEqual({ transmitted: 3, received: 3 });
    expect(parsePing(await c.runOk('ping -c 3 -W 5 169.254.33.1', 60_000))).toEqual({ transmitted: 3, received: 3 });
    await Promise.all([a, b, c].map((g, i) => expectNoReboot(g, marks[i]!, pids[i])));
  }, 600_000);

  it('QEMU SIGKILLed: its port goes down, a<->c traffic is not disturbed, a new QEMU on the same socket works', async () => {
    requireTool('qemu-system-x86_64');
    expect(srv.d, 'the server-mode test set up the guests').toBeDefined();
    const { d, a, c, socks } = srv;
    const before = await Promise.all(['p-a', 'p-c'].map((p) => fullStats(d, p)));

    // 40 pings a -> c, 0.25 s apart, running in a's background while b's QEMU is killed.
    await a.runOk('ping -c 40 -i 0.25 -W 10 169.254.33.3 > /tmp/ping-ac.txt 2>&1 &');
    await new Promise((r) => setTimeout(r, 2000));
    srv.b.kill('SIGKILL');
    const bExit = await srv.b.exited;
    expect(bExit.signal).toBe('SIGKILL');
    await waitPortState(d, 'p-b', (s) => s !== 'ready', 30_000);
    expect(d.alive()).toBe(true);
    const pingOut = await a.runOk('while pidof ping > /dev/null; do sleep 0.5; done; cat /tmp/ping-ac.txt', 180_000);
    expect(parsePing(pingOut)).toEqual({ transmitted: 40, received: 40 });

    const after = await Promise.all(['p-a', 'p-c'].map((p) => fullStats(d, p)));
    for (const [i, s] of after.entries()) {
      expect(s.state).toBe('ready');
      expect(s.rxPackets - before[i]!.rxPackets, `${s.name} rx`).toBeGreaterThanOrEqual(40);
      expect(s.txPackets - before[i]!.txPackets, `${s.name} tx`).toBeGreaterThanOrEqual(40);
      for (const [reason, n] of Object.entries(s.drops)) expect(n - before[i]!.drops[reason]!, `${s.name} ${reason}`).toBe(0);
    }

    // A new QEMU on the same socket: the port comes back and the new guest reaches a and c.
    const b2 = await startGuest({ name: 'fault-b2', netdevs: [{ socket: socks.b, mode: 'client', mac: '52:54:00:00:33:02', reconnect: 1 }], ip: '169.254.33.2/16', noIpv6: true });
    guests.push(b2);
    await bootAndLink([b2]);
    await waitPortState(d, 'p-b', (s) => s === 'ready');
    expect(parsePing(await b2.runOk('ping -c 3 -W 5 169.254.33.1', 60_000))).toEqual({ transmitted: 3, received: 3 });
    expect(parsePing(await b2.runOk('ping -c 3 -W 5 169.254.33.3', 60_000))).toEqual({ transmitted: 3, received: 3 });
    expect(await portState(d, 'p-a')).toBe('ready');
    expect(await portState(d, 'p-c')).toBe('ready');
  }, 600_000);

  it('client mode: SIGKILL + restart: the switch reconnects to QEMU, ping resumes without a reboot, a CLI port is restored', async () => {
    requireTool('qemu-system-x86_64');
    // Done with the server-mode guests: at most three guests on the machine at a time.
    await Promise.all(guests.splice(0).map((g) => g.stop()));
    await Promise.all(daemons.splice(0).filter((x) => x.alive()).map((x) => x.stop()));

    const dir = makeRunDir('fault-cli');
    const socks = { d: uniqueSocketPath(dir, 'd'), e: uniqueSocketPath(dir, 'e') };
    // QEMU listens; it blocks before booting until a backend connects.
    const gd = await startGuest({ name: 'fault-d', netdevs: [{ socket: socks.d, mode: 'server', mac: '52:54:00:00:34:01' }], ip: '169.254.34.1/16', noIpv6: true });
    guests.push(gd);
    const ge = await startGuest({ name: 'fault-e', netdevs: [{ socket: socks.e, mode: 'server', mac: '52:54:00:00:34:02' }], ip: '169.254.34.2/16', noIpv6: true });
    guests.push(ge);
    await Promise.all([gd.waitServerSockets(), ge.waitServerSockets()]);
    const config = writeSpecConfig(dir, [{ name: 'p-d', mode: 'client', socket: socks.d }]);
    let d = await DaemonProcess.start(dir, ['--config', config]);
    daemons.push(d);
    const re = await cli(dir, ['port', 'add', 'p-e', '--mode', 'client', '--socket', socks.e]);
    expect(re.code, re.stderr).toBe(0);
    await bootAndLink([gd, ge]);
    await waitPortState(d, 'p-d', (s) => s === 'ready');
    await waitPortState(d, 'p-e', (s) => s === 'ready');
    expect(parsePing(await gd.runOk('ping -c 2 -W 5 169.254.34.2', 60_000)).received).toBe(2);
    const marks = await Promise.all([gd, ge].map(markGuest));
    const pids = [gd, ge].map((g) => g.pid);

    expect((await d.stop('SIGKILL')).signal).toBe('SIGKILL');
    await Promise.all([gd, ge].map((g) => waitLinkDown(g)));

    d = await DaemonProcess.start(dir, ['--config', config]);
    daemons.push(d);
    const ports = (await d.api.request('GET', '/v1/ports')).body as { ports: Array<{ name: string; origin: string; mode: string }> };
    expect(ports.ports.map((p) => [p.name, p.origin, p.mode]).sort()).toEqual([
      ['p-d', 'config', 'client'],
      ['p-e', 'api', 'client'],
    ]);
    await waitPortState(d, 'p-d', (s) => s === 'ready');
    await waitPortState(d, 'p-e', (s) => s === 'ready');
    await Promise.all([gd, ge].map((g) => g.waitLink('eth0', 120_000)));
    await pingUntilOk(gd, '169.254.34.2');
    expect(parsePing(await ge.runOk('ping -c 3 -W 5 169.254.34.1', 60_000))).toEqual({ transmitted: 3, received: 3 });
    await Promise.all([gd, ge].map((g, i) => expectNoReboot(g, marks[i]!, pids[i])));
  }, 600_000);
});
