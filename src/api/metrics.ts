// Prometheus metrics (text exposition format 0.0.4): GET /v1/metrics on the control socket, and GET /metrics on the
// optional TCP listener (--metrics-listen). The switch's own counters are written here, exactly (uint64 counters
// pass 2^53, which prom-client's float values would round); process and Node.js runtime metrics come from
// prom-client's default collectors.
import client from 'prom-client';
import type { PortStats, ThreadStats } from '../dataplane/native.js';
import type { EndpointState, PortInfo } from '../switch/port.js';
import type { FdbView } from '../switch/views.js';

export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** A port's counters as the data plane keeps them, with its endpoint's state. */
export type PortSample = Pick<PortStats, 'name' | 'rxPackets' | 'rxBytes' | 'txPackets' | 'txBytes' | 'drops' | 'broken'> & {
  state: EndpointState;
  protocolErrors: number;
};

export interface MetricsInput {
  version: string;
  uptimeSeconds: number;
  ports: PortSample[];
  portInfo: PortInfo[];
  threads: ThreadStats[];
  fdb: FdbView[];
  /** TSC ticks per second: cycles / tscHz = seconds. */
  tscHz: number;
}

/** Label values are snake_case: "queueFull" → "queue_full". */
export function snakeCase(v: string): string {
  return v.replace(/([a-z0-9])([A-Z])/g, '$1_$2').replace(/-/g, '_').toLowerCase();
}

const STATES: EndpointState[] = ['listening', 'connecting', 'connected', 'ready', 'closed'];

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function labels(l: Record<string, string | number>): string {
  const parts = Object.entries(l).map(([k, v]) => `${k}="${escapeLabel(String(v))}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
}

class Writer {
  private lines: string[] = [];
  family(name: string, type: 'counter' | 'gauge', help: string, samples: Array<[Record<string, string | number>, bigint | number]>): void {
    this.lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [l, v] of samples) this.lines.push(`${name}${labels(l)} ${typeof v === 'bigint' ? v.toString() : formatNumber(v)}`);
  }
  text(): string {
    return this.lines.join('\n') + '\n';
  }
}

function formatNumber(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (!Number.isFinite(v)) return v > 0 ? '+Inf' : '-Inf';
  return String(v);
}

export function renderMetrics(m: MetricsInput): string {
  const w = new Writer();
  const p = m.ports;
  w.family('vhost_switch_info', 'gauge', 'Build information; always 1.', [[{ version: m.version }, 1]]);
  w.family('vhost_switch_uptime_seconds', 'gauge', 'Seconds since the daemon started.', [[{}, Math.floor(m.uptimeSeconds)]]);
  w.family('vhost_switch_port_rx_packets_total', 'counter', 'Frames received from the guest (its TX queues).', p.map((s) => [{ port: s.name }, s.rxPackets]));
  w.family('vhost_switch_port_rx_bytes_total', 'counter', 'Bytes received from the guest.', p.map((s) => [{ port: s.name }, s.rxBytes]));
  w.family('vhost_switch_port_tx_packets_total', 'counter', 'Frames delivered to the guest (its RX queues).', p.map((s) => [{ port: s.name }, s.txPackets]));
  w.family('vhost_switch_port_tx_bytes_total', 'counter', 'Bytes delivered to the guest.', p.map((s) => [{ port: s.name }, s.txBytes]));
  w.family(
    'vhost_switch_port_drops_total',
    'counter',
    'Frames dropped, by reason.',
    p.flatMap((s) => Object.entries(s.drops).map(([reason, v]) => [{ port: s.name, reason: snakeCase(reason) }, v] as [Record<string, string>, bigint])),
  );
  w.family('vhost_switch_port_protocol_errors_total', 'counter', 'vhost-user protocol errors from the frontend.', p.map((s) => [{ port: s.name }, s.protocolErrors]));
  w.family('vhost_switch_port_broken', 'gauge', '1 while a ring of the port is marked broken.', p.map((s) => [{ port: s.name }, s.broken ? 1 : 0]));
  w.family(
    'vhost_switch_port_state',
    'gauge',
    '1 for the vhost-user state the port is in.',
    p.flatMap((s) => STATES.map((st) => [{ port: s.name, state: st }, s.state === st ? 1 : 0] as [Record<string, string>, number])),
  );
  w.family('vhost_switch_port_queue_pairs', 'gauge', 'Queue pairs the port offers.', m.portInfo.map((i) => [{ port: i.name }, i.queues]));
  w.family(
    'vhost_switch_port_info',
    'gauge',
    'What each port is; always 1 (join on port).',
    m.portInfo.map((i) => [
      {
        port: i.name,
        type: snakeCase(i.type),
        mode: i.type === 'vhost-user' ? i.mode : '',
        vlan_mode: i.vlanMode,
        vlan: i.vlan,
        backend: i.activeBackend ?? '',
        iface: i.iface ?? '',
        origin: i.origin,
      },
      1,
    ]),
  );
  w.family('vhost_switch_tsc_hz', 'gauge', 'TSC ticks per second: divide the cycle counters by it for seconds.', [[{}, m.tscHz]]);
  const t = m.threads;
  w.family('vhost_switch_thread_busy_cycles_total', 'counter', 'CPU cycles a poll thread spent moving packets.', t.map((s) => [{ thread: s.thread }, s.busyCycles]));
  w.family('vhost_switch_thread_idle_cycles_total', 'counter', 'CPU cycles a poll thread spent polling empty rings.', t.map((s) => [{ thread: s.thread }, s.idleCycles]));
  w.family('vhost_switch_thread_packets_total', 'counter', 'Packets a poll thread forwarded.', t.map((s) => [{ thread: s.thread }, s.packets]));
  w.family('vhost_switch_thread_cycles_per_packet', 'gauge', 'Busy cycles per packet since start.', t.map((s) => [{ thread: s.thread }, s.cyclesPerPacket]));
  w.family('vhost_switch_thread_sleeping', 'gauge', '1 while a poll thread sleeps for lack of traffic.', t.map((s) => [{ thread: s.thread }, s.sleeping ? 1 : 0]));
  const statics = m.fdb.filter((e) => e.static).length;
  w.family('vhost_switch_fdb_entries', 'gauge', 'Forwarding table entries.', [
    [{ type: 'static' }, statics],
    [{ type: 'learned' }, m.fdb.length - statics],
  ]);
  return w.text();
}

/** The switch's metrics and the process's (prom-client default collectors, prefixed vhost_switch_), one text. */
export class Metrics {
  private readonly registry = new client.Registry();

  constructor(private readonly sample: () => MetricsInput) {
    client.collectDefaultMetrics({ register: this.registry, prefix: 'vhost_switch_' });
  }

  async text(): Promise<string> {
    return renderMetrics(this.sample()) + (await this.registry.metrics());
  }
}
