// What "healthy" means for a running switch: every poll thread makes progress, no ring is stopped, every port
// has its peer and every host port its interface. GET /v1/health reports it, and the systemd watchdog (src/host/notify.ts) pings only while the poll
// threads are alive.
import fs from 'node:fs';
import type { ThreadStats } from '../dataplane/native.js';
import type { VSwitch } from './model.js';

/**
 * A poll thread is alive when it sleeps on its kicks (an idle switch) or has finished a poll pass since the last
 * look. One that does neither is stuck inside a pass: a guest page that never arrives, a bug.
 */
export class PollThreadWatch {
  private last = new Map<number, bigint>();

  constructor(private readonly read: () => ThreadStats[]) {}

  /** Threads that neither slept nor finished a pass since the previous call (none at the first call). */
  stalled(): number[] {
    const out: number[] = [];
    for (const t of this.read()) {
      // busy + idle cycles grow at the end of every pass; parks and sleeps when the thread waits.
      const progress = t.busyCycles + t.idleCycles + t.parks + t.sleeps;
      const before = this.last.get(t.thread);
      this.last.set(t.thread, progress);
      if (before !== undefined && !t.sleeping && progress === before) out.push(t.thread);
    }
    return out;
  }
}

export interface HealthReport {
  status: 'ok' | 'degraded';
  /** Why not ok, one line each (empty when ok). */
  reasons: string[];
}

/** stalledThreads: from a PollThreadWatch that samples far enough apart that a live thread has surely moved. */
/** Is the kernel interface still there? */
export function ifaceExists(name: string): boolean {
  return fs.existsSync(`/sys/class/net/${name}`);
}

export function healthReport(vs: Pick<VSwitch, 'listPorts' | 'portStats'>, stalledThreads: number[], hasIface = ifaceExists): HealthReport {
  const reasons = stalledThreads.map((t) => `poll thread ${t} is stalled: no poll pass finished since the last check`);
  for (const p of vs.listPorts()) {
    const s = vs.portStats(p.name);
    if (s.broken) reasons.push(`port ${p.name}: a ring is stopped (bad descriptors or memory); the guest must reset its device`);
    if ((p.type === 'nic' || p.type === 'tap') && p.iface && !hasIface(p.iface))
      reasons.push(`port ${p.name}: its interface ${p.iface} is gone (${p.type === 'tap' ? 'the tap device was deleted' : 'unplugged, renamed or moved to another namespace'})`);
    if (p.type === 'vhost-user' && p.mode === 'client' && (p.state === 'connecting' || p.state === 'closed'))
      reasons.push(`port ${p.name}: cannot reach its socket ${p.socket} (client mode; retrying)`);
  }
  return { status: reasons.length ? 'degraded' : 'ok', reasons };
}
