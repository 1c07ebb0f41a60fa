// `vhost-switch port add|set|del|list|show`.
import { Option, type Command } from 'commander';
import { describeVlans, formatRangeList, MAX_VLAN, parseQueueAffinity } from '../config.js';
import type { PortInfo } from '../switch/port.js';
import { qemuPortArgs } from './attach.js';
import { collectList, numeric, printJson, usage, type CliContext, type CliHost } from './context.js';
import { human, num, octal, sumDrops, table } from './format.js';

function affinityOption(cmd: Command, text: string): Record<string, number> {
  try {
    return parseQueueAffinity(text);
  } catch (err) {
    throw usage(cmd, `--queue-affinity: ${(err as Error).message} (e.g. 0:1,1:0)`);
  }
}

/** "on (MACs 52:54:00:00:00:01; addresses 169.254.1.2, fe80::1)" for port show. */
function portSecurityText(port: PortInfo): string {
  if (!port.portSecurity) return 'off';
  const ips = port.allowedIps.length ? port.allowedIps.join(', ') : 'any (only the source MAC is checked)';
  return `on (MACs ${[port.mac, ...port.allowedMacs].join(', ')}; addresses ${ips})`;
}

/** ", AF_XDP (native XDP)" / ", AF_PACKET" for nic ports; "" for others. */
function backendText(port: PortInfo): string {
  if (port.activeBackend === 'af_xdp') return `, AF_XDP (${port.xdpMode ?? '?'} XDP)`;
  if (port.activeBackend === 'af_packet') return ', AF_PACKET';
  return '';
}

/** The VLAN options every port type takes (add and set). */
function vlanOptions(c: Command): Command {
  return c
    .option('--vlan <n>', 'access port: its VLAN (0 = untagged); trunk: the native, untagged VLAN')
    .addOption(new Option('--vlan-mode <mode>', 'access ports drop tagged frames; trunks carry --allowed-vlans tagged').choices(['access', 'trunk']))
    .option('--trunk', 'the same as --vlan-mode trunk')
    .option('--allowed-vlans <list>', 'trunks: the tagged VLANs carried, e.g. 100,200-210 (default all)');
}

function securityOptions(c: Command): Command {
  return c
    .option('--mac <mac>', "the guest's MAC: a static FDB entry, and port security's source MAC")
    .option('--allowed-mac <macs>', 'port security: more source MACs (repeat, or comma-separated)', collectList)
    .option('--allowed-ip <addrs>', 'port security: addresses or prefixes the port may use (repeat, or comma-separated)', collectList)
    .option('--queue-affinity <q:t,...>', 'pin queue (pair) Q to poll thread T, e.g. 0:1,1:0');
}

export function registerPort(program: Command, host: CliHost): void {
  const port = program.command('port').description('add, change, list, show and remove ports');
  const add = port
    .command('add')
    .description('create a port (stored in state.json); prints how to attach QEMU')
    .argument('<name>', 'port name: 1-64 of A-Z a-z 0-9 _ . -')
    .addOption(new Option('--type <type>', 'vhost-user (a guest), nic (a host interface) or tap (a tap device the switch creates)').choices(['vhost-user', 'nic', 'tap']))
    .option('--iface <name>', 'nic and tap: the interface')
    .addOption(new Option('--backend <backend>', 'nic: auto (AF_XDP where it can, else AF_PACKET) or forced').choices(['auto', 'af_xdp', 'af_packet']))
    .addOption(new Option('--mode <mode>', "vhost-user: the switch's side (server: the switch listens, QEMU connects)").choices(['server', 'client']))
    .option('--socket <path>', 'vhost-user: socket path (default RUN_DIR/NAME.sock)')
    .option('--queues <n>', 'queue pairs (nic: AF_PACKET fanout sockets)')
    .option('--mtu <n>', 'largest frame without the Ethernet header')
    .option('--offloads', 'offer checksum/TSO offloads to the guest')
    .option('--port-security', 'drop frames from other MACs and addresses (needs --mac)')
    .option('--socket-mode <mode>', 'vhost-user server socket permissions, octal (default 0660)')
    .option('--socket-owner <user>', 'vhost-user server socket owner')
    .option('--socket-group <group>', 'vhost-user server socket group')
    .option('--may-exist', 'no error when a port of that name already runs with the same settings');
  vlanOptions(add);
  securityOptions(add);
  add.action(host.action(addPort));
  const set = port
    .command('set')
    .description('change a running port: VLANs, port security, MAC and queue affinity live; offloads and MTU with --restart')
    .argument('<name>')
    .option('--port-security', 'turn port security on')
    .option('--no-port-security', 'turn port security off')
    .option('--offloads', 'offer offloads (needs --restart)')
    .option('--no-offloads', 'stop offering offloads (needs --restart)')
    .option('--mtu <n>', 'MTU (needs --restart)')
    .option('--restart', 'bring the port up again for changes the frontend negotiated (its guest reconnects)');
  vlanOptions(set);
  securityOptions(set);
  set.action(host.action(setPort));
  port.command('del').aliases(['delete', 'rm']).description('remove a port and its socket').argument('<name>').action(host.action(delPort));
  port.command('list').alias('ls').description('all ports: type, state, queues, VLAN, MTU, MAC, origin, socket or interface').action(host.action(listPorts));
  port.command('show').description("one port's settings and counters").argument('<name>').action(host.action(showPort));
}

