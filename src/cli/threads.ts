// `vhost-switch threads`: each poll thread, its CPU, the queues it polls and its load since `stats clear`, as
// `ovs-appctl dpif-netdev/pmd-rxq-show` and `pmd-stats-show` show them for OVS-DPDK.
import type { Command } from 'commander';
import { printJson, type CliContext, type CliHost } from './context.js';
import { human, num, table } from './format.js';

interface ThreadRow {
  thread: number;
  cpu: number | null;
  sleeping: boolean;
  busyPercent: number;
  packets: number | string;
  cyclesPerPacket: number;
  queues: Array<{ port: string; queue: number; pinned: boolean }>;
}

export function registerThreads(program: Command, host: CliHost): void {
  program.command('threads').description('poll threads: CPU, state, busy %, packets, cycles/packet, the queues each polls').action(host.action(threadsCommand));
}

async function threadsCommand(ctx: CliContext): Promise<number> {
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
