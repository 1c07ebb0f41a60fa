// The daemon: config → run directory → data plane → ports (config first, then stored API ports) → control socket.
// Order matters: the control socket opens last, so a client that can connect sees every port already restored.
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import http from 'node:http';
import { Metrics, METRICS_CONTENT_TYPE } from './api/metrics.js';
import { createApiServer, listenUnix, metricsSampler } from './api/server.js';
import { MemoryTrimmer } from './host/memtrim.js';
import { attachHints } from './cli/attach.js';
import { defaultConfig, loadConfigFile, resolveSettings, type Config, type ResolvedSwitchSettings, type SettingOverrides } from './config.js';
import { healthReport, PollThreadWatch } from './switch/health.js';
import { createLogger, type Level, type LogFormat, type Logger } from './log.js';
import { native, type NativeAddon } from './dataplane/native.js';
import { ServiceNotifier } from './host/notify.js';
import { recordCollection } from './host/procmem.js';
import { claimSocketPath, controlSocketPath, defaultStateDir, prepareRunDir, resolveRunDir, socketIsAlive, STATE_FILE_NAME } from './host/runDir.js';
import { changedFields } from './switch/reconcile.js';
import { restoreState } from './switch/restore.js';
import { adoptStateFile, StateStore } from './switch/state.js';
import { VSwitch } from './switch/model.js';
import type { EndpointFactory } from './switch/port.js';
import type { ConfigChange } from './switch/reload.js';

/** What this build does, for GET /v1/version and `vhost-switch version` (one entry per capability). */
export const FEATURES = [
  'vhost-user-server',
  'vhost-user-client',
  'multiqueue',
  'mrg-rxbuf',
  'event-idx',
  'offloads-csum-tso',
  'vlan-access-ports',
  'vlan-trunks',
  'mac-learning',
  'static-fdb',
  'port-security',
  'nic-af-xdp',
  'nic-af-packet',
  'tap-ports',
  'state-restore',
  'config-reload',
  'live-port-changes',
  'queue-affinity',
  'packet-capture',
  'prometheus-metrics',
  'metrics-tcp-listener',
  'systemd-notify',
  'health-checks',
];

/** How often the poll threads' progress is sampled for GET /v1/health. */
export const HEALTH_SAMPLE_MS = 1000;

export interface DaemonOptions extends SettingOverrides {
  configFile?: string;
  logLevel?: Level;
  logFormat?: LogFormat;
  log?: Logger;
  /** The native addon; native() by default. */
  addon?: NativeAddon;
  /** VhostUserEndpoint by default. */
  endpointFactory?: EndpointFactory;
  /** Where the attach hints go (stdout by default). */
  out?: (text: string) => void;
}

export interface Daemon {
  vswitch: VSwitch;
  server: http.Server;
  runDir: string;
  controlSocket: string;
  stateFile: string;
  log: Logger;
  /** Gives memory back to the system now (the addon's trimMemory), without counting it as a scheduled trim. */
  releaseMemory(): void;
  /**
   * Reads the config file again and applies what changed in it (SIGHUP); resolves with what was done, or undefined
   * when nothing was (no config file, or it does not validate: then the running state is kept). Never rejects.
   */
  reload(): Promise<ConfigChange | undefined>;
  close(): Promise<void>;
}

export async function packageVersion(): Promise<string> {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i++) {
    try {
      const pkg = JSON.parse(await fs.readFile(path.join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'vhost-switch' && pkg.version) return pkg.version;
    } catch {
      // Not here; look one directory up (src/ → root, dist/src/ → dist → root).
    }
    dir = path.dirname(dir);
  }
  return '0.0.0-unknown';
}

/** The data plane: the native addon (or opts.addon, for tests in this process). */
async function dataPlane(opts: DaemonOptions): Promise<{ addon: NativeAddon; endpointFactory: EndpointFactory }> {
  const addon = opts.addon ?? native();
  if (typeof addon.Switch !== 'function') {
    throw new Error('the native addon has no Switch class: rebuild it with `npm run build:native`');
  }
  return { addon, endpointFactory: opts.endpointFactory ?? (await defaultEndpointFactory()) };
}

