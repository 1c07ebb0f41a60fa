// `vhost-switch COMMAND ...`: the daemon (`run`) and the client commands that drive it over the control socket,
// on commander: `--help` on every command, a suggestion for a mistyped command or flag, `completion bash`.
// Exit status: 0 ok, 1 the operation failed (the daemon's message is printed), 2 wrong arguments.
import { Command, CommanderError, Option } from 'commander';
import { parseCpuList } from '../config.js';
import { MAX_THREADS } from '../dataplane/limits.js';
import { levelFromEnv, type LogFormat } from '../log.js';
import { resolveControlSocket, resolveRunDir } from '../host/runDir.js';
import { registerVif } from './attach.js';
import { registerCapture } from './capture.js';
import { ApiClient, ApiError, UnreachableError } from './client.js';
import { bashCompletion } from './completion.js';
import { printJson, UsageError, type CliContext, type CliHost } from './context.js';
import { registerFdb } from './fdb.js';
import { registerPort } from './port.js';
import { registerStats } from './stats.js';
import { registerThreads } from './threads.js';

export interface MainIo {
  out?: (text: string) => void;
  err?: (text: string) => void;
}

interface Globals {
  control?: string;
  runDir?: string;
  json?: boolean;
}

/** The whole command tree; actions report their exit status through setCode. */
export function buildProgram(io: Required<MainIo>, setCode: (code: number) => void, version = '0.0.0'): Command {
  const program = new Command('vhost-switch')
    .description('a userspace virtual switch for vhost-user ports (QEMU, DPDK virtio-user)')
    .version(`vhost-switch ${version}`, '-V, --version', 'print the version')
    .option('--control <path>', 'the daemon\'s control socket (default RUN_DIR/control.sock, or $VHOST_SWITCH_CONTROL)')
    .option('--run-dir <dir>', 'the daemon\'s run directory (default /run/vhost-switch for root)')
    .option('--json', 'machine-readable output (and errors as the API\'s JSON body)')
    .addHelpText('after', '\nDocs: docs/cli.md, API: docs/openapi.yaml. `vhost-switch COMMAND --help` for a command\'s options.')
    .showSuggestionAfterError(true)
    .allowExcessArguments(false)
    .configureOutput({ writeOut: io.out, writeErr: io.err, outputError: (s, write) => write(`vhost-switch: ${s.replace(/^error: /, '')}`) })
    .exitOverride();

  const host: CliHost = {
    action:
      (fn) =>
      async (...args: unknown[]) => {
        const cmd = args[args.length - 1] as Command;
        const g = cmd.optsWithGlobals() as Globals;
        const socket = resolveControlSocket(g.control, { flag: g.runDir });
        const ctx: CliContext = { client: new ApiClient(socket), json: g.json === true, out: io.out, err: io.err, runDir: g.runDir };
        setCode(await fn(ctx, ...(args.slice(0, -1) as never[]), cmd));
      },
  };

  registerRun(program, setCode);
  registerPort(program, host);
  registerFdb(program, host);
  registerStats(program, host);
  registerThreads(program, host);
  registerCapture(program, host);
  registerVif(program, host);
  program
    .command('version')
    .description('the CLI\'s and the daemon\'s versions and the daemon\'s features')
    .action(host.action(versionCommand));
  program
    .command('doctor')
    .description('check this host for what vhost-user needs (QEMU, memory, hugepages, permissions)')
    .option('--socket-dir <dir>', 'a directory QEMU will use for sockets')
    .option('--qemu <path>', 'the QEMU binary to check')
    .action(host.action(doctorCommand));
  program
    .command('gen')
    .description('traffic generator (our virtio driver on vhost-user sockets; `vhost-switch gen --help`)')
    .helpOption(false)
    .allowUnknownOption()
    .allowExcessArguments()
    .argument('[args...]');  // handled before commander parses (main)
  program
    .command('completion')
    .description('print a bash completion script: source <(vhost-switch completion bash)')
    .argument('[shell]', 'bash', 'bash')
    .action((shell: string) => {
      if (shell !== 'bash') throw new UsageError(`no completion for "${shell}" (only bash)`);
      io.out(bashCompletion(program));
      setCode(0);
    });
  return program;
}

