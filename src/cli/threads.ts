// `vhost-switch threads`: each poll thread, its CPU, the queues it polls and its load since `stats clear`, as
// `ovs-appctl dpif-netdev/pmd-rxq-show` and `pmd-stats-show` show them for OVS-DPDK.
import { parseArgs } from 'node:util';
import { none, printJson, type CliContext } from './context.js';
import { human, num, table } from './format.js';

export const THREADS_USAGE = `usage:
  vhost-switch threads [--json]     poll threads: CPU, state, busy %, packets, cycles/packet, queues
  vhost-switch stats clear          start the threads' counters from zero`;

interface ThreadRow {
  thread: number;
  cpu: number | null;
  sleeping: boolean;
  busyPercent: number;
  packets: number | string;
  cyclesPerPacket: number;
  queues: Array<{ port: string; queue: number; pinned: boolean }>;
}

export async function threadsCommand(ctx: CliContext, args: string[]): Promise<number> {
  const { positionals } = parseArgs({ args, allowPositionals: true, options: {} });
  none(positionals, THREADS_USAGE);
  const { threads } = await ctx.client.call<{ threads: ThreadRow[] }>('GET', '/v1/threads');
  if (ctx.json) {
    printJson(ctx, threads);
    return 0;
  }
  // A pinned queue is marked with '*', as pmd-rxq-show marks "pinned" queues.
  const queues = (t: ThreadRow) => t.queues.map((q) => `${q.port}:${q.queue}${q.pinned ? '*' : ''}`).join(',') || '-';
  ctx.out(
    table(
      ['THREAD', 'CPU', 'STATE', 'BUSY%', 'PACKETS', 'CYC/PKT', 'QUEUES'],
      threads.map((t) => [t.thread, t.cpu ?? '-', t.sleeping ? 'sleeping' : 'polling', t.busyPercent.toFixed(1), human(num(t.packets)), Math.round(t.cyclesPerPacket), queues(t)]),
    ) + '\n(queues as PORT:QUEUE; * = pinned by queueAffinity)\n',
  );
  return 0;
}