async function defaultEndpointFactory(): Promise<EndpointFactory> {
  // Imported lazily so the CLI's client commands never load the vhost-user code.
  const mod = await import('./vhost/endpoint.js');
  return (p) =>
    new mod.VhostUserEndpoint({
      native: p.dataPlane,
      addon: p.addon,
      portId: p.portId,
      name: p.name,
      mode: p.mode,
      socketPath: p.socketPath,
      queuePairs: p.queuePairs,
      mtu: p.mtu,
      offloads: p.offloads,
      socketMode: p.socketMode,
      socketUid: p.socketUid,
      socketGid: p.socketGid,
      log: p.log,
    });
}

export async function startDaemon(opts: DaemonOptions = {}): Promise<Daemon> {
  const log = opts.log ?? createLogger({ level: opts.logLevel, format: opts.logFormat });
  const cfg: Config = opts.configFile ? await loadConfigFile(opts.configFile) : defaultConfig();
  const baseDir = opts.configFile ? path.dirname(path.resolve(opts.configFile)) : process.cwd();
  const resolve = (c: Config) => resolveSettings(c, opts, { runDir: resolveRunDir(), stateDir: defaultStateDir }, baseDir);
  const settings = resolve(cfg);
  const { runDir, stateDir } = settings;
  await prepareRunDir(runDir);
  await fs.mkdir(stateDir, { recursive: true, mode: 0o755 });
  const controlSocket = controlSocketPath(runDir);
  // Refuses to start beside a live daemon on the same run directory; removes a dead one's socket.
  await claimSocketPath(controlSocket, (p) => socketIsAlive(p));

  const { addon, endpointFactory } = await dataPlane(opts);
  await adoptStateFile(path.join(runDir, STATE_FILE_NAME), path.join(stateDir, STATE_FILE_NAME), log);
  const store = new StateStore(path.join(stateDir, STATE_FILE_NAME), log);
  // A data plane given by a test may have no trimMemory: then there is nothing to trim.
  const trimmer = typeof addon.trimMemory === 'function' ? new MemoryTrimmer({ trim: () => addon.trimMemory(), onError: (err) => log.warn('memory trim failed', { err }) }) : undefined;
  const vswitch = new VSwitch({
    native: addon,
    threads: settings.threads,
    cpus: settings.cpus,
    agingSeconds: settings.agingSeconds,
    runDir,
    socketDirs: settings.socketDirs,
    log,
    endpointFactory,
    persist: (s) => store.save(s),
    onPortRemoved: () => trimmer?.noteRelease(),
  });
  log.info('starting', { runDir, stateDir, config: opts.configFile ?? '(embedded default)', threads: settings.threads, cpus: settings.cpus?.join(',') });

  try {
    await applyConfig(vswitch, cfg);
    await restoreState(vswitch, store, new Set(cfg.ports.map((p) => p.name)), log);
  } catch (err) {
    await vswitch.close();
    throw err;
  }

  // Poll threads looked at once a second: GET /v1/health reports one that finished no pass in that time.
  const threadWatch = new PollThreadWatch(() => vswitch.threadStats());
  let stalled: number[] = [];
  const healthTimer = setInterval(() => (stalled = threadWatch.stalled()), HEALTH_SAMPLE_MS);
  healthTimer.unref();
  const health = () => healthReport(vswitch, stalled);
  const version = await packageVersion();
  const metrics = new Metrics(metricsSampler(vswitch, version));
  const server = createApiServer({ vswitch, version, features: FEATURES, log, health, metrics, trimStats: trimmer && (() => trimmer.stats()) });
  try {
    await listenUnix(server, controlSocket);
  } catch (err) {
    clearInterval(healthTimer);
    await vswitch.close();
    throw new Error(`cannot listen on ${controlSocket}: ${(err as Error).message}`);
  }
  let metricsServer: http.Server | undefined;
  if (settings.metricsListen) {
    try {
      metricsServer = await listenMetrics(metrics, settings.metricsListen);
    } catch (err) {
      server.close();
      clearInterval(healthTimer);
      await vswitch.close();
      await fs.rm(controlSocket, { force: true });
      throw new Error(`cannot listen for metrics on ${settings.metricsListen.host}:${settings.metricsListen.port}: ${(err as Error).message}`);
    }
    log.info('metrics listening', { address: `${settings.metricsListen.host}:${settings.metricsListen.port}`, path: '/metrics' });
  }
  log.info('control socket ready', { socket: controlSocket, ports: vswitch.listPorts().length });
  (opts.out ?? ((t: string) => process.stdout.write(t)))(attachHints(vswitch.listPorts()));

  // One reload at a time, in the order the signals came.
  let reloading: Promise<unknown> = Promise.resolve();
  const reload = () => {
    const next = reloading.then(() => reloadConfig({ configFile: opts.configFile, settings, resolve, vswitch, store, log }));
    reloading = next;
    return next;
  };

  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      log.info('shutting down');
      clearInterval(healthTimer);
      for (const srv of [server, metricsServer]) {
        if (!srv) continue;
        await new Promise<void>((resolve) => {
          srv.close(() => resolve());
          srv.closeAllConnections();
        });
      }
      trimmer?.close();
      await vswitch.close();
      await store.flush().catch(() => {});
      await fs.rm(controlSocket, { force: true });
      log.info('stopped');
    })());
  const releaseMemory = () => {
    if (typeof addon.trimMemory === 'function') addon.trimMemory();
  };
  return { vswitch, server, runDir, controlSocket, stateFile: store.file, log, reload, releaseMemory, close };
}

