// A QMP client (QEMU Machine Protocol, JSON lines over a Unix socket) for tests that drive QEMU itself:
// live migration (`migrate`, `query-migrate`), memory hot-plug (`object-add`, `device_add`).
import net from 'node:net';
import { sleep } from '../../harness/env.js';

export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
  timestamp?: { seconds: number; microseconds: number };
}

export class QmpError extends Error {}

export class Qmp {
  readonly events: QmpEvent[] = [];
  private buf = '';
  private pending: { resolve: (v: unknown) => void; reject: (e: Error) => void }[] = [];
  private greeted!: Promise<void>;
  private closed = false;

  private constructor(private readonly sock: net.Socket) {
    let greet: () => void;
    this.greeted = new Promise((r) => (greet = r));
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => {
      this.buf += d;
      let nl;
      while ((nl = this.buf.indexOf('\n')) >= 0) {
        const line = this.buf.slice(0, nl).trim();
        this.buf = this.buf.slice(nl + 1);
        if (!line) continue;
        const msg = JSON.parse(line) as Record<string, unknown>;
        if ('QMP' in msg) greet();
        else if ('event' in msg) this.events.push(msg as unknown as QmpEvent);
        else if ('return' in msg) this.pending.shift()?.resolve(msg.return);
        else if ('error' in msg) {
          const e = msg.error as { class: string; desc: string };
          this.pending.shift()?.reject(new QmpError(`${e.class}: ${e.desc}`));
        }
      }
    });
    const fail = (why: string) => {
      this.closed = true;
      for (const p of this.pending.splice(0)) p.reject(new QmpError(`QMP connection ${why}`));
    };
    sock.on('close', () => fail('closed'));
    sock.on('error', (e) => fail(`error: ${e.message}`));
  }

  /** Connects (retrying while QEMU has not created the socket yet) and leaves capabilities negotiation mode. */
  static async connect(path: string, timeoutMs = 60_000): Promise<Qmp> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        const sock = await new Promise<net.Socket>((resolve, reject) => {
          const s = net.createConnection(path);
          s.once('connect', () => resolve(s));
          s.once('error', reject);
        });
        const q = new Qmp(sock);
        await q.greeted;
        await q.execute('qmp_capabilities');
        return q;
      } catch (e) {
        if (Date.now() > deadline) throw new Error(`QMP ${path}: ${(e as Error).message}`);
        await sleep(100);
      }
    }
  }

  /** Runs one command; resolves with its `return`, rejects with QmpError on `error`. */
  execute<T = unknown>(command: string, args?: Record<string, unknown>): Promise<T> {
    if (this.closed) return Promise.reject(new QmpError('QMP connection closed'));
    return new Promise<T>((resolve, reject) => {
      this.pending.push({ resolve: resolve as (v: unknown) => void, reject });
      this.sock.write(JSON.stringify(args ? { execute: command, arguments: args } : { execute: command }) + '\n');
    });
  }

  /** Waits for an event by name (one already received counts). */
  async waitEvent(name: string, timeoutMs = 60_000, match: (e: QmpEvent) => boolean = () => true): Promise<QmpEvent> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const e = this.events.find((x) => x.event === name && match(x));
      if (e) return e;
      if (this.closed || Date.now() > deadline) throw new QmpError(`no ${name} event after ${timeoutMs} ms`);
      await sleep(50);
    }
  }

  close(): void {
    this.sock.destroy();
  }
}

export interface MigrationInfo {
  status: string;
  'total-time'?: number;
  downtime?: number;
  'setup-time'?: number;
  ram?: { transferred: number; total: number; 'dirty-sync-count': number };
  'error-desc'?: string;
}

/** Polls query-migrate until the migration completed (resolves) or failed/cancelled (rejects). */
export async function waitMigration(q: Qmp, timeoutMs = 300_000): Promise<MigrationInfo> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const info = await q.execute<MigrationInfo>('query-migrate');
    if (info.status === 'completed') return info;
    if (info.status === 'failed' || info.status === 'cancelled') {
      throw new QmpError(`migration ${info.status}: ${info['error-desc'] ?? JSON.stringify(info)}`);
    }
    if (Date.now() > deadline) throw new QmpError(`migration not done after ${timeoutMs} ms: ${JSON.stringify(info)}`);
    await sleep(200);
  }
}
