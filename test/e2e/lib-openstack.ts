// Real OpenStack pieces for e2e tests, private to the test and on 127.0.0.1 only: a RabbitMQ node, a
// neutron-server (ML2 with mechanism_drivers = vhost_switch, noauth, a SQLite schema built from Neutron's models)
// and the project's vhost-switch-neutron-agent, all from Debian's /usr/bin/python3. The openstack/ package is
// installed with pip into a directory of the run (--target), put on PYTHONPATH: nothing outside the run changes.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { logFilePath, onCleanup, repoRoot, requireTool, sleep, waitUntil } from '../../harness/env.js';

export const PYTHON = '/usr/bin/python3';
const HELPERS = path.join(repoRoot, 'test', 'e2e', 'openstack');
const RABBIT_BIN = '/usr/lib/rabbitmq/bin';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** A process group of ours: SIGTERM to the group, SIGKILL after graceMs. */
export class Service {
  readonly exited: Promise<void>;
  private done = false;
  constructor(
    readonly name: string,
    readonly child: ChildProcess,
    readonly logFile: string,
  ) {
    this.exited = new Promise((resolve) => child.once('exit', () => ((this.done = true), resolve())));
    onCleanup(() => this.stop(2000));
  }
  get running(): boolean {
    return !this.done;
  }
  log(): string {
    try {
      return fs.readFileSync(this.logFile, 'utf8');
    } catch {
      return '';
    }
  }
  async stop(graceMs = 8000): Promise<void> {
    if (this.done) return;
    const signal = (s: NodeJS.Signals) => {
      try {
        process.kill(-this.child.pid!, s);
      } catch {
        /* gone */
      }
    };
    signal('SIGTERM');
    const t = setTimeout(() => signal('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(t);
    signal('SIGKILL'); // workers the leader left behind
  }
}

function startService(name: string, cmd: string, args: string[], env: NodeJS.ProcessEnv, logFile = logFilePath(name)): Service {
  const fd = fs.openSync(logFile, 'a');
  const child = spawn(cmd, args, { env, detached: true, stdio: ['ignore', fd, fd] });
  fs.closeSync(fd);
  return new Service(name, child, logFile);
}

export interface Rabbit {
  url: string;
  stop(): Promise<void>;
}

/** A RabbitMQ node of its own (name, ports, data, cookie), listening on 127.0.0.1 only. */
export async function startRabbit(dir: string): Promise<Rabbit> {
  requireTool(path.join(RABBIT_BIN, 'rabbitmq-server'), 'rabbitmq-server');
  const home = path.join(dir, 'rabbitmq');
  fs.mkdirSync(home, { recursive: true });
  const [amqp, dist, epmd] = [await freePort(), await freePort(), await freePort()];
  const node = `vs${process.pid}@localhost`;
  fs.writeFileSync(path.join(home, 'rabbitmq.conf'), `listeners.tcp.default = 127.0.0.1:${amqp}\n`);
  fs.writeFileSync(path.join(home, 'enabled_plugins'), '[].\n');
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    HOME: home,
    RABBITMQ_NODENAME: node,
    RABBITMQ_NODE_IP_ADDRESS: '127.0.0.1',
    RABBITMQ_NODE_PORT: String(amqp),
    RABBITMQ_DIST_PORT: String(dist),
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS: `-kernel inet_dist_use_interface {127,0,0,1}`,
    RABBITMQ_CTL_ERL_ARGS: `-kernel inet_dist_use_interface {127,0,0,1}`,
    ERL_EPMD_ADDRESS: '127.0.0.1',
    ERL_EPMD_PORT: String(epmd),
    RABBITMQ_MNESIA_BASE: path.join(home, 'mnesia'),
    RABBITMQ_LOG_BASE: path.join(home, 'log'),
    RABBITMQ_CONFIG_FILE: path.join(home, 'rabbitmq'),
    RABBITMQ_ENABLED_PLUGINS_FILE: path.join(home, 'enabled_plugins'),
    RABBITMQ_PID_FILE: path.join(home, 'pid'),
  };
  const svc = startService('rabbitmq', path.join(RABBIT_BIN, 'rabbitmq-server'), [], env);
  const epmdStop = () => {
    try {
      execFileSync('epmd', ['-port', String(epmd), '-kill'], { env, stdio: 'ignore' });
    } catch {
      /* not running */
    }
  };
  onCleanup(epmdStop);
  await waitUntil(
    () => {
      if (!svc.running) throw new Error(`rabbitmq-server exited:\n${svc.log().slice(-2000)}`);
      try {
        execFileSync(path.join(RABBIT_BIN, 'rabbitmqctl'), ['-n', node, 'await_startup'], { env, stdio: 'ignore', timeout: 20_000 });
        return true;
      } catch {
        return false;
      }
    },
    90_000,
    'rabbitmq-server startup',
    1000,
  );
  return {
    url: `rabbit://guest:guest@127.0.0.1:${amqp}/`,
    async stop() {
      await svc.stop();
      epmdStop();
    },
  };
}

/** pip install ./openstack into DIR (offline, as the README says, but --target instead of the system). */
export function installOpenstackPackage(dir: string): string {
  requireTool(PYTHON, 'python3-neutron');
  const target = path.join(dir, 'site');
  execFileSync(
    PYTHON,
    ['-m', 'pip', 'install', '--quiet', '--no-index', '--no-build-isolation', '--no-deps', '--target', target, path.join(repoRoot, 'openstack')],
    { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, PIP_DISABLE_PIP_VERSION_CHECK: '1' } },
  );
  fs.rmSync(path.join(repoRoot, 'openstack', 'build'), { recursive: true, force: true });
  return target;
}

