// The daemon as a systemd Type=notify service, without systemd: a datagram socket stands in for the service
// manager's NOTIFY_SOCKET (Debian's python3 binds it; Node has no AF_UNIX datagrams) and reads what the daemon
// sends. A poll thread is stalled for real by stopping that one thread with ptrace (PTRACE_INTERRUPT stops a
// single task; the rest of the process runs on), while a frontend keeps it busy.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { VirtioUserPort } from '../../src/gen/virtio-user.js';
import { createLogger, stderrIsJournal } from '../../src/log.js';
import { makeRunDir, requireRoot, requireTool, sleep, trackChild, waitUntil } from '../../harness/env.js';
import { DaemonProcess } from './support/daemon.js';

const PYTHON = '/usr/bin/python3';

// Prints each datagram on one line, fields joined by '|'.
const RECEIVER = `
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print("bound", flush=True)
while True:
    print(s.recv(65536).decode().replace("\\n", "|"), flush=True)
`;

// Stops one thread (argv[1] is its tid) until stdin closes; the tracee resumes when we detach or exit.
const STOPPER = `
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
PTRACE_SEIZE, PTRACE_INTERRUPT, PTRACE_DETACH, WALL = 0x4206, 0x4207, 17, 0x40000000
tid = int(sys.argv[1])
if libc.ptrace(PTRACE_SEIZE, tid, None, None) != 0 or libc.ptrace(PTRACE_INTERRUPT, tid, None, None) != 0:
    sys.exit("ptrace: " + os.strerror(ctypes.get_errno()))
os.waitpid(tid, WALL)
print("stopped", flush=True)
sys.stdin.read()
libc.ptrace(PTRACE_DETACH, tid, None, None)
`;

class Receiver {
  lines: string[] = [];
  private constructor(readonly child: ChildProcessWithoutNullStreams) {
    let buf = '';
    child.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      const parts = buf.split('\n');
      buf = parts.pop()!;
      this.lines.push(...parts);
    });
  }
  static async bind(socket: string): Promise<Receiver> {
    const r = new Receiver(spawn(PYTHON, ['-c', RECEIVER, socket]));
    trackChild(r.child, 'notify receiver');
    await waitUntil(() => r.lines.includes('bound'), 10_000, 'the notify socket');
    r.lines.length = 0;
    return r;
  }
  count(field: string): number {
    return this.lines.filter((l) => l.split('|').includes(field)).length;
  }
  async next(field: string, after = this.lines.length, ms = 15_000): Promise<string> {
    return waitUntil(() => this.lines.slice(after).find((l) => l.split('|').includes(field)), ms, `"${field}" on the notify socket`);
  }
}

function pollThreadTid(pid: number): number {
  const dir = `/proc/${pid}/task`;
  for (const tid of fs.readdirSync(dir))
    if (fs.readFileSync(path.join(dir, tid, 'comm'), 'utf8').trim() === 'vs-poll0') return Number(tid);
  throw new Error('no vs-poll0 thread in the daemon');
}

const procs: Array<{ kill: () => void }> = [];
afterAll(() => procs.forEach((p) => p.kill()));