/** Config ports are declared: they are applied first, and failing to apply one is fatal (at start). */
async function applyConfig(vswitch: VSwitch, cfg: Config): Promise<void> {
  for (const [i, p] of cfg.ports.entries()) {
    try {
      await vswitch.addPort(p, 'config');
    } catch (err) {
      throw new Error(`config ports[${i}] (${p.name}): ${(err as Error).message}`);
    }
  }
  for (const [i, e] of cfg.fdb.entries()) {
    try {
      await vswitch.fdbAdd(e, 'config');
    } catch (err) {
      throw new Error(`config fdb[${i}]: ${(err as Error).message}`);
    }
  }
}

interface ReloadContext {
  configFile?: string;
  /** The settings the daemon started with; they stay until the next start. */
  settings: ResolvedSwitchSettings;
  resolve: (cfg: Config) => ResolvedSwitchSettings;
  vswitch: VSwitch;
  store: StateStore;
  log: Logger;
}

async function reloadConfig({ configFile, settings, resolve, vswitch, store, log }: ReloadContext): Promise<ConfigChange | undefined> {
  if (!configFile) {
    log.warn('no config file to reload: the daemon runs the embedded default config (start it with --config FILE)');
    return undefined;
  }
  let cfg: Config;
  let next: ResolvedSwitchSettings;
  try {
    cfg = await loadConfigFile(configFile);
    next = resolve(cfg);
  } catch (err) {
    log.error('config reload refused; the running config is kept', { config: configFile, reason: (err as Error).message });
    return undefined;
  }
  // Poll threads, CPUs, directories and aging are fixed when the data plane starts.
  const fixed = changedFields(settings, next);
  if (fixed.length) log.warn('switch settings changed in the config; they apply at the next start', { fields: fixed.join(',') });
  let change: ConfigChange;
  try {
    change = await vswitch.applyConfig(cfg.ports, cfg.fdb);
  } catch (err) {
    log.error('config reload failed', { config: configFile, err: err as Error });
    return undefined;
  }
  try {
    const { ports, fdb } = change.dropped;
    if (ports.length || fdb.length) {
      const movedTo = await store.setAside([
        ...ports.map((p) => ({ entry: `port ${p.name}`, reason: 'a config port now has this name (the config wins)', value: p })),
        ...fdb.map((e) => ({ entry: `fdb ${e.mac} vlan ${e.vlan}`, reason: `its port "${e.port}" was dropped`, value: e })),
      ]);
      log.warn('API entries set aside', { count: ports.length + fdb.length, movedTo });
    }
    if (change.apiChanged) await vswitch.save();
  } catch (err) {
    log.error('could not save state after the reload', { err: err as Error });
  }
  const names = (l: string[]) => l.join(',') || undefined;
  log.info('config reloaded', {
    config: configFile, added: names(change.added), removed: names(change.removed), changed: names(change.replaced),
    unchanged: change.unchanged.length, fdbAdded: change.fdbAdded, fdbRemoved: change.fdbRemoved, failed: change.failed.length,
  });
  return change;
}

/**
 * `vhost-switch run`: start; SIGHUP reloads the config file, SIGINT/SIGTERM close cleanly. Resolves with the exit
 * code.
 */