export interface NeutronOptions {
  transportUrl: string;
  site: string;
  /** physnet:min:max VLAN ranges, e.g. ['physnet1:100:199', 'physnet2:200:299']. */
  vlanRanges: string[];
  agentDownTime?: number;
}

export class Neutron {
  private constructor(
    readonly url: string,
    readonly dir: string,
    readonly service: Service,
    readonly logFile: string,
    private readonly conf: string,
    private readonly site: string,
  ) {}

  /** The same server again (same config, database and port), after `service.stop()`. */
  static restart(old: Neutron): Promise<Neutron> {
    return Neutron.launch(old.url, old.dir, old.conf, old.site, old.logFile);
  }

  private static async launch(url: string, nd: string, conf: string, site: string, logFile: string): Promise<Neutron> {
    const svc = startService(
      'neutron-server-stdio',
      PYTHON,
      [path.join(HELPERS, 'neutron_server.py'), '--config-file', conf],
      { ...process.env, PYTHONPATH: site },
    );
    const n = new Neutron(url, nd, svc, logFile, conf, site);
    await waitUntil(
      async () => {
        if (!svc.running) throw new Error(`neutron-server exited:\n${svc.log().slice(-3000)}\n${n.log().slice(-3000)}`);
        try {
          return (await fetch(`${n.url}/networks`)).ok;
        } catch {
          return false;
        }
      },
      120_000,
      'neutron-server answering GET /v2.0/networks',
      500,
    );
    return n;
  }

  static async start(dir: string, opts: NeutronOptions): Promise<Neutron> {
    const nd = path.join(dir, 'neutron');
    fs.mkdirSync(path.join(nd, 'lock'), { recursive: true });
    const port = await freePort();
    const db = path.join(nd, 'neutron.db');
    execFileSync(PYTHON, [path.join(HELPERS, 'make_schema.py'), db], { stdio: 'ignore' });
    const logFile = logFilePath('neutron-server');
    const conf = path.join(nd, 'neutron.conf');
    fs.writeFileSync(
      conf,
      `[DEFAULT]
core_plugin = ml2
service_plugins =
auth_strategy = noauth
api_paste_config = ${path.join(HELPERS, 'api-paste.ini')}
bind_host = 127.0.0.1
bind_port = ${port}
api_workers = 0
rpc_workers = 1
rpc_state_report_workers = 0
transport_url = ${opts.transportUrl}
notify_nova_on_port_status_changes = false
notify_nova_on_port_data_changes = false
dhcp_agent_notification = false
agent_down_time = ${opts.agentDownTime ?? 75}
state_path = ${nd}
debug = true
log_file = ${logFile}
[database]
connection = sqlite:///${db}?timeout=5
[oslo_concurrency]
lock_path = ${path.join(nd, 'lock')}
[ml2]
type_drivers = flat,vlan,local
tenant_network_types =
mechanism_drivers = vhost_switch
extension_drivers = port_security
[ml2_type_vlan]
network_vlan_ranges = ${opts.vlanRanges.join(',')}
[ml2_type_flat]
flat_networks = *
`,
    );
    return Neutron.launch(`http://127.0.0.1:${port}/v2.0`, nd, conf, opts.site, logFile);
  }

