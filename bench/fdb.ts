// FDB at scale: a native Switch built in this process with fdbSizeLog2 21 (2M slots, room for 1.5M MACs; the daemon's
// config has no knob for it), its poll thread on the DUT CPU, three vhost-user ports with our virtio ports attached:
//
//   p0, p1  traffic ports (generator MACs A and B)
//   p2      the "learn" port: every learned MAC lives behind it
//
// Phases, each measured from the switch's own poll-thread counters (busy cycles / packets, as deltas):
//   1. baseline: our generator's io loop p0 ↔ p1, table holding 3 MACs;
//   2. learn: N frames with distinct source MACs sent into p2 from this thread (addressed to p2's own MAC, so the
//      switch learns and then filters them: the cost is the learn); learn rate = N / time until the switch has
//      taken them all, and the table size is checked afterwards;
//   3. io loop again with the table full: the two lookups per frame are for A and B, now among N entries
//      (hash chains and table size change; the two entries stay cache-hot);
//   4. lookups spread over the whole table: frames sent into p0 from this thread, each to a random learned MAC
//      (so each lookup touches a cold cache line of a 32 MiB table), delivered to p2 and drained here. The same
//      sender with every frame to one learned MAC is run right before as the control: the difference in cycles
//      per packet is what the cache misses of a 1M-entry table cost.
// Phases 2 and 4 are limited by this JavaScript sender (a few Mpps at best); their figures are cycles per packet,
// not throughput.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { GenSession, rateBetween } from '../src/gen/bench-session.js';
import type { VirtioUserPort } from '../src/gen/virtio-user.js';
import { native, type NativeSwitch, type SwitchOptions, type ThreadStats } from '../src/dataplane/native.js';
import { VhostUserEndpoint } from '../src/vhost/endpoint.js';
import { sleep, waitFor } from './lib/util.js';

export interface FdbPhase {
  mpps: number;
  cyclesPerPacket?: number;
}

export interface FdbResult {
  macs: number;
  learned: number;
  learnSeconds: number;
  learnMpps: number;
  learnCyclesPerPacket?: number;
  baseline: FdbPhase;
  full: FdbPhase;
  randomControl: FdbPhase;
  random: FdbPhase;
}

const MAC_A = '02:00:00:00:00:0a';
const MAC_B = '02:00:00:00:00:0b';
const MAC_L = '02:00:00:00:00:0c';

function macBytes(mac: string): Buffer {
  return Buffer.from(mac.split(':').map((h) => parseInt(h, 16)));
}

/** Learned MAC i: 0a:xx:xx:xx:xx:xx (locally administered unicast). */
function learnedMac(i: number, out: Buffer, off: number): void {
  out[off] = 0x0a;
  out[off + 1] = 0;
  out.writeUInt32BE(i >>> 0, off + 2);
}

function threadDelta(a: ThreadStats[], b: ThreadStats[]): { busy: number; packets: number } {
  let busy = 0, packets = 0;
  for (const t of b) {
    const p = a.find((x) => x.thread === t.thread);
    busy += Number(t.busyCycles - (p?.busyCycles ?? 0n));
    packets += Number(t.packets - (p?.packets ?? 0n));
  }
  return { busy, packets };
}

