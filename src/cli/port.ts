// `vhost-switch port add|del|list|show`.
import { parseArgs } from 'node:util';
import { describeVlans, formatRangeList, MAX_VLAN, parseQueueAffinity } from '../config.js';
import type { PortInfo } from '../switch.js';
import { qemuPortArgs } from './attach.js';
import { exactlyOne, none, numeric, printJson, UsageError, type CliContext } from './context.js';
import { human, num, octal, sumDrops, table } from './format.js';

export const PORT_USAGE = `usage:
  vhost-switch port add NAME [--mode server|client] [--socket PATH] [--queues N] [--vlan N] [--mtu N]
                             [--mac MAC] [--offloads] [--socket-mode 0660] [--socket-owner USER] [--socket-group GROUP]
                             [--port-security [--allowed-mac MAC[,MAC]]... [--allowed-ip ADDR[/LEN][,...]]...]
  vhost-switch port add NAME --type nic --iface IFACE [--queues N] [--vlan N] [--mtu N]
                             [--backend auto|af_xdp|af_packet]
  vhost-switch port add NAME --type tap --iface TAPNAME [--vlan N]
    every type: [--vlan-mode access|trunk | --trunk] [--allowed-vlans 100,200-210]
                [--may-exist] (a port of that name with the same settings is not an error)
                [--queue-affinity QUEUE:THREAD[,...]] (pin queues to poll threads)
                (a trunk's --vlan is its native, untagged VLAN; --allowed-vlans defaults to all)
    (--port-security needs --mac; every port type takes it)
  vhost-switch port set NAME [--vlan N] [--vlan-mode access|trunk] [--allowed-vlans LIST] [--mac MAC]
                             [--port-security|--no-port-security] [--allowed-mac MAC,...] [--allowed-ip ADDR,...]
                             [--queue-affinity Q:T,...] [--offloads|--no-offloads] [--mtu N] [--restart]
    (live: VLANs, port security, MAC, queue affinity; offloads and MTU need --restart: the guest reconnects)
  vhost-switch port del NAME
  vhost-switch port list [--json]
  vhost-switch port show NAME [--json]`;

/** ", AF_XDP (native XDP)" / ", AF_PACKET" for nic ports; "" for others. */
/** Repeated and comma-separated values of one option, as one list ("a,b" --x c → [a, b, c]). */
function listOption(values: string[] | undefined): string[] | undefined {
  return values?.flatMap((v) => v.split(',')).map((v) => v.trim()).filter((v) => v !== '');
}

function affinityOption(text: string): Record<string, number> {
  try {
    return parseQueueAffinity(text);
  } catch (err) {
    throw new UsageError(`--queue-affinity: ${(err as Error).message} (e.g. 0:1,1:0)`, PORT_USAGE);
  }
}

/** "on (MACs 52:54:00:00:00:01; addresses 169.254.1.2, fe80::1)" for port show. */
function portSecurityText(port: PortInfo): string {
  if (!port.portSecurity) return 'off';
  const ips = port.allowedIps.length ? port.allowedIps.join(', ') : 'any (only the source MAC is checked)';
  return `on (MACs ${[port.mac, ...port.allowedMacs].join(', ')}; addresses ${ips})`;
}

function backendText(port: PortInfo): string {
  if (port.activeBackend === 'af_xdp') return `, AF_XDP (${port.xdpMode ?? '?'} XDP)`;
  if (port.activeBackend === 'af_packet') return ', AF_PACKET';
  return '';
}

export async function portCommand(ctx: CliContext, args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  switch (sub) {
    case 'add':
      return add(ctx, rest);
    case 'del':
    case 'delete':
    case 'rm':
      return del(ctx, rest);
    case 'set':
      return set(ctx, rest);
    case 'list':
    case 'ls':
      return list(ctx, rest);
    case 'show':
      return show(ctx, rest);
    case undefined:
      throw new UsageError('missing port subcommand (add, set, del, list, show)', PORT_USAGE);
    default:
      throw new UsageError(`unknown port subcommand "${sub}"`, PORT_USAGE);
  }
}

