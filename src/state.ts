// state.json: the ports and static FDB entries created through the API, so a restarted daemon (crash, SIGKILL,
// upgrade) reopens the same sockets and QEMU reconnects without a guest reboot. Config-file ports are never stored
// here: the config file is their source of truth (see docs/cli.md, "Config and state").
import fs from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { fdbSpecSchema, issuesOf, portSpecSchema, type FdbSpec, type PortSpec } from './config.js';
import type { Logger } from './log.js';

export const STATE_VERSION = 1;

export const stateSchema = z.strictObject({
  version: z.literal(STATE_VERSION),
  ports: z.array(portSpecSchema),
  fdb: z.array(fdbSpecSchema),
});

export interface PersistedState {
  version: typeof STATE_VERSION;
  ports: PortSpec[];
  fdb: FdbSpec[];
}

export function emptyState(): PersistedState {
  return { version: STATE_VERSION, ports: [], fdb: [] };
}

/**
 * Replaces `file` so that a crash at any instant leaves either the old or the new content, never a torn file:
 * write a temp file in the same directory, fsync it, rename over the target, then fsync the directory so the
 * rename itself is durable.
 */
export async function writeFileAtomic(file: string, data: string, mode = 0o600): Promise<void> {
  const dir = path.dirname(file);
  const tmp = path.join(dir, `.${path.basename(file)}.tmp-${process.pid}`);
  const fh = await fs.open(tmp, 'w', mode);
  try {
    await fh.writeFile(data, 'utf8');
    await fh.sync();
  } catch (err) {
    await fh.close();
    await fs.rm(tmp, { force: true });
    throw err;
  }
  await fh.close();
  try {
    await fs.rename(tmp, file);
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw err;
  }
  const dh = await fs.open(dir, 'r');
  try {
    await dh.sync();
  } finally {
    await dh.close();
  }
}

export class StateStore {
  // Saves run one after another: two API calls finishing together must not interleave their renames.
  private queue: Promise<void> = Promise.resolve();

  constructor(
    readonly file: string,
    private readonly log: Logger,
  ) {}

  /**
   * The stored state; empty when there is none. A file that is not valid is moved aside (state.json.bad-TIME) and
   * logged rather than fatal: the config-file ports must still come up, and the operator keeps the bad file.
   */
  async load(): Promise<PersistedState> {
    let text: string;
    try {
      text = await fs.readFile(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return emptyState();
      throw new Error(`state ${this.file}: ${(err as Error).message}`);
    }
    let reason: string;
    try {
      const r = stateSchema.safeParse(JSON.parse(text));
      if (r.success) return r.data;
      reason = issuesOf(r.error)
        .map((i) => `${i.field || '(root)'}: ${i.reason}`)
        .join('; ');
    } catch (err) {
      reason = `not valid JSON: ${(err as Error).message}`;
    }
    const aside = `${this.file}.bad-${new Date().toISOString().replace(/[:.]/g, '')}`;
    await fs.rename(this.file, aside);
    this.log.error('stored state is invalid; starting without it', { file: this.file, movedTo: aside, reason });
    return emptyState();
  }

  save(state: PersistedState): Promise<void> {
    const data = JSON.stringify(state, null, 2) + '\n';
    const next = this.queue.then(() => writeFileAtomic(this.file, data));
    // A failed save must not wedge the queue for the next one; the caller still sees this failure.
    this.queue = next.catch(() => {});
    return next;
  }

  /** Waits for saves in flight (for shutdown). */
  flush(): Promise<void> {
    return this.queue;
  }
}