export async function runFdbBench(o: { macs: number; durationS: number; warmupS: number; genCpu: number; dutCpu: number; log: (s: string) => void }): Promise<FdbResult> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vsb-fdb-'));
  const sw: NativeSwitch = new (native().Switch)({ threads: 1, cpus: [o.dutCpu], fdbSizeLog2: 21 });
  const eps: VhostUserEndpoint[] = [];
  const ids: number[] = [];
  let ports: VirtioUserPort[] = [];
  let session: GenSession | undefined;
  try {
    for (let i = 0; i < 3; i++) {
      const id = sw.addPort({ name: `f${i}`, vlan: 0, queuePairs: 1, mtu: 1500 });
      ids.push(id);
      const ep = new VhostUserEndpoint({
        native: sw, portId: id, name: `f${i}`, mode: 'server', socketPath: path.join(dir, `f${i}.sock`),
        queuePairs: 1, mtu: 1500, offloads: false, log: () => {},
      });
      ep.start();
      eps.push(ep);
    }
    session = await GenSession.attach(eps.map((_, i) => path.join(dir, `f${i}.sock`)).slice(0, 2), { timeoutMs: 10_000 });
    const learner = (await GenSession.attach([path.join(dir, 'f2.sock')], { timeoutMs: 10_000 })).ports[0]!;
    ports = [...session.ports, learner];
    await waitFor(() => eps.every((e) => e.state === 'ready'), 10_000, 'FDB switch ports ready');
    // p2 announces its own MAC, so the learn frames (addressed to it) are filtered, not flooded.
    learner.send([ethHeaderFrame(MAC_L, MAC_L)]);
    await sleep(50);

    const ioLoop = async (): Promise<FdbPhase> => {
      const s = new GenSession(session!.ports);
      s.start({ role: 'io', sizes: [64], srcMac: MAC_A, dstMac: MAC_B, cpu: o.genCpu });
      try {
        await sleep(o.warmupS * 1000);
        const t0 = sw.threadStats();
        const a = s.snapshot();
        await sleep(o.durationS * 1000);
        const b = s.snapshot();
        const d = threadDelta(t0, sw.threadStats());
        return { mpps: rateBetween(a, b).rxMpps, cyclesPerPacket: d.packets ? d.busy / d.packets : undefined };
      } finally {
        s.stop();
        await sleep(50);
        s.drain();
      }
    };

    o.log('fdb: baseline io loop (3 MACs)');
    const baseline = await ioLoop();

    o.log(`fdb: learning ${o.macs} MACs through p2`);
    const rx0 = sw.portStats(ids[2]!).rxPackets;
    const l0 = sw.threadStats();
    const tStart = process.hrtime.bigint();
    const batch = Array.from({ length: 64 }, () => ethHeaderFrame(MAC_L, MAC_L));
    for (let i = 0; i < o.macs; ) {
      const n = Math.min(batch.length, o.macs - i);
      for (let k = 0; k < n; k++) learnedMac(i + k, batch[k]!, 6);
      const sent = learner.send(n === batch.length ? batch : batch.slice(0, n));
      i += sent;
      if (sent < n) await new Promise((r) => setImmediate(r));
    }
    await waitFor(() => sw.portStats(ids[2]!).rxPackets - rx0 >= BigInt(o.macs), 60_000, 'the switch to take every learn frame', 5);
    const learnSeconds = Number(process.hrtime.bigint() - tStart) / 1e9;
    const ld = threadDelta(l0, sw.threadStats());
    const learned = sw.fdbList().filter((e) => e.mac.startsWith('0a:00:')).length;
    o.log(`fdb: learned ${learned} MACs in ${learnSeconds.toFixed(2)} s`);

    o.log('fdb: io loop with the full table');
    const full = await ioLoop();

    const lookups = async (random: boolean): Promise<FdbPhase> => {
      const src = ports[0]!;
      const dst = ports[2]!;
      const frames = Array.from({ length: 128 }, () => ethHeaderFrame('0a:00:00:00:00:00', MAC_A));
      let x = 0x9e3779b9;
      const endAt = process.hrtime.bigint() + BigInt(Math.round((o.warmupS + o.durationS) * 1e9));
      const winAt = process.hrtime.bigint() + BigInt(Math.round(o.warmupS * 1e9));
      let t0: ThreadStats[] | undefined;
      let tWin = 0n;
      let sentInWin = 0;
      for (let it = 0; ; it++) {
        const now = process.hrtime.bigint();
        if (now >= endAt) break;
        if (!t0 && now >= winAt) {
          t0 = sw.threadStats();
          tWin = now;
        }
        for (const f of frames) {
          // xorshift32: a cheap uniform pick among the learned MACs
          x ^= x << 13;
          x ^= x >>> 17;
          x ^= x << 5;
          learnedMac(random ? (x >>> 0) % o.macs : 12345 % o.macs, f, 0);
        }
        const n = src.send(frames);
        if (t0) sentInWin += n;
        while (dst.recv(256).length > 0) {
          /* drain */
        }
        if ((it & 1023) === 0) await new Promise((r) => setImmediate(r));
      }
      const t1 = process.hrtime.bigint();
      const d = threadDelta(t0 ?? sw.threadStats(), sw.threadStats());
      return { mpps: sentInWin / (Number(t1 - tWin) / 1e9) / 1e6, cyclesPerPacket: d.packets ? d.busy / d.packets : undefined };
    };
    o.log('fdb: lookups of one learned MAC (control)');
    const randomControl = await lookups(false);
    o.log('fdb: lookups of random learned MACs');
    const random = await lookups(true);

    return {
      macs: o.macs,
      learned,
      learnSeconds,
      learnMpps: o.macs / learnSeconds / 1e6,
      learnCyclesPerPacket: ld.packets ? ld.busy / ld.packets : undefined,
      baseline,
      full,
      randomControl,
      random,
    };
  } finally {
    session?.stop();
    for (const p of ports) p.close();
    for (const e of eps) await e.close();
    sw.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** A 64-byte frame; the MACs are patched in place by the senders above. */
function ethHeaderFrame(dst: string, src: string): Buffer {
  const f = Buffer.alloc(64);
  macBytes(dst).copy(f, 0);
  macBytes(src).copy(f, 6);
  f.writeUInt16BE(0x88b5, 12);
  return f;
}
