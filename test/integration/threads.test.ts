// Poll threads as an operator sees them (`vhost-switch threads`, GET /v1/threads), on the real daemon and data
// plane: each queue's thread is stable (adding or removing a port moves no other port's queues), a queue can be
// pinned, and `stats clear` starts the counters from zero.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeRunDir, requireRoot } from '../../harness/env.js';
import { cli, DaemonProcess, nativeSwitchAvailable } from './support/daemon.js';

const T = { timeout: 60_000 };
let runDir: string;
let d: DaemonProcess;
const run = (...args: string[]) => cli(runDir, args);
const tap = (n: string) => `vsq${process.pid % 10000}${n}`;

interface Thread {
  thread: number;
  cpu: number | null;
  packets: number;
  queues: Array<{ port: string; queue: number; pinned: boolean }>;
}
const threads = async () => (await d.api.call<{ threads: Thread[] }>('GET', '/v1/threads')).threads;
/** port name → the thread polling its queue 0 */
const placement = async () => Object.fromEntries((await threads()).flatMap((t) => t.queues.map((q) => [q.port, t.thread])));

beforeAll(async () => {
  requireRoot();
  expect(nativeSwitchAvailable(), 'the native addon must be built').toBe(true);
  runDir = makeRunDir('threads');
  d = await DaemonProcess.start(runDir, ['--threads', '2']);
}, 30_000);

afterAll(async () => {
  if (d?.alive()) await d.stop('SIGTERM');
}, 30_000);

describe('poll threads', T, () => {
  it('a queue keeps its thread when other ports come and go; a pinned queue goes where it is told', async () => {
    for (const n of ['1', '2', '3']) expect((await run('port', 'add', `t${n}`, '--type', 'tap', '--iface', tap(n))).code).toBe(0);
    const before = await placement();
    expect(Object.keys(before).sort()).toEqual(['t1', 't2', 't3']);
    expect(new Set(Object.values(before)).size).toBe(2); // spread over both threads
    expect((await run('port', 'del', 't1')).code).toBe(0);
    const after = await placement();
    expect(after).toEqual({ t2: before.t2, t3: before.t3 });

    // Pinned: queue 0 of t4 on the thread t2 is on, whatever the load says.
    expect((await run('port', 'add', 't4', '--type', 'tap', '--iface', tap('4'), '--queue-affinity', `0:${before.t2}`)).code).toBe(0);
    const pinned = (await threads()).flatMap((t) => t.queues.map((q) => ({ ...q, thread: t.thread }))).find((q) => q.port === 't4');
    expect(pinned).toEqual({ port: 't4', queue: 0, pinned: true, thread: before.t2 });
    expect((await run('port', 'show', 't4')).stdout).toMatch(new RegExp(`^queue affinity\\s+0:${before.t2}$`, 'm'));

    const text = (await run('threads')).stdout;
    expect(text).toMatch(/^THREAD\s+CPU\s+STATE\s+BUSY%\s+PACKETS\s+CYC\/PKT\s+QUEUES$/m);
    expect(text).toMatch(new RegExp(`^\\s*${before.t2}\\s+-\\s+\\w+\\s+[\\d.]+\\s+\\d+\\s+\\d+\\s+.*t4:0\\*`, 'm'));
  });

  it('refuses a thread the switch does not run, and a queue the port does not have', async () => {
    const r = await run('port', 'add', 'bad1', '--type', 'tap', '--iface', tap('5'), '--queue-affinity', '0:5');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/queueAffinity\.0: thread 5 does not exist: the switch runs 2 poll threads \(0-1\)/);
    const q = await run('port', 'add', 'bad2', '--queues', '2', '--queue-affinity', '2:0');
    expect(q.stderr).toMatch(/queueAffinity\.2: the port has 2 queues \(0-1\)/);
    expect((await run('port', 'add', 'bad3', '--queue-affinity', 'zero')).code).toBe(2);
    expect((await d.api.call<{ ports: unknown[] }>('GET', '/v1/ports')).ports.map((p) => (p as { name: string }).name)).not.toContain('bad1');
  });

  it('stats clear starts the thread counters from zero', async () => {
    // The tap ports' kernel ends may send a frame (IPv6) at any time: compare with the lifetime counters, which
    // clear leaves alone, around the clear.
    const lifetime = async () => (await d.api.call<{ threads: Array<{ packets: number }> }>('GET', '/v1/stats')).threads.map((t) => Number(t.packets));
    const before = await lifetime();
    expect((await run('stats', 'clear')).stdout).toBe('thread statistics cleared\n');
    const since = (await threads()).map((t) => Number(t.packets));
    const after = await lifetime();
    since.forEach((n, i) => expect(n).toBeLessThanOrEqual(after[i]! - before[i]!));
  });
});
