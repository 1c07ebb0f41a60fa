// `vhost-switch fdb list|add|del|flush`.
import { parseArgs } from 'node:util';
import type { FdbView } from '../switch.js';
import { exactlyOne, none, numeric, printJson, UsageError, type CliContext } from './context.js';
import { table } from './format.js';

export const FDB_USAGE = `usage:
  vhost-switch fdb list [--json]
  vhost-switch fdb add MAC --port NAME [--vlan N]
  vhost-switch fdb del MAC [--vlan N]
  vhost-switch fdb flush [--port NAME]`;

export async function fdbCommand(ctx: CliContext, args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  switch (sub) {
    case 'list':
    case 'ls':
    case 'show': {
      const { positionals } = parseArgs({ args: rest, allowPositionals: true, options: {} });
      none(positionals, FDB_USAGE);
      const { entries } = await ctx.client.call<{ entries: FdbView[] }>('GET', '/v1/fdb');
      if (ctx.json) printJson(ctx, entries);
      else if (entries.length === 0) ctx.out('forwarding table is empty\n');
      else {
        const rows = entries.map((e) => [e.mac, e.vlan, e.port, e.static ? 'static' : 'learned', e.static ? '-' : e.ageSeconds]);
        ctx.out(table(['MAC', 'VLAN', 'PORT', 'TYPE', 'AGE'], rows) + '\n');
      }
      return 0;
    }
    case 'add': {
      const { values, positionals } = parseArgs({
        args: rest,
        allowPositionals: true,
        options: { vlan: { type: 'string' }, port: { type: 'string' } },
      });
      const mac = exactlyOne(positionals, 'MAC', FDB_USAGE);
      if (values.port === undefined) throw new UsageError('missing --port NAME', FDB_USAGE);
      const body: Record<string, unknown> = { mac, port: values.port };
      if (values.vlan !== undefined) body.vlan = numeric(values.vlan);
      const entry = await ctx.client.call<{ mac: string; vlan: number; port: string }>('POST', '/v1/fdb', body);
      if (ctx.json) printJson(ctx, entry);
      else ctx.out(`static entry ${entry.mac} vlan ${entry.vlan} → ${entry.port}\n`);
      return 0;
    }
    case 'del':
    case 'delete':
    case 'rm': {
      const { values, positionals } = parseArgs({ args: rest, allowPositionals: true, options: { vlan: { type: 'string' } } });
      const mac = exactlyOne(positionals, 'MAC', FDB_USAGE);
      const vlan = values.vlan === undefined ? '' : `?vlan=${encodeURIComponent(values.vlan)}`;
      const gone = await ctx.client.call<{ mac: string; vlan: number; static: boolean }>('DELETE', `/v1/fdb/${encodeURIComponent(mac)}${vlan}`);
      if (ctx.json) printJson(ctx, gone);
      else ctx.out(`${gone.static ? 'static' : 'learned'} entry ${gone.mac} vlan ${gone.vlan} removed\n`);
      return 0;
    }
    case 'flush': {
      const { values, positionals } = parseArgs({ args: rest, allowPositionals: true, options: { port: { type: 'string' } } });
      none(positionals, FDB_USAGE);
      const q = values.port === undefined ? '' : `?port=${encodeURIComponent(values.port)}`;
      await ctx.client.call('DELETE', `/v1/fdb${q}`);
      if (ctx.json) printJson(ctx, { flushed: values.port ?? 'all' });
      else ctx.out(values.port === undefined ? 'forwarding table flushed\n' : `entries of port ${values.port} flushed\n`);
      return 0;
    }
    case undefined:
      throw new UsageError('missing fdb subcommand (list, add, del, flush)', FDB_USAGE);
    default:
      throw new UsageError(`unknown fdb subcommand "${sub}"`, FDB_USAGE);
  }
}
