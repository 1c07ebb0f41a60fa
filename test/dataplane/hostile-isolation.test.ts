// Isolation judged by throughput, in three processes: the real daemon (control plane and data plane, pinned to CPU 1),
// an honest generator (`vhost-switch gen`, a source on port a and a sink on port b at a fixed rate, pinned to CPU 0),
// and the attacker (this test process) on a third port. Each attack runs for the whole of an honest window, and the
// honest sink's rate in that window must be at least half its rate in a quiet window of the same rig: a slowdown
// fails, not only a stall. Where a test names a cost to the poll thread (parks), it asserts it from the daemon's
// own counters. hostile-frontend.test.ts covers what each attack does to the evil port itself (counters, refusals).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VirtioUserPort } from '../../src/gen/virtio-user.js';
import * as P from '../../src/vhost/protocol.js';
import { BIN, DaemonProcess } from '../integration/support/daemon.js';
import { trackChild } from '../../harness/env.js';

const RATE_PPS = 1_000_000; // honest offered rate: well inside what the rig sustains quietly, high enough that stalls add up
const WINDOW_S = 3;
const MIN_SHARE = 0.5; // honest rate under attack / quiet rate
const NEXT = 1;
const NEED = P.VHOST_USER_VERSION | P.VHOST_USER_NEED_REPLY_MASK;
const MAX_ERRORS_PER_CONNECTION = 90; // the backend drops a connection at 100 protocol errors: reconnect before that

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let dir: string;
let daemon: DaemonProcess;
const sock = (n: string) => path.join(dir, `${n}.sock`);
let quietMpps = 0;
const results: Array<{ attack: string; mpps: number; share: number; rounds: number; failure: string }> = [];

interface ThreadStatsJson {
  parks: number | string;
  packets: number | string;
}

async function parks(): Promise<number> {
  const s = await daemon.api.call<{ threads: ThreadStatsJson[] }>('GET', '/v1/stats');
  return s.threads.reduce((a, t) => a + Number(t.parks), 0);
}

/** One honest window: the generator in its own process; resolves with the sink's received Mpps. */
function honestWindow(): Promise<number> {
  return new Promise((resolve, reject) => {
    const args = [BIN, 'gen', '--socket', `${sock('a')},${sock('b')}`, '--role', 'source', '--rate', String(RATE_PPS),
      '--duration', String(WINDOW_S), '--cpu', '0', '--json'];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    trackChild(child, 'vhost-switch gen');
    let out = '';
    let err = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    child.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`gen exited ${code}: ${err}`));
      try {
        resolve((JSON.parse(out) as { rxMpps: number }).rxMpps);
      } catch (e) {
        reject(new Error(`gen printed no summary: ${out} ${err} (${(e as Error).message})`));
      }
    });
  });
}

/** Runs `attack` in rounds until the honest window ends; judges the honest rate against the quiet one. */
async function underAttack(name: string, attack: (round: number) => Promise<void>): Promise<void> {
  const window = honestWindow();
  let done = false;
  void window.finally(() => (done = true)).catch(() => {});
  let rounds = 0;
  let failure: unknown;
  const attacker = (async () => {
    while (!done) {
      try {
        await attack(rounds++);
      } catch (e) {
        failure ??= e; // keep attacking: a failed round must not end the attack early
      }
      await new Promise((r) => setImmediate(r));
    }
  })();
  const mpps = await window;
  await attacker;
  const share = mpps / quietMpps;
  results.push({ attack: name, mpps, share, rounds, failure: failure ? String((failure as Error).message ?? failure) : '' });
  expect(rounds, `${name}: the attack ran`).toBeGreaterThan(1);
  expect(share, `${name}: honest ${mpps.toFixed(4)} Mpps under attack, ${quietMpps.toFixed(4)} quiet (${rounds} rounds)`).toBeGreaterThanOrEqual(MIN_SHARE);
  if (failure) throw failure;
}

/** An evil connection with a real handshake, reconnected whenever the switch drops it or it has spent its errors. */
class Evil {
  private port: VirtioUserPort | null = null;
  private errors = 0;
  reconnects = 0;
  async get(errorsNeeded = 0): Promise<VirtioUserPort> {
    if (this.port && (this.port.frontend.closed || this.errors + errorsNeeded > MAX_ERRORS_PER_CONNECTION)) this.close();
    if (!this.port) {
      this.port = await connectWhenFree(sock('e'));
      this.errors = 0;
      this.reconnects++;
    }
    this.errors += errorsNeeded;
    return this.port;
  }
  close(): void {
    this.port?.close();
    this.port = null;
  }
}

/** Runs fn with an evil connection that is closed afterwards whatever happened (the next test needs the port free). */
async function withEvil(fn: (evil: Evil) => Promise<void>): Promise<void> {
  const evil = new Evil();
  try {
    await fn(evil);
  } finally {
    evil.close();
  }
}

