// `vhost-switch COMMAND ...`: the daemon (`run`) and the client commands that drive it over the control socket.
// Exit status: 0 ok, 1 the operation failed (the daemon's message is printed), 2 wrong arguments.
import { parseArgs } from 'node:util';
import { levelFromEnv, type LogFormat } from '../log.js';
import { parseCpuList } from '../config.js';
import { resolveControlSocket, resolveRunDir } from '../runDir.js';
import { ApiClient, ApiError, UnreachableError } from './client.js';
import { UsageError, printJson, type CliContext } from './context.js';
import { vifCommand, vifUsage } from './attach.js';
import { fdbCommand, FDB_USAGE } from './fdb.js';
import { portCommand, PORT_USAGE } from './port.js';
import { statsCommand, STATS_USAGE } from './stats.js';
import { threadsCommand, THREADS_USAGE } from './threads.js';
import { captureCommand, CAPTURE_USAGE } from './capture.js';

export const USAGE = `vhost-switch: a userspace virtual switch for vhost-user ports (QEMU, DPDK virtio-user)

usage: vhost-switch COMMAND [options]
       vhost-switch --version

daemon:
  run [--config FILE] [--run-dir DIR] [--state-dir DIR] [--threads N] [--cpus LIST] [--log-level L] [--log-format logfmt|json]
      [--metrics-listen [HOST:]PORT]
                              Prometheus over TCP at /metrics (HOST 127.0.0.1 unless given); also GET /v1/metrics
                              SIGHUP reloads the config file; SIGINT/SIGTERM stop and remove the sockets
                              config: --config, else $VHOST_SWITCH_CONFIG, else /etc/vhost-switch/config.json
                                if it exists, else the embedded default (two server ports, vhu0 and vhu1)
                              run dir (sockets): --run-dir, else $VHOST_SWITCH_RUN_DIR, else /run/vhost-switch
                                (root), $XDG_RUNTIME_DIR/vhost-switch, ./run
                              state (state.json): --state-dir, else $VHOST_SWITCH_STATE_DIR, else the config's
                                switch.stateDir, else /var/lib/vhost-switch with the system run dir, else the run dir
                              under systemd (Type=notify): READY=1, RELOADING=1, STOPPING=1, WATCHDOG=1 pings
                                while the poll threads make progress (systemd/vhost-switch.service)

client (talk to the daemon over RUN_DIR/control.sock; pick another with --control PATH or --run-dir DIR):
  port add NAME [--mode server|client] [--socket PATH] [--queues N] [--vlan N] [--mtu N] [--mac MAC]
  port del NAME
  port list | port show NAME
  stats [--watch [--interval S]] | stats clear
  threads                     poll threads: CPU, busy %, packets, cycles/packet, the queues each polls
  capture PORT -w FILE|- [--count N] [--direction in|out|both] [--snaplen N]
                              the port's frames as a pcap file (tcpdump, tshark, Wireshark)
  fdb list | fdb add MAC --port NAME [--vlan N] | fdb del MAC [--vlan N] | fdb flush [--port NAME]
  vif PORT --format libvirt|qemu|nova|json [--accel kvm|tcg] [--qemu-version X.Y.Z] [...]
  version
  doctor [--socket-dir DIR] [--qemu PATH]
  gen ...                     traffic generator (see \`vhost-switch gen --help\`)

--json on read commands prints machine-readable output. Docs: docs/cli.md, API: docs/openapi.yaml.
`;