async function add(ctx: CliContext, args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      type: { type: 'string' },
      iface: { type: 'string' },
      trunk: { type: 'boolean' },
      'vlan-mode': { type: 'string' },
      'allowed-vlans': { type: 'string' },
      backend: { type: 'string' },
      mode: { type: 'string' },
      socket: { type: 'string' },
      queues: { type: 'string' },
      vlan: { type: 'string' },
      mtu: { type: 'string' },
      mac: { type: 'string' },
      offloads: { type: 'boolean' },
      'port-security': { type: 'boolean' },
      'allowed-mac': { type: 'string', multiple: true },
      'allowed-ip': { type: 'string', multiple: true },
      'socket-mode': { type: 'string' },
      'socket-owner': { type: 'string' },
      'socket-group': { type: 'string' },
      'may-exist': { type: 'boolean' },
      'queue-affinity': { type: 'string' },
    },
  });
  const name = exactlyOne(positionals, 'port NAME', PORT_USAGE);
  const body: Record<string, unknown> = {
    name,
    type: values.type ?? 'vhost-user',
    iface: values.iface,
    trunk: values.trunk,
    vlanMode: values['vlan-mode'],
    allowedVlans: values['allowed-vlans'], // a string: the schema reads "100,200-210"
    backend: values.backend,
    mode: values.mode,
    socket: values.socket,
    queues: numeric(values.queues),
    vlan: numeric(values.vlan),
    mtu: numeric(values.mtu),
    mac: values.mac,
    offloads: values.offloads,
    portSecurity: values['port-security'],
    allowedMacs: listOption(values['allowed-mac']),
    allowedIps: listOption(values['allowed-ip']),
    socketMode: values['socket-mode'], // a string: "0600" is octal, not six hundred
    socketOwner: numeric(values['socket-owner']),
    socketGroup: numeric(values['socket-group']),
    queueAffinity: values['queue-affinity'] === undefined ? undefined : affinityOption(values['queue-affinity']),
  };
  for (const k of Object.keys(body)) if (body[k] === undefined) delete body[k];
  const port = await ctx.client.call<PortInfo>('POST', values['may-exist'] ? '/v1/ports?mayExist=true' : '/v1/ports', body);
  if (ctx.json) {
    printJson(ctx, port);
    return 0;
  }
  if (port.type !== 'vhost-user') {
    ctx.out(`port ${port.name} added (id ${port.id}, ${port.type} on ${port.iface}${backendText(port)}, ${describeVlans(port)})\n`);
    if (port.backendNote) ctx.out(`  ${port.backendNote}\n`);
    return 0;
  }
  ctx.out(`port ${port.name} added (id ${port.id}, ${port.mode} mode, socket ${port.socket}, ${describeVlans(port)})\n`);
  ctx.out(`attach QEMU with:\n  ${qemuPortArgs(port).join(' \\\n  ')}\n`);
  return 0;
}

async function set(ctx: CliContext, args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    allowNegative: true,
    options: {
      vlan: { type: 'string' },
      'vlan-mode': { type: 'string' },
      trunk: { type: 'boolean' },
      'allowed-vlans': { type: 'string' },
      mac: { type: 'string' },
      'port-security': { type: 'boolean' },
      'allowed-mac': { type: 'string', multiple: true },
      'allowed-ip': { type: 'string', multiple: true },
      'queue-affinity': { type: 'string' },
      offloads: { type: 'boolean' },
      mtu: { type: 'string' },
      restart: { type: 'boolean' },
    },
  });
  const name = exactlyOne(positionals, 'port NAME', PORT_USAGE);
  const body: Record<string, unknown> = {
    vlan: numeric(values.vlan),
    vlanMode: values['vlan-mode'],
    trunk: values.trunk,
    allowedVlans: values['allowed-vlans'],
    mac: values.mac,
    portSecurity: values['port-security'],
    allowedMacs: listOption(values['allowed-mac']),
    allowedIps: listOption(values['allowed-ip']),
    queueAffinity: values['queue-affinity'] === undefined ? undefined : values['queue-affinity'] === '' ? null : affinityOption(values['queue-affinity']),
    offloads: values.offloads,
    mtu: numeric(values.mtu),
  };
  for (const k of Object.keys(body)) if (body[k] === undefined) delete body[k];
  if (Object.keys(body).length === 0) throw new UsageError('nothing to change: give at least one setting', PORT_USAGE);
  const r = await ctx.client.call<{ port: PortInfo; live: string[]; restarted: string[] }>(
    'PATCH',
    `/v1/ports/${encodeURIComponent(name)}${values.restart ? '?restart=true' : ''}`,
    body,
  );
  if (ctx.json) printJson(ctx, r);
  else if (r.live.length) ctx.out(`port ${name}: ${r.live.join(', ')} changed live (the guest kept its link)\n`);
  else if (r.restarted.length) ctx.out(`port ${name}: ${r.restarted.join(', ')} changed; the port came up again (its guest reconnects)\n`);
  else ctx.out(`port ${name}: nothing changed\n`);
  return 0;
}

async function del(ctx: CliContext, args: string[]): Promise<number> {
  const { positionals } = parseArgs({ args, allowPositionals: true, options: {} });
  const name = exactlyOne(positionals, 'port NAME', PORT_USAGE);
  await ctx.client.call('DELETE', `/v1/ports/${encodeURIComponent(name)}`);
  if (ctx.json) printJson(ctx, { removed: name });
  else ctx.out(`port ${name} removed\n`);
  return 0;
}

async function list(ctx: CliContext, args: string[]): Promise<number> {
  const { positionals } = parseArgs({ args, allowPositionals: true, options: {} });
  none(positionals, PORT_USAGE);
  const { ports } = await ctx.client.call<{ ports: PortInfo[] }>('GET', '/v1/ports');
  if (ctx.json) {
    printJson(ctx, ports);
    return 0;
  }
  if (ports.length === 0) {
    ctx.out('no ports\n');
    return 0;
  }
  ctx.out(
    table(
      ['NAME', 'ID', 'TYPE', 'STATE', 'QUEUES', 'VLAN', 'MTU', 'MAC', 'ORIGIN', 'SOCKET/IFACE'],
      ports.map((p) => [p.name, p.id, typeColumn(p), p.state, p.queues, vlanColumn(p), p.mtu, p.mac ?? '-', p.origin, p.type === 'vhost-user' ? p.socket : (p.iface ?? '-')]),
    ) + '\n',
  );
  return 0;
}