/** Connects once the endpoint listens again (after a previous connection closed, the switch resets the port). */
async function connectWhenFree(socket: string): Promise<VirtioUserPort> {
  for (let i = 0; ; i++) {
    try {
      return await VirtioUserPort.connect(socket, { timeoutMs: 2000 });
    } catch (e) {
      if (i > 50) throw e;
      await sleep(20);
    }
  }
}

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vs-isolation-'));
  const config = {
    switch: { threads: 1, cpus: [1] },
    ports: ['a', 'b', 'e'].map((n) => ({ name: n, mode: 'server', socket: sock(n), queues: 1, mtu: 1500 })),
  };
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config));
  daemon = await DaemonProcess.start(dir, ['--config', path.join(dir, 'config.json'), '--state-dir', path.join(dir, 'state'), '--log-level', 'warn']);
  for (const n of ['a', 'b', 'e']) {
    for (let i = 0; !fs.existsSync(sock(n)); i++) {
      if (i > 200) throw new Error(`socket ${n} never appeared`);
      await sleep(10);
    }
  }
  // The first window also teaches the switch the sink's MAC; the second is the reference.
  await honestWindow();
  quietMpps = await honestWindow();
  expect(quietMpps, 'the quiet honest rate').toBeGreaterThan((RATE_PPS / 1e6) * 0.5);
}, 60_000);

afterAll(async () => {
  console.log(
    `hostile-isolation: honest sink rate under each attack, against ${quietMpps.toFixed(4)} Mpps quiet\n` +
      results.map((r) => `  ${r.attack.padEnd(52)} ${r.mpps.toFixed(4)} Mpps  ${(r.share * 100).toFixed(0)}%  ${r.rounds} rounds ${r.failure}`).join('\n'),
  );
  await daemon?.stop();
});

describe('an attacker in its own process cannot slow honest traffic below half its quiet rate', () => {
  it('a stream of refused SET_VRING_NUM and SET_VRING_ADDR requests, and none of them parks the poll thread', async () => {
    await withEvil(async (evil) => {
      await evil.get();
      // The cost the control plane claims: a refused request never parks the poll threads.
      const p = await evil.get(20);
      const info = p.driver.info();
      const parks0 = await parks();
      for (let i = 0; i < 10; i++) {
        expect(await p.frontend.call(P.VHOST_USER_SET_VRING_NUM, P.encodeVringState({ index: 1, num: 300 }), [], NEED)).toEqual(P.encodeU64(1n));
        await expect(p.frontend.setVringAddr(1, { flags: 0, log: 0n, desc: info.vrings[1]!.desc + 8n, avail: info.vrings[1]!.avail, used: info.vrings[1]!.used })).rejects.toThrow(/refused/);
      }
      expect((await parks()) - parks0, 'parks for 20 refused requests').toBe(0);
      await underAttack('refused SET_VRING_NUM / SET_VRING_ADDR', async () => {
        const q = await evil.get(2);
        const v = q.driver.info().vrings[1]!;
        await q.frontend.call(P.VHOST_USER_SET_VRING_NUM, P.encodeVringState({ index: 1, num: 300 }), [], NEED);
        await q.frontend.setVringAddr(1, { flags: 0, log: 0n, desc: v.desc, avail: v.avail + 1n, used: v.used }).catch(() => {});
      });
    });
  });

  it('a frontend that connects, negotiates and hangs up in a loop', async () => {
    await underAttack('reconnect loop', async () => {
      const p = await connectWhenFree(sock('e'));
      p.close();
    });
  });

  it('looping and out-of-table descriptor chains posted on its transmit ring as fast as it can', async () => {
    await withEvil(async (evil) => {
      let posted = 0;
      let port: VirtioUserPort | null = null;
      await underAttack('looping descriptor chains', async () => {
        const p = await evil.get();
        if (p !== port) [port, posted] = [p, 0];
        const d = p.driver;
        // Keep the ring full but never past its size (a jump past it only breaks the ring, which ends the attack).
        if (((posted - d.usedIdx(1)) & 0xffff) > 256 - 16) {
          await sleep(1);
          return;
        }
        d.writeDesc(1, 210, d.bufGpa(1, 20), 64, NEXT, 211);
        d.writeDesc(1, 211, d.bufGpa(1, 21), 64, NEXT, 210);
        d.writeDesc(1, 213, d.bufGpa(1, 23), 64, NEXT, 60000);
        for (let i = 0; i < 16; i++) d.pushAvail(1, i % 2 ? 210 : 213);
        posted += 16;
        d.kick(1);
        await sleep(1);
      });
    });
  });

  it('memory tables sent again and again (each one a data-plane reconfiguration)', async () => {
    await withEvil(async (evil) => {
      await underAttack('SET_MEM_TABLE flood', async () => {
        const p = await evil.get();
        const { memFd, memSize, memUva } = p.driver.info();
        const table = P.encodeMemoryTable([{ guestPhysAddr: 0n, size: memSize, userAddr: memUva, mmapOffset: 0n }]);
        expect(await p.frontend.call(P.VHOST_USER_SET_MEM_TABLE, table, [memFd], NEED)).toEqual(P.encodeU64(0n));
      });
    });
  });
});