describe('systemd service notifications (Type=notify, watchdog)', () => {
  it('READY=1 once the API answers, WATCHDOG=1 pings that stop while a poll thread is stuck and resume after, RELOADING=1/READY=1 on SIGHUP, STOPPING=1', async () => {
    requireRoot();
    requireTool(PYTHON, 'python3');
    const runDir = makeRunDir('notify');
    const notifySocket = path.join(runDir, 'notify.sock');
    const recv = await Receiver.bind(notifySocket);
    procs.push({ kill: () => recv.child.kill() });
    const config = path.join(runDir, 'config.json');
    fs.writeFileSync(config, JSON.stringify({ ports: [{ name: 'vm', socket: 'vm.sock' }] }));
    // Pings every 150 ms; the health check samples once a second.
    const d = DaemonProcess.spawn(runDir, ['--config', config], { NOTIFY_SOCKET: notifySocket, WATCHDOG_USEC: '300000' });
    const ready = await recv.next('READY=1');
    // READY=1 comes after the control socket listens: the API answers at once.
    expect((await d.api.request('GET', '/v1/health')).status).toBe(200);
    expect(ready).toContain(`MAINPID=${d.child.pid}`);
    expect(ready).toMatch(/STATUS=1 port, control socket /);
    const pingsAt = recv.lines.length;
    await waitUntil(() => recv.lines.slice(pingsAt).filter((l) => l === 'WATCHDOG=1').length >= 3, 10_000, 'three watchdog pings');

    // Keep the poll thread busy (a frame every turn of the event loop), then stop it inside a pass.
    const front = await VirtioUserPort.connect(path.join(runDir, 'vm.sock'));
    let sending = true;
    const frame = Buffer.alloc(64);
    Buffer.from([0x02, 0, 0, 0, 0, 0x01]).copy(frame, 0);
    Buffer.from([0x02, 0, 0, 0, 0, 0x02]).copy(frame, 6);
    const pump = () => {
      if (!sending) return;
      front.send([frame]);
      setImmediate(pump);
    };
    pump();
    const tid = pollThreadTid(d.child.pid!);
    let stopper: ChildProcessWithoutNullStreams | undefined;
    for (let attempt = 0; attempt < 20 && !stopper; attempt++) {
      const s = spawn(PYTHON, ['-c', STOPPER, String(tid)]);
      trackChild(s, 'ptrace stopper');
      let out = '';
      s.stdout.on('data', (b: Buffer) => (out += b.toString()));
      await waitUntil(() => out.includes('stopped') || s.exitCode !== null, 10_000, 'ptrace stop');
      if (s.exitCode !== null) throw new Error('ptrace stopper failed');
      const stats = (await d.api.request('GET', '/v1/stats')).body as { threads: Array<{ sleeping: boolean }> };
      if (!stats.threads[0].sleeping) stopper = s;
      else {
        s.stdin.end();  // caught asleep (idle, not stuck): let it go and try again
        await sleep(20);
      }
    }
    expect(stopper, 'the poll thread was never caught awake').toBeDefined();
    procs.push({ kill: () => stopper!.kill() });
    const stalledAt = recv.lines.length;
    await recv.next('STATUS=poll thread 0 stalled', stalledAt);
    // No ping while it is stuck: wait a few periods (one ping may have been on its way).
    await sleep(1000);
    const during = recv.lines.slice(stalledAt + 2).filter((l) => l === 'WATCHDOG=1').length;
    expect(during).toBe(0);
    // The health check needs two of its once-a-second samples to see it.
    const health = await waitUntil(async () => {
      const h = (await d.api.request('GET', '/v1/health')).body as { status: string; reasons: string[] };
      return h.status === 'degraded' ? h : undefined;
    }, 10_000, 'health degraded');
    expect(health.reasons.join('\n')).toMatch(/poll thread 0 is stalled/);
    expect(d.stderr).toMatch(/level=error msg="poll thread stalled: watchdog pings stopped/);

    // Released: pings and health come back.
    stopper!.stdin.end();
    await recv.next('WATCHDOG=1', recv.lines.length);
    sending = false;
    front.close();
    await waitUntil(async () => ((await d.api.request('GET', '/v1/health')).body as { status: string }).status === 'ok', 10_000, 'health ok again');

    const beforeHup = recv.lines.length;
    d.child.kill('SIGHUP');
    await recv.next('RELOADING=1', beforeHup);
    await recv.next('READY=1', beforeHup);
    const after = recv.lines.slice(beforeHup).filter((l) => /RELOADING=1|READY=1/.test(l));
    expect(after[0]).toMatch(/^RELOADING=1\|MONOTONIC_USEC=\d+/);
    expect(after[1]).toMatch(/^READY=1/);

    const beforeStop = recv.lines.length;
    const exit = d.stop('SIGTERM');
    await recv.next('STOPPING=1', beforeStop);
    expect((await exit).code).toBe(0);
  });

  it('without NOTIFY_SOCKET nothing is sent; a WATCHDOG_PID of another process means no pings', async () => {
    requireRoot();
    const runDir = makeRunDir('notify2');
    const notifySocket = path.join(runDir, 'notify.sock');
    const recv = await Receiver.bind(notifySocket);
    procs.push({ kill: () => recv.child.kill() });
    const d = DaemonProcess.spawn(runDir, [], { NOTIFY_SOCKET: notifySocket, WATCHDOG_USEC: '100000', WATCHDOG_PID: '1' });
    await recv.next('READY=1');
    await sleep(600);
    expect(recv.count('WATCHDOG=1')).toBe(0);
    expect((await d.stop()).code).toBe(0);
    expect(recv.count('STOPPING=1')).toBe(1);
  });

  it('log lines carry syslog priorities only when stderr is the journal stream JOURNAL_STREAM names', () => {
    const file = path.join(makeRunDir('journal'), 'stderr');
    const fd = fs.openSync(file, 'w');
    try {
      const st = fs.fstatSync(fd);
      expect(stderrIsJournal({ JOURNAL_STREAM: `${st.dev}:${st.ino}` }, fd)).toBe(true);
      expect(stderrIsJournal({ JOURNAL_STREAM: `${st.dev}:${st.ino + 1}` }, fd)).toBe(false);
      expect(stderrIsJournal({}, fd)).toBe(false);
    } finally {
      fs.closeSync(fd);
    }
    const lines: string[] = [];
    const log = createLogger({ journal: true, write: (l) => lines.push(l) });
    log.warn('w');
    log.child({ port: 'p' }).error('e');
    expect(lines.map((l) => l.slice(0, 3))).toEqual(['<4>', '<3>']);
  });
});
