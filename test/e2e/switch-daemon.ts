// The real switch daemon for e2e tests: a config file with the ports a test wants, the daemon started
// from the compiled CLI, and small helpers over its control API.
import fs from 'node:fs';
import path from 'node:path';
import { DaemonProcess } from '../integration/support/daemon.js';
import { waitUntil } from '../../harness/env.js';

export interface E2ePort {
  name: string;
  mode: 'server' | 'client';
  socket: string;
  vlan?: number;
  queues?: number;
}

export function writeConfig(runDir: string, ports: E2ePort[], extra: Record<string, unknown> = {}): string {
  const file = path.join(runDir, 'switch.json');
  const config = {
    switch: { threads: 1, ...extra },
    ports: ports.map((p) => ({
      name: p.name,
      type: 'vhost-user',
      mode: p.mode,
      socket: p.socket,
      ...(p.vlan ? { vlan: p.vlan } : {}),
      ...(p.queues ? { queues: p.queues } : {}),
    })),
  };
  fs.writeFileSync(file, JSON.stringify(config, null, 2));
  return file;
}

export async function startSwitch(runDir: string, ports: E2ePort[], args: string[] = []): Promise<DaemonProcess> {
  const config = writeConfig(runDir, ports);
  return DaemonProcess.start(runDir, ['--config', config, ...args]);
}

export interface PortView {
  name: string;
  state: string;
}

export async function portState(d: DaemonProcess, name: string): Promise<string> {
  const r = await d.api.request('GET', `/v1/ports/${name}`);
  return (r.body as PortView).state;
}

export async function waitPortState(d: DaemonProcess, name: string, want: (s: string) => boolean, ms = 120_000): Promise<void> {
  await waitUntil(async () => want(await portState(d, name)), ms, `port ${name} state`, 200);
}

export interface PortCounters {
  rxPackets: number;
  txPackets: number;
  drops: Record<string, number>;
}

export async function portCounters(d: DaemonProcess, name: string): Promise<PortCounters> {
  const r = await d.api.request('GET', `/v1/ports/${name}/stats`);
  if (r.status !== 200) throw new Error(`stats of ${name}: ${r.status} ${JSON.stringify(r.body)}`);
  const b = r.body as { rxPackets: number | string; txPackets: number | string; drops: Record<string, number | string> };
  return {
    rxPackets: Number(b.rxPackets),
    txPackets: Number(b.txPackets),
    drops: Object.fromEntries(Object.entries(b.drops).map(([k, v]) => [k, Number(v)])),
  };
}