type Opts = Record<string, string | boolean | string[] | undefined>;

async function addPort(ctx: CliContext, name: string, o: Opts, cmd: Command): Promise<number> {
  const str = (k: string) => o[k] as string | undefined;
  const body: Record<string, unknown> = {
    name,
    type: str('type') ?? 'vhost-user',
    iface: str('iface'),
    trunk: o.trunk,
    vlanMode: str('vlanMode'),
    allowedVlans: str('allowedVlans'), // a string: the schema reads "100,200-210"
    backend: str('backend'),
    mode: str('mode'),
    socket: str('socket'),
    queues: numeric(str('queues')),
    vlan: numeric(str('vlan')),
    mtu: numeric(str('mtu')),
    mac: str('mac'),
    offloads: o.offloads,
    portSecurity: o.portSecurity,
    allowedMacs: o.allowedMac,
    allowedIps: o.allowedIp,
    socketMode: str('socketMode'), // a string: "0600" is octal, not six hundred
    socketOwner: numeric(str('socketOwner')),
    socketGroup: numeric(str('socketGroup')),
    queueAffinity: str('queueAffinity') === undefined ? undefined : affinityOption(cmd, str('queueAffinity')!),
  };
  for (const k of Object.keys(body)) if (body[k] === undefined) delete body[k];
  const port = await ctx.client.call<PortInfo>('POST', o.mayExist ? '/v1/ports?mayExist=true' : '/v1/ports', body);
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

async function setPort(ctx: CliContext, name: string, o: Opts, cmd: Command): Promise<number> {
  const str = (k: string) => o[k] as string | undefined;
  const affinity = str('queueAffinity');
  const body: Record<string, unknown> = {
    vlan: numeric(str('vlan')),
    vlanMode: str('vlanMode'),
    trunk: o.trunk,
    allowedVlans: str('allowedVlans'),
    mac: str('mac'),
    portSecurity: o.portSecurity,
    allowedMacs: o.allowedMac,
    allowedIps: o.allowedIp,
    queueAffinity: affinity === undefined ? undefined : affinity === '' ? null : affinityOption(cmd, affinity),
    offloads: o.offloads,
    mtu: numeric(str('mtu')),
  };
  for (const k of Object.keys(body)) if (body[k] === undefined) delete body[k];
  if (Object.keys(body).length === 0) throw usage(cmd, 'nothing to change: give at least one setting');
  const r = await ctx.client.call<{ port: PortInfo; live: string[]; restarted: string[] }>(
    'PATCH',
    `/v1/ports/${encodeURIComponent(name)}${o.restart ? '?restart=true' : ''}`,
    body,
  );
  if (ctx.json) printJson(ctx, r);
  else if (r.live.length) ctx.out(`port ${name}: ${r.live.join(', ')} changed live (the guest kept its link)\n`);
  else if (r.restarted.length) ctx.out(`port ${name}: ${r.restarted.join(', ')} changed; the port came up again (its guest reconnects)\n`);
  else ctx.out(`port ${name}: nothing changed\n`);
  return 0;
}

async function delPort(ctx: CliContext, name: string): Promise<number> {
  await ctx.client.call('DELETE', `/v1/ports/${encodeURIComponent(name)}`);
  if (ctx.json) printJson(ctx, { removed: name });
  else ctx.out(`port ${name} removed\n`);
  return 0;
}

async function listPorts(ctx: CliContext): Promise<number> {
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

async function showPort(ctx: CliContext, name: string): Promise<number> {
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