  log(): string {
    try {
      return fs.readFileSync(this.logFile, 'utf8');
    } catch {
      return '';
    }
  }

  /**
   * One REST call. A 500 is tried again (twice, after a second): on SQLite, Neutron's API and RPC worker
   * processes sometimes collide ("database is locked", rolled back), which MySQL/PostgreSQL would not do.
   */
  async request<T = Record<string, unknown>>(method: string, p: string, body?: unknown): Promise<{ status: number; body: T }> {
    for (let attempt = 1; ; attempt++) {
      const r = await fetch(this.url + p, {
        method,
        headers: body === undefined ? {} : { 'Content-Type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await r.text();
      if (r.status === 500 && attempt < 3) {
        await sleep(1000);
        continue;
      }
      let parsed: unknown;
      try {
        parsed = text ? JSON.parse(text) : {};
      } catch {
        parsed = { text };
      }
      return { status: r.status, body: parsed as T };
    }
  }

  async ok<T = Record<string, unknown>>(method: string, p: string, body?: unknown): Promise<T> {
    const r = await this.request<T>(method, p, body);
    if (r.status >= 300) throw new Error(`${method} ${p}: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  }
}

export interface AgentOptions {
  host: string;
  transportUrl: string;
  site: string;
  controlSocket: string;
  socketDir: string;
  mappings: Record<string, string>;
  reportInterval?: number;
}

/** vhost-switch-neutron-agent, the console script pip installed, with its oslo.config file. */
export class Agent {
  private constructor(
    readonly service: Service,
    readonly logFile: string,
  ) {}

  static start(dir: string, opts: AgentOptions, logFile = logFilePath(`agent-${opts.host}`)): Agent {
    const conf = path.join(dir, `agent-${opts.host}.conf`);
    fs.writeFileSync(
      conf,
      `[DEFAULT]
host = ${opts.host}
transport_url = ${opts.transportUrl}
debug = true
log_file = ${logFile}
[agent]
report_interval = ${opts.reportInterval ?? 3}
polling_interval = 2
[vhost_switch]
control_socket = ${opts.controlSocket}
socket_dir = ${opts.socketDir}
physical_interface_mappings = ${Object.entries(opts.mappings)
        .map(([p, i]) => `${p}:${i}`)
        .join(',')}
`,
    );
    const script = path.join(opts.site, 'bin', 'vhost-switch-neutron-agent');
    const svc = startService(`agent-${opts.host}-stdio`, PYTHON, [script, '--config-file', conf], { ...process.env, PYTHONPATH: opts.site });
    return new Agent(svc, logFile);
  }

  log(): string {
    try {
      return fs.readFileSync(this.logFile, 'utf8');
    } catch {
      return '';
    }
  }

  stop(): Promise<void> {
    return this.service.stop();
  }
}

/** Nova's rendering of a Neutron port (test/e2e/openstack/nova_vif.py): os-vif object and libvirt <interface>. */
export function novaRender(port: unknown, network: unknown): { osvif: Record<string, string>; xml: string } {
  const out = execFileSync(PYTHON, ['-W', 'ignore', path.join(HELPERS, 'nova_vif.py')], {
    input: JSON.stringify({ port, network }),
    encoding: 'utf8',
    stdio: ['pipe', 'pipe', 'ignore'],
  });
  return JSON.parse(out) as { osvif: Record<string, string>; xml: string };
}