const GLOBAL = {
  control: { type: 'string' },
  'run-dir': { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

export interface MainIo {
  out?: (text: string) => void;
  err?: (text: string) => void;
}

const VALUED_GLOBALS = new Set(['--control', '--run-dir']);

/** The command is the first word that is neither a global option nor its value. */
function findCommand(argv: string[]): { command?: string; before: string[]; after: string[] } {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (VALUED_GLOBALS.has(a)) {
      i++;
      continue;
    }
    if (a.startsWith('-')) continue;
    return { command: a, before: argv.slice(0, i), after: argv.slice(i + 1) };
  }
  return { before: argv, after: [] };
}

// Global options may sit anywhere on the line; they are taken out before the command's own parser runs.
function splitGlobals(args: string[]): { globals: { control?: string; runDir?: string; json: boolean; help: boolean }; rest: string[] } {
  const rest: string[] = [];
  const g = { control: undefined as string | undefined, runDir: undefined as string | undefined, json: false, help: false };
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const [flag, inline] = a.startsWith('--') && a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    const value = () => {
      if (inline !== undefined) return inline;
      const v = args[++i];
      if (v === undefined) throw new UsageError(`option ${flag} needs a value`);
      return v;
    };
    if (flag === '--control') g.control = value();
    else if (flag === '--run-dir') g.runDir = value();
    else if (a === '--json') g.json = true;
    else if (a === '--help' || a === '-h') g.help = true;
    else if (a === '--') {
      rest.push(...args.slice(i));
      break;
    } else rest.push(a);
  }
  return { globals: g, rest };
}

export async function main(argv: string[], io: MainIo = {}): Promise<number> {
  const out = io.out ?? ((t: string) => void process.stdout.write(t));
  const err = io.err ?? ((t: string) => void process.stderr.write(t));
  try {
    const { command, before, after } = findCommand(argv);
    if (command === undefined && (before.includes('--version') || before.includes('-V'))) {
      const { packageVersion } = await import('../daemon.js');
      out(`vhost-switch ${await packageVersion()}\n`);
      return 0;
    }
    if (command === undefined || command === 'help') {
      out(USAGE);
      return command === 'help' || before.includes('--help') || before.includes('-h') ? 0 : 2;
    }
    // `run` and `gen` parse their own options; a --run-dir given before `run` still counts.
    if (command === 'run') return await runCommand([...before, ...after]);
    if (command === 'gen') return await genCommand(after);
    const { globals, rest } = splitGlobals([...before, ...after]);
    const socket = resolveControlSocket(globals.control, { flag: globals.runDir });
    const ctx: CliContext = { client: new ApiClient(socket), json: globals.json, out, err };
    switch (command) {
      case 'port':
        if (globals.help) return (out(PORT_USAGE + '\n'), 0);
        return await portCommand(ctx, rest);
      case 'fdb':
        if (globals.help) return (out(FDB_USAGE + '\n'), 0);
        return await fdbCommand(ctx, rest);
      case 'stats':
        if (globals.help) return (out(STATS_USAGE + '\n'), 0);
        return await statsCommand(ctx, rest);
      case 'capture':
        if (globals.help) return (out(CAPTURE_USAGE + '\n'), 0);
        return await captureCommand(ctx, rest);
      case 'threads':
        if (globals.help) return (out(THREADS_USAGE + '\n'), 0);
        return await threadsCommand(ctx, rest);
      case 'vif':
        if (globals.help) return (out((await vifUsage()) + '\n'), 0);
        return await vifCommand(ctx, rest);
      case 'version':
        return await versionCommand(ctx);
      case 'doctor':
        return await doctorCommand(ctx, rest, globals.runDir);
      default:
        throw new UsageError(`unknown command "${command}"`);
    }
  } catch (e) {
    return reportError(e, err, argv.includes('--json'));
  }
}

function reportError(e: unknown, err: (t: string) => void, json: boolean): number {
  if (e instanceof UsageError || (e as NodeJS.ErrnoException)?.code?.startsWith?.('ERR_PARSE_ARGS')) {
    err(`vhost-switch: ${(e as Error).message}\n${(e as UsageError).usage ?? 'run `vhost-switch help` for usage'}\n`);
    return 2;
  }
  if (e instanceof ApiError) {
    err(json && e.body ? JSON.stringify(e.body) + '\n' : `vhost-switch: ${e.message} (HTTP ${e.status})\n`);
    return 1;
  }
  if (e instanceof UnreachableError) {
    err(`vhost-switch: ${e.message}\n`);
    return 1;
  }
  err(`vhost-switch: ${(e as Error)?.message ?? String(e)}\n`);
  return 1;
}

