// `vhost-switch fdb list|add|del|flush`.
import type { Command } from 'commander';
import type { FdbView } from '../switch/views.js';
import { numeric, printJson, type CliContext, type CliHost } from './context.js';
import { table } from './format.js';

export function registerFdb(program: Command, host: CliHost): void {
  const fdb = program.command('fdb').description('the forwarding table: learned and static entries');
  fdb.command('list').aliases(['ls', 'show']).description('every entry: MAC, VLAN, port, static or learned, age').action(host.action(list));
  fdb
    .command('add')
    .description('a static entry (stored); refused when the port does not carry the VLAN')
    .argument('<mac>')
    .requiredOption('--port <name>', 'the port the MAC is behind')
    .option('--vlan <n>', 'the VLAN (default 0)')
    .action(host.action(add));
  fdb
    .command('del')
    .aliases(['delete', 'rm'])
    .description("remove one entry (learned, or static from the API); the config's entries and a port's own MAC are refused")
    .argument('<mac>')
    .option('--vlan <n>', 'the VLAN (default 0)')
    .action(host.action(del));
  fdb.command('flush').description('forget learned entries (of one port); static entries stay').option('--port <name>', 'only this port\'s').action(host.action(flush));
}

async function list(ctx: CliContext): Promise<number> {
  const { entries } = await ctx.client.call<{ entries: FdbView[] }>('GET', '/v1/fdb');
  if (ctx.json) printJson(ctx, entries);
  else if (entries.length === 0) ctx.out('forwarding table is empty\n');
  else {
    const rows = entries.map((e) => [e.mac, e.vlan, e.port, e.static ? 'static' : 'learned', e.static ? '-' : e.ageSeconds]);
    ctx.out(table(['MAC', 'VLAN', 'PORT', 'TYPE', 'AGE'], rows) + '\n');
  }
  return 0;
}

async function add(ctx: CliContext, mac: string, o: { port: string; vlan?: string }): Promise<number> {
  const body: Record<string, unknown> = { mac, port: o.port };
  if (o.vlan !== undefined) body.vlan = numeric(o.vlan);
  const entry = await ctx.client.call<{ mac: string; vlan: number; port: string }>('POST', '/v1/fdb', body);
  if (ctx.json) printJson(ctx, entry);
  else ctx.out(`static entry ${entry.mac} vlan ${entry.vlan} → ${entry.port}\n`);
  return 0;
}

async function del(ctx: CliContext, mac: string, o: { vlan?: string }): Promise<number> {
  const vlan = o.vlan === undefined ? '' : `?vlan=${encodeURIComponent(o.vlan)}`;
  const gone = await ctx.client.call<{ mac: string; vlan: number; static: boolean }>('DELETE', `/v1/fdb/${encodeURIComponent(mac)}${vlan}`);
  if (ctx.json) printJson(ctx, gone);
  else ctx.out(`${gone.static ? 'static' : 'learned'} entry ${gone.mac} vlan ${gone.vlan} removed\n`);
  return 0;
}

async function flush(ctx: CliContext, o: { port?: string }): Promise<number> {
  const q = o.port === undefined ? '' : `?port=${encodeURIComponent(o.port)}`;
  await ctx.client.call('DELETE', `/v1/fdb${q}`);
  if (ctx.json) printJson(ctx, { flushed: o.port ?? 'all' });
  else ctx.out(o.port === undefined ? 'forwarding table flushed\n' : `entries of port ${o.port} flushed\n`);
  return 0;
}