export async function runDaemon(opts: DaemonOptions = {}): Promise<number> {
  // Caught from the first instant: Node's default for SIGHUP is to die on the spot, sockets left behind. One that
  // arrives while the daemon starts is acted on once it is up (the file may have changed after it was read).
  let daemon: Daemon | undefined;
  let notifier: ServiceNotifier | undefined;
  let hupWhileStarting = false;
  let stopping = false;
  const onHup = () => {
    if (!daemon) return void (hupWhileStarting = true);
    daemon.log.info('signal received', { signal: 'SIGHUP' });
    if (stopping) return daemon.log.info('not reloading: shutting down');
    const d = daemon;
    notifier?.reloading();
    void d.reload().then(() => notifier?.ready(readyStatus(d)));
  };
  process.on('SIGHUP', onHup);
  try {
    daemon = await startDaemon(opts);
  } catch (err) {
    process.off('SIGHUP', onHup);
    throw err;
  }
  const running = daemon;
  notifier = serviceNotifier(opts, running.log);
  if (notifier) {
    notifier.ready(readyStatus(running));
    // Its own look at the threads, at the watchdog's pace (the health check samples once a second).
    const watch = new PollThreadWatch(() => running.vswitch.threadStats());
    watch.stalled();
    notifier.startWatchdog(() => watch.stalled());
  }
  if (hupWhileStarting) onHup();
  return new Promise((resolve) => {
    let firstAt = 0;
    const onSignal = (sig: NodeJS.Signals) => {
      // The same signal often arrives twice at once (timeout(1) and npm signal the whole process group, systemd
      // every process): only a repeat after a pause means "stop now, skip the cleanup".
      if (firstAt !== 0) {
        if (Date.now() - firstAt < 2000) return;
        running.log.warn('second signal: exiting without cleanup', { signal: sig });
        process.exit(130);
      }
      firstAt = Date.now();
      stopping = true;
      running.log.info('signal received', { signal: sig });
      notifier?.stopping();
      running.close().then(
        () => resolve(0),
        (err: Error) => {
          running.log.error('shutdown failed', { err });
          resolve(1);
        },
      );
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    // Diagnostics: started with --expose-gc (the soak does), SIGUSR2 runs a full garbage collection and gives the
    // freed memory back, so that GET /v1/stats and the RSS right after it report what is alive, not garbage that
    // is merely uncollected (the soak judges leaks on that). A heap snapshot would too, but leaves the process tens
    // of MB larger (glibc keeps what the snapshot used), which spoils the RSS it is compared with.
    const gc = (globalThis as { gc?: () => void }).gc;
    if (gc)
      process.on('SIGUSR2', () => {
        gc();
        daemon.releaseMemory();
        recordCollection();
      });
  });
}

function readyStatus(d: Daemon): string {
  const ports = d.vswitch.listPorts().length;
  return `${ports} port${ports === 1 ? '' : 's'}, control socket ${d.controlSocket}`;
}

/** Under a service manager (NOTIFY_SOCKET): the notifier, sending with the addon (Node has no AF_UNIX datagrams). */
function serviceNotifier(opts: DaemonOptions, log: Logger): ServiceNotifier | undefined {
  const env = process.env;
  if (!env.NOTIFY_SOCKET) return undefined;
  let addon: NativeAddon;
  try {
    addon = opts.addon && typeof opts.addon.notifySend === 'function' ? opts.addon : native();
  } catch (err) {
    log.error('NOTIFY_SOCKET is set but the native addon does not load: no service notifications', { err: err as Error });
    return undefined;
  }
  return ServiceNotifier.fromEnv(env, (p, m) => void addon.notifySend(p, m), log);
}

/** Prometheus over TCP: GET /metrics (and /), nothing else; no request body is read. */
function listenMetrics(metrics: Metrics, at: { host: string; port: number }): Promise<http.Server> {
  const srv = http.createServer((req, res) => {
    const url = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' || (url !== '/metrics' && url !== '/')) {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('only GET /metrics here\n');
      return;
    }
    metrics.text().then(
      (text) => res.writeHead(200, { 'Content-Type': METRICS_CONTENT_TYPE }).end(text),
      (err: Error) => res.writeHead(500, { 'Content-Type': 'text/plain' }).end(`${err.message}\n`),
    );
  });
  return new Promise((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(at.port, at.host, () => {
      srv.off('error', reject);
      resolve(srv);
    });
  });
}