async function runCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      config: { type: 'string', short: 'c' },
      'run-dir': { type: 'string' },
      'state-dir': { type: 'string' },
      threads: { type: 'string' },
      cpus: { type: 'string' },
      'log-level': { type: 'string' },
      'log-format': { type: 'string' },
      'metrics-listen': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (positionals.length) throw new UsageError(`unexpected argument "${positionals[0]}"`);
  let threads: number | undefined;
  if (values.threads !== undefined) {
    threads = Number(values.threads);
    if (!/^\d+$/.test(values.threads) || threads < 1 || threads > 256) throw new UsageError('--threads must be an integer 1-256');
  }
  let cpus: number[] | undefined;
  try {
    cpus = values.cpus === undefined ? undefined : parseCpuList(values.cpus);
  } catch (e) {
    throw new UsageError(`--cpus: ${(e as Error).message}`);
  }
  let logLevel;
  try {
    logLevel = levelFromEnv(values['log-level']);
  } catch (e) {
    throw new UsageError(`--log-level: ${(e as Error).message}`);
  }
  const logFormat = (values['log-format'] ?? process.env.VHOST_SWITCH_LOG_FORMAT ?? 'logfmt') as LogFormat;
  if (logFormat !== 'logfmt' && logFormat !== 'json') throw new UsageError('--log-format must be logfmt or json');
  // The daemon's code is loaded only for `run`, keeping client commands quick to start.
  const { runDaemon } = await import('../daemon.js');
  const { resolveConfigFile } = await import('../runDir.js');
  return runDaemon({
    configFile: await resolveConfigFile(values.config),
    runDir: values['run-dir'],
    stateDir: values['state-dir'],
    metricsListen: values['metrics-listen'],
    threads,
    cpus,
    logLevel,
    logFormat,
  });
}

async function versionCommand(ctx: CliContext): Promise<number> {
  const { packageVersion } = await import('../daemon.js');
  const cli = await packageVersion();
  let daemon: { version: string; features: string[] } | undefined;
  let reason = '';
  try {
    daemon = await ctx.client.call('GET', '/v1/version');
  } catch (e) {
    reason = (e as Error).message;
  }
  if (ctx.json) printJson(ctx, { cli, daemon: daemon ?? null });
  else ctx.out(`cli     ${cli}\ndaemon  ${daemon ? `${daemon.version} (${daemon.features.join(', ')})` : `unreachable: ${reason}`}\n`);
  return 0;
}

async function doctorCommand(ctx: CliContext, args: string[], runDirFlag: string | undefined): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { 'socket-dir': { type: 'string' }, qemu: { type: 'string' } },
  });
  if (positionals.length) throw new UsageError(`unexpected argument "${positionals[0]}"`, 'usage: vhost-switch doctor [--run-dir DIR] [--socket-dir DIR] [--qemu PATH] [--json]');
  const { runDoctor } = await import('../doctor.js');
  const r = await runDoctor({ runDir: resolveRunDir({ flag: runDirFlag }), socketDir: values['socket-dir'], qemuBinary: values.qemu });
  if (ctx.json) printJson(ctx, { ok: r.ok, checks: r.checks });
  else ctx.out(r.report.endsWith('\n') ? r.report : r.report + '\n');
  return r.ok ? 0 : 1;
}

/** `gen` is the traffic generator, implemented in src/gen/cli.ts (exporting main(argv) → exit code). */
async function genCommand(args: string[]): Promise<number> {
  const specifier = '../gen/cli.js';
  let mod: { main: (argv: string[]) => Promise<number> };
  try {
    mod = (await import(specifier)) as typeof mod;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND' && String((e as Error).message).includes('gen')) {
      throw new Error('the traffic generator (`gen`) is not part of this build yet');
    }
    throw e;
  }
  return mod.main(args);
}
