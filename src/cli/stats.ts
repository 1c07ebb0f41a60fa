// `vhost-switch stats [--watch]`: totals once, or a live view whose rates come from the difference between two
// samples (the API serves counters, not rates, so any client can choose its own interval).
import type { Command } from 'commander';
import { printJson, usage, type CliContext, type CliHost } from './context.js';
import { human, num, sumDrops, table } from './format.js';

type Counter = number | string;
export interface StatsSample {
  ports: Array<{
    name: string;
    state: string;
    rxPackets: Counter;
    rxBytes: Counter;
    txPackets: Counter;
    txBytes: Counter;
    drops: Record<string, Counter>;
    broken: boolean;
  }>;
  threads: Array<{ thread: number; busyCycles: Counter; idleCycles: Counter; packets: Counter; cyclesPerPacket: number; sleeping: boolean }>;
}

export function registerStats(program: Command, host: CliHost): void {
  program
    .command('stats')
    .description('counters per port and poll thread; `stats clear` starts the thread counters of `threads` from zero')
    .argument('[clear]', '"clear": start the counters `vhost-switch threads` shows from zero')
    .option('-w, --watch', 'live rates, refreshed every --interval seconds (Ctrl-C quits)')
    .option('--interval <seconds>', 'seconds between samples (0.1-3600, default 1)')
    .option('--count <n>', 'stop after N samples')
    .action(host.action(stats));
}

async function stats(ctx: CliContext, what: string | undefined, o: { watch?: boolean; interval?: string; count?: string }, cmd: Command): Promise<number> {
  if (what === 'clear') {
    await ctx.client.call('POST', '/v1/stats/clear');
    if (ctx.json) printJson(ctx, { cleared: true });
    else ctx.out('thread statistics cleared\n');
    return 0;
  }
  if (what !== undefined) throw usage(cmd, `unexpected argument "${what}" (only "clear")`);
  if (!o.watch) {
    const s = await ctx.client.call<StatsSample>('GET', '/v1/stats');
    if (ctx.json) printJson(ctx, s);
    else ctx.out(renderTotals(s));
    return 0;
  }
  const interval = o.interval === undefined ? 1 : Number(o.interval);
  if (!(interval >= 0.1 && interval <= 3600)) throw usage(cmd, '--interval must be between 0.1 and 3600 seconds');
  const count = o.count === undefined ? Infinity : Number(o.count);
  if (!(Number.isInteger(count) && count >= 1) && count !== Infinity) throw usage(cmd, '--count must be a positive integer');
  return watch(ctx, interval, count);
}

async function watch(ctx: CliContext, interval: number, count: number): Promise<number> {
  const tty = process.stdout.isTTY && !ctx.json;
  let stop = false;
  const onSig = () => (stop = true);
  process.once('SIGINT', onSig);
  try {
    let prev = await ctx.client.call<StatsSample>('GET', '/v1/stats');
    let prevAt = Date.now();
    for (let frame = 0; frame < count && !stop; frame++) {
      await sleepUnless(interval * 1000, () => stop);
      if (stop) break;
      const cur = await ctx.client.call<StatsSample>('GET', '/v1/stats');
      const now = Date.now();
      const rates = computeRates(prev, cur, (now - prevAt) / 1000);
      if (ctx.json) ctx.out(JSON.stringify({ time: new Date(now).toISOString(), ...rates }) + '\n');
      else ctx.out((tty ? '\x1b[H\x1b[2J' : frame > 0 ? '\n' : '') + renderRates(rates, interval, new Date(now)));
      prev = cur;
      prevAt = now;
    }
  } finally {
    process.off('SIGINT', onSig);
  }
  return 0;
}

function sleepUnless(ms: number, stopped: () => boolean): Promise<void> {
  return new Promise((resolve) => {
    const t = setInterval(() => stopped() && (clearInterval(t), clearTimeout(u), resolve()), 100);
    const u = setTimeout(() => (clearInterval(t), resolve()), ms);
  });
}

export interface Rates {
  ports: Array<{ name: string; state: string; rxPps: number; rxBps: number; txPps: number; txBps: number; dropsPerSec: number; drops: number; broken: boolean }>;
  threads: Array<{ thread: number; pps: number; cyclesPerPacket: number; busyPercent: number; sleeping: boolean }>;
}