/** The TYPE column of `port list`: "vhost-user:server", "nic:af_xdp", "tap". */
function typeColumn(p: PortInfo): string {
  if (p.type === 'vhost-user') return `vhost-user:${p.mode}`;
  if (p.type === 'nic') return `nic:${p.activeBackend ?? p.backend ?? 'auto'}`;
  return p.type;
}

/** The VLAN column of `port list`: "100" for an access port, "0+T:100,200-210" for a trunk (native + tagged). */
function vlanColumn(p: PortInfo): string {
  if (p.vlanMode !== 'trunk') return String(p.vlan);
  return `${p.vlan}+T:${p.allowedVlans ? formatRangeList(p.allowedVlans) : 'all'}`;
}

interface PortStatsView {
  rxPackets: number | string;
  rxBytes: number | string;
  txPackets: number | string;
  txBytes: number | string;
  drops: Record<string, number | string>;
  broken: boolean;
  queues: Array<{ index: number; started: boolean; enabled: boolean; packets: number | string; bytes: number | string }>;
}

async function show(ctx: CliContext, args: string[]): Promise<number> {
  const { positionals } = parseArgs({ args, allowPositionals: true, options: {} });
  const name = exactlyOne(positionals, 'port NAME', PORT_USAGE);
  const enc = encodeURIComponent(name);
  const port = await ctx.client.call<PortInfo>('GET', `/v1/ports/${enc}`);
  const stats = await ctx.client.call<PortStatsView>('GET', `/v1/ports/${enc}/stats`);
  if (ctx.json) {
    printJson(ctx, { ...port, stats });
    return 0;
  }
  const rows: Array<[string, string | number]> = [
    ['name', port.name],
    ['id', port.id],
    ['type', port.type],
    ...(port.activeBackend ? [['backend', backendText(port).slice(2) + (port.backendNote ? ` (${port.backendNote})` : '')] as [string, string]] : []),
    ...(port.type === 'vhost-user'
      ? ([
          ['mode', `${port.mode} (${port.mode === 'server' ? 'the switch listens' : 'the switch connects'})`],
          ['socket', port.socket],
        ] as Array<[string, string]>)
      : ([['iface', port.iface ?? '-']] as Array<[string, string]>)),
    ['state', port.state],
    ['origin', port.origin],
    ['queues', port.queues],
    ['vlan mode', port.vlanMode],
    ['vlan', port.vlanMode === 'trunk' ? `${port.vlan} (native, untagged)` : port.vlan === 0 ? '0 (untagged)' : port.vlan],
    ...(port.vlanMode === 'trunk' ? [['allowed vlans', port.allowedVlans ? formatRangeList(port.allowedVlans) : `all (1-${MAX_VLAN})`] as [string, string]] : []),
    ['mtu', port.mtu],
    ['mac', port.mac ?? '-'],
    ['offloads', port.offloads ? 'on' : 'off'],
    ...(port.queueAffinity ? [['queue affinity', Object.entries(port.queueAffinity).map(([q, t]) => `${q}:${t}`).join(',')] as [string, string]] : []),
    ['port security', portSecurityText(port)],
    ...(port.type === 'vhost-user' ? [['socket mode', `${octal(port.socketMode)} owner ${port.socketOwner ?? '-'} group ${port.socketGroup ?? '-'}`] as [string, string]] : []),
    ['protocol errors', port.protocolErrors],
    ...(port.memRegions !== undefined ? [['memory regions', port.memRegions] as [string, number]] : []),
    ...(port.dirtyLogging ? [['migration', 'dirty logging on'] as [string, string]] : []),
    ['rx', `${human(num(stats.rxPackets))} packets, ${human(num(stats.rxBytes))} bytes`],
    ['tx', `${human(num(stats.txPackets))} packets, ${human(num(stats.txBytes))} bytes`],
    ['drops', `${sumDrops(stats.drops)}${Object.keys(stats.drops).length ? ' (' + Object.entries(stats.drops).map(([k, v]) => `${k} ${v}`).join(', ') + ')' : ''}`],
    ['broken', stats.broken ? 'yes' : 'no'],
  ];
  const w = Math.max(...rows.map(([k]) => k.length));
  ctx.out(rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n') + '\n');
  if (stats.queues.length) {
    ctx.out(
      '\n' +
        table(
          ['QUEUE', 'STARTED', 'ENABLED', 'PACKETS', 'BYTES'],
          stats.queues.map((q) => [q.index, q.started ? 'yes' : 'no', q.enabled ? 'yes' : 'no', human(num(q.packets)), human(num(q.bytes))]),
        ) +
        '\n',
    );
  }
  return 0;
}
