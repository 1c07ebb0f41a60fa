// Prometheus over TCP (--metrics-listen) on the real daemon: the switch's counters exactly as GET /v1/metrics has
// them, what each port is, the TSC rate, and the process and Node.js runtime metrics; loopback unless a host is
// named; nothing but GET /metrics answered.
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeRunDir, repoRoot } from '../../harness/env.js';
import { DaemonProcess } from './support/daemon.js';

const T = { timeout: 60_000 };
const port = 20_000 + (process.pid % 20_000);
let d: DaemonProcess;

function get(path: string): Promise<{ status: number; type: string; text: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path }, (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode!, type: String(res.headers['content-type']), text }));
      })
      .on('error', reject);
  });
}

beforeAll(async () => {
  d = await DaemonProcess.start(makeRunDir('metrics'), ['--metrics-listen', String(port)]);
}, 30_000);
afterAll(async () => {
  if (d?.alive()) await d.stop('SIGTERM');
}, 30_000);

describe('metrics over TCP', T, () => {
  it('serves the switch, port info, TSC rate, process and runtime metrics on loopback', async () => {
    expect(d.stderr).toMatch(new RegExp(`msg="metrics listening" address=127\\.0\\.0\\.1:${port} path=/metrics`));
    const r = await get('/metrics');
    expect(r.status).toBe(200);
    expect(r.type).toContain('text/plain; version=0.0.4');
    expect(r.text).toMatch(/^vhost_switch_port_rx_packets_total\{port="vhu0"\} \d+$/m);
    expect(r.text).toMatch(/^vhost_switch_port_info\{port="vhu0",type="vhost_user",mode="server",vlan_mode="access",vlan="0",backend="",iface="",origin="config"\} 1$/m);
    expect(Number(/^vhost_switch_tsc_hz (\d+)$/m.exec(r.text)?.[1])).toBeGreaterThan(1e8);
    expect(r.text).toMatch(/^vhost_switch_process_cpu_seconds_total \d/m);
    expect(r.text).toMatch(/^vhost_switch_process_resident_memory_bytes \d+/m);
    expect(r.text).toMatch(/^vhost_switch_nodejs_heap_size_used_bytes \d+/m);
    // Label values are snake_case.
    for (const m of r.text.matchAll(/reason="([^"]*)"/g)) expect(m[1]).toMatch(/^[a-z0-9_]+$/);
    // The same switch families as on the control socket.
    const families = (t: string) => [...t.matchAll(/^# TYPE (vhost_switch_(?:port|thread|fdb)_\w+)/gm)].map((m) => m[1]).sort();
    expect(families(r.text)).toEqual(families((await d.api.request('GET', '/v1/metrics')).text));
  });

  it('the Grafana dashboard in docs/ uses only metrics the switch exports', async () => {
    const dash = JSON.parse(fs.readFileSync(path.join(repoRoot, 'docs', 'grafana', 'vhost-switch.json'), 'utf8')) as { panels: Array<{ targets: Array<{ expr: string }> }> };
    const exported = new Set([...(await get('/metrics')).text.matchAll(/^# TYPE (\w+)/gm)].map((m) => m[1]));
    const used = new Set(dash.panels.flatMap((p) => p.targets.flatMap((t) => [...t.expr.matchAll(/\bvhost_switch_\w+/g)].map((m) => m[0]))));
    expect(used.size).toBeGreaterThan(10);
    expect([...used].filter((m) => !exported.has(m))).toEqual([]);
  });

  it('answers nothing but GET /metrics', async () => {
    expect((await get('/v1/ports')).status).toBe(404);
  });
});
