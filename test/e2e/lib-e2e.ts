// Helpers shared by the fwd-* and fault-* e2e files: a daemon started with full port specs (offloads, MAC, MTU,
// static FDB entries), full per-port stats with queues, ping parsing, and guest boot/link waits.
import fs from 'node:fs';
import path from 'node:path';
import { DaemonProcess } from '../integration/support/daemon.js';
import { waitUntil } from '../../harness/env.js';
import type { Guest } from '../support/qemu.js';

/** A port as the config file / POST /v1/ports takes it (see src/config.ts portSpecSchema). */
export interface PortSpecJson {
  name: string;
  mode: 'server' | 'client';
  socket: string;
  vlan?: number;
  queues?: number;
  mtu?: number;
  mac?: string;
  offloads?: boolean;
  portSecurity?: boolean;
  allowedMacs?: string[];
  allowedIps?: string[];
}

export interface FdbSpecJson {
  mac: string;
  vlan?: number;
  port: string;
}

/** Writes RUN_DIR/switch.json with these ports (and static entries) and `threads` poll threads (default 1). */
export function writeSpecConfig(runDir: string, ports: PortSpecJson[], fdb: FdbSpecJson[] = [], threads = 1): string {
  const file = path.join(runDir, 'switch.json');
  const config = { switch: { threads }, ports: ports.map((p) => ({ type: 'vhost-user', ...p })), fdb };
  fs.writeFileSync(file, JSON.stringify(config, null, 2));
  return file;
}

/** Starts the real daemon on runDir with a config of these ports; waits for its API. */
export async function startSpecSwitch(
  runDir: string,
  ports: PortSpecJson[],
  opts: { fdb?: FdbSpecJson[]; args?: string[]; threads?: number } = {},
): Promise<DaemonProcess> {
  const config = writeSpecConfig(runDir, ports, opts.fdb, opts.threads);
  return DaemonProcess.start(runDir, ['--config', config, ...(opts.args ?? [])]);
}

export interface QueueStatsView {
  index: number;
  started: boolean;
  enabled: boolean;
  packets: number;
  bytes: number;
  drops: Record<string, number>;
}

export interface FullPortStats {
  name: string;
  state: string;
  rxPackets: number;
  rxBytes: number;
  txPackets: number;
  txBytes: number;
  drops: Record<string, number>;
  broken: boolean;
  protocolErrors: number;
  queues: QueueStatsView[];
}

const num = (v: unknown) => Number(v as number | string);
const numMap = (m: Record<string, unknown> | undefined) => Object.fromEntries(Object.entries(m ?? {}).map(([k, v]) => [k, num(v)]));

/** GET /v1/ports/NAME/stats with every counter as a number (the API sends counters above 2^53 as strings). */
export async function fullStats(d: DaemonProcess, name: string): Promise<FullPortStats> {
  const r = await d.api.request('GET', `/v1/ports/${encodeURIComponent(name)}/stats`);
  if (r.status !== 200) throw new Error(`stats of ${name}: ${r.status} ${r.text}`);
  const b = r.body as Record<string, unknown> & { queues?: Array<Record<string, unknown>>; drops?: Record<string, unknown> };
  return {
    name: String(b.name),
    state: String(b.state),
    rxPackets: num(b.rxPackets),
    rxBytes: num(b.rxBytes),
    txPackets: num(b.txPackets),
    txBytes: num(b.txBytes),
    drops: numMap(b.drops),
    broken: Boolean(b.broken),
    protocolErrors: num(b.protocolErrors ?? 0),
    queues: (b.queues ?? []).map((q) => ({
      index: num(q.index),
      started: Boolean(q.started),
      enabled: Boolean(q.enabled),
      packets: num(q.packets),
      bytes: num(q.bytes),
      drops: numMap(q.drops as Record<string, unknown> | undefined),
    })),
  };
}

/** Sum of all drop reasons. */
export function totalDrops(s: { drops: Record<string, number> }): number {
  return Object.values(s.drops).reduce((a, b) => a + b, 0);
}

export interface PingSummary {
  transmitted: number;
  received: number;
}

/** Parses busybox/iputils ping's summary line; throws when it is missing. */
export function parsePing(output: string): PingSummary {
  const m = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(output);
  if (!m) throw new Error(`no ping summary in:\n${output}`);
  return { transmitted: Number(m[1]), received: Number(m[2]) };
}

/** Waits for every guest's ready marker, then for carrier on eth0 of each. */
export async function bootAndLink(guests: Guest[], dev = 'eth0'): Promise<void> {
  await Promise.all(guests.map((g) => g.waitReady()));
  await Promise.all(guests.map((g) => g.waitLink(dev, 120_000)));
}

/**
 * Pings until one echo comes back (ARP may need a moment after a reconnect), up to `ms`; returns the output of the
 * successful run. Each try is `ping -c 1 -W 2`.
 */
export async function pingUntilOk(g: Guest, addr: string, ms = 120_000): Promise<string> {
  let last = '';
  await waitUntil(
    async () => {
      const r = await g.run(`ping -c 1 -W 2 ${addr}`, 60_000);
      last = r.output;
      return r.exitCode === 0 && parsePing(r.output).received === 1;
    },
    ms,
    `${g.name}: ping ${addr} (last try:\n${last})`,
    500,
  );
  return last;
}

/** The daemon's stderr lines matching `re` (logfmt), e.g. /msg="features negotiated" port=vhu-a/. */
export function logLines(d: DaemonProcess, re: RegExp): string[] {
  return d.stderr.split('\n').filter((l) => re.test(l));
}