function registerRun(program: Command, setCode: (code: number) => void): void {
  program
    .command('run')
    .description('run the switch: SIGHUP reloads the config file; SIGINT/SIGTERM stop and remove the sockets')
    .option('-c, --config <file>', 'config file (default $VHOST_SWITCH_CONFIG, else /etc/vhost-switch/config.json if it exists, else the embedded default)')
    .option('--state-dir <dir>', 'where state.json lives (default /var/lib/vhost-switch with the system run dir, else the run dir)')
    .option('--threads <n>', 'poll threads (1-64)')
    .option('--cpus <list>', 'pin poll thread i to the i-th CPU: "2,3" or "2-3"')
    .addOption(new Option('--log-level <level>', 'log level (default $VHOST_SWITCH_LOG, else info)').choices(['debug', 'info', 'warn', 'error']))
    .addOption(new Option('--log-format <format>', 'log lines (default $VHOST_SWITCH_LOG_FORMAT, else logfmt)').choices(['logfmt', 'json']))
    .option('--metrics-listen <[host:]port>', 'Prometheus over TCP at /metrics (host 127.0.0.1 unless given)')
    .addHelpText('after', '\nUnder systemd (Type=notify): READY=1, RELOADING=1, STOPPING=1, WATCHDOG=1 while the poll threads make progress (systemd/vhost-switch.service).')
    .action(async (o: Record<string, string | undefined>, cmd: Command) => {
      const g = cmd.optsWithGlobals() as Globals;
      let threads: number | undefined;
      if (o.threads !== undefined) {
        threads = Number(o.threads);
        if (!/^\d+$/.test(o.threads) || threads < 1 || threads > MAX_THREADS) throw new UsageError(`--threads must be an integer 1-${MAX_THREADS}`);
      }
      let cpus: number[] | undefined;
      try {
        cpus = o.cpus === undefined ? undefined : parseCpuList(o.cpus);
      } catch (e) {
        throw new UsageError(`--cpus: ${(e as Error).message}`);
      }
      let logLevel;
      try {
        logLevel = levelFromEnv(o.logLevel);
      } catch (e) {
        throw new UsageError(`--log-level: ${(e as Error).message}`);
      }
      const logFormat = (o.logFormat ?? process.env.VHOST_SWITCH_LOG_FORMAT ?? 'logfmt') as LogFormat;
      if (logFormat !== 'logfmt' && logFormat !== 'json') throw new UsageError('--log-format must be logfmt or json');
      // The daemon's code is loaded only for `run`, keeping client commands quick to start.
      const { runDaemon } = await import('../daemon.js');
      const { resolveConfigFile } = await import('../host/runDir.js');
      setCode(
        await runDaemon({
          configFile: await resolveConfigFile(o.config),
          runDir: g.runDir,
          stateDir: o.stateDir,
          metricsListen: o.metricsListen,
          threads,
          cpus,
          logLevel,
          logFormat,
        }),
      );
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

async function doctorCommand(ctx: CliContext, o: { socketDir?: string; qemu?: string }): Promise<number> {
  const { runDoctor } = await import('../host/doctor.js');
  const r = await runDoctor({ runDir: resolveRunDir({ flag: ctx.runDir }), socketDir: o.socketDir, qemuBinary: o.qemu });
  if (ctx.json) printJson(ctx, { ok: r.ok, checks: r.checks });
  else ctx.out(r.report.endsWith('\n') ? r.report : r.report + '\n');
  return r.ok ? 0 : 1;
}

/** `gen` parses its own arguments (src/gen/cli.ts): everything after the word `gen`. */
function genArgs(argv: string[]): string[] | undefined {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--control' || a === '--run-dir') i++;
    else if (!a.startsWith('-')) return a === 'gen' ? argv.slice(i + 1) : undefined;
  }
  return undefined;
}

export async function main(argv: string[], io: MainIo = {}): Promise<number> {
  const out = io.out ?? ((t: string) => void process.stdout.write(t));
  const err = io.err ?? ((t: string) => void process.stderr.write(t));
  const json = argv.includes('--json');
  const gen = genArgs(argv);
  if (gen) {
    const mod = (await import('../gen/cli.js')) as { main: (argv: string[]) => Promise<number> };
    return mod.main(gen);
  }
  let code = 0;
  const { packageVersion } = await import('../daemon.js');
  const program = buildProgram({ out, err }, (c) => (code = c), await packageVersion());
  try {
    if (argv.length === 0) {
      out(program.helpInformation());
      return 2;
    }
    await program.parseAsync(argv, { from: 'user' });
    return code;
  } catch (e) {
    if (e instanceof CommanderError) {
      // Help and version asked for: 0. Help shown because a command was missing, or any parse error: 2.
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version') return 0;
      if (e.code === 'commander.help') return argv.includes('help') ? 0 : 2;
      return 2;
    }
    return reportError(e, err, json);
  }
}

function reportError(e: unknown, err: (t: string) => void, json: boolean): number {
  if (e instanceof UsageError) {
    err(`vhost-switch: ${e.message}\n${e.usage ?? 'run `vhost-switch --help` for usage'}\n`);
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