/** Per-second rates between two samples; a port that appeared in between shows 0 rather than its lifetime total. */
export function computeRates(prev: StatsSample, cur: StatsSample, seconds: number): Rates {
  const dt = seconds > 0 ? seconds : 1;
  const before = new Map(prev.ports.map((p) => [p.name, p]));
  const rate = (a: Counter | undefined, b: Counter) => (a === undefined ? 0 : Math.max(0, num(b) - num(a)) / dt);
  const ports = cur.ports.map((p) => {
    const q = before.get(p.name);
    return {
      name: p.name,
      state: p.state,
      rxPps: rate(q?.rxPackets, p.rxPackets),
      rxBps: rate(q?.rxBytes, p.rxBytes) * 8,
      txPps: rate(q?.txPackets, p.txPackets),
      txBps: rate(q?.txBytes, p.txBytes) * 8,
      dropsPerSec: q ? Math.max(0, sumDrops(p.drops) - sumDrops(q.drops)) / dt : 0,
      drops: sumDrops(p.drops),
      broken: p.broken,
    };
  });
  const tBefore = new Map(prev.threads.map((t) => [t.thread, t]));
  const threads = cur.threads.map((t) => {
    const o = tBefore.get(t.thread);
    const dPkts = o ? num(t.packets) - num(o.packets) : 0;
    const dBusy = o ? num(t.busyCycles) - num(o.busyCycles) : 0;
    const dIdle = o ? num(t.idleCycles) - num(o.idleCycles) : 0;
    return {
      thread: t.thread,
      pps: Math.max(0, dPkts) / dt,
      // Over the interval when it carried packets; the lifetime figure otherwise, so an idle switch still says something.
      cyclesPerPacket: dPkts > 0 ? dBusy / dPkts : t.cyclesPerPacket,
      busyPercent: dBusy + dIdle > 0 ? (100 * dBusy) / (dBusy + dIdle) : 0,
      sleeping: t.sleeping,
    };
  });
  return { ports, threads };
}

export function renderRates(r: Rates, interval: number, at: Date): string {
  const head = `vhost-switch stats   every ${interval}s   ${at.toTimeString().slice(0, 8)}   (Ctrl-C to quit)\n\n`;
  const ports = r.ports.length
    ? table(
        ['PORT', 'STATE', 'RX PPS', 'RX BIT/S', 'TX PPS', 'TX BIT/S', 'DROPS/S', 'DROPS'],
        r.ports.map((p) => [p.name + (p.broken ? ' (broken)' : ''), p.state, human(p.rxPps), human(p.rxBps), human(p.txPps), human(p.txBps), human(p.dropsPerSec), human(p.drops)]),
      )
    : 'no ports';
  const threads = table(
    ['THREAD', 'PPS', 'CYCLES/PKT', 'BUSY %', 'STATE'],
    r.threads.map((t) => [t.thread, human(t.pps), t.cyclesPerPacket.toFixed(1), t.busyPercent.toFixed(1), t.sleeping ? 'sleeping' : 'polling']),
  );
  return `${head}${ports}\n\n${threads}\n`;
}

export function renderTotals(s: StatsSample): string {
  const ports = s.ports.length
    ? table(
        ['PORT', 'STATE', 'RX PKTS', 'RX BYTES', 'TX PKTS', 'TX BYTES', 'DROPS'],
        s.ports.map((p) => [p.name, p.state, human(num(p.rxPackets)), human(num(p.rxBytes)), human(num(p.txPackets)), human(num(p.txBytes)), human(sumDrops(p.drops))]),
      )
    : 'no ports';
  const threads = table(
    ['THREAD', 'PACKETS', 'CYCLES/PKT', 'BUSY %', 'STATE'],
    s.threads.map((t) => {
      const busy = num(t.busyCycles);
      const all = busy + num(t.idleCycles);
      return [t.thread, human(num(t.packets)), t.cyclesPerPacket.toFixed(1), (all > 0 ? (100 * busy) / all : 0).toFixed(1), t.sleeping ? 'sleeping' : 'polling'];
    }),
  );
  return `${ports}\n\n${threads}\n`;
}
