// state.json: the ports and static FDB entries created through the API, so a restarted daemon (crash, SIGKILL,
// upgrade) reopens the same sockets and QEMU reconnects without a guest reboot. Config-file ports are never stored
// here: the config file is their source of truth (see docs/cli.md, "Config and state").
import fs from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { fdbSpecSchema, issuesOf, portSpecSchema, type FdbSpec, type PortSpec } from '../config.js';
import type { Logger } from '../log.js';

export const STATE_VERSION = 1;

/** The envelope; each entry is validated on its own (see StateStore.load), so one bad entry costs only itself. */
export const stateSchema = z.strictObject({
  version: z.literal(STATE_VERSION),
  ports: z.array(z.unknown()),
  fdb: z.array(z.unknown()),
});

export interface PersistedState {
  version: typeof STATE_VERSION;
  ports: PortSpec[];
  fdb: FdbSpec[];
}

/** A stored entry the daemon does not use: where it was in state.json, why, and the entry as it was stored. */
export interface SetAside {
  entry: string;
  reason: string;
  value: unknown;
}

/** A valid stored entry, with its place in the file for the log lines about it. */
export interface Stored<T> {
  entry: string;
  spec: T;
}

export interface LoadedState {
  ports: Stored<PortSpec>[];
  fdb: Stored<FdbSpec>[];
  /** Entries that did not validate. */
  invalid: SetAside[];
}

export function emptyState(): PersistedState {
  return { version: STATE_VERSION, ports: [], fdb: [] };
}

/**
 * The state directory moved (an upgrade: state.json used to sit in the run directory, which is a tmpfs for the
 * system switch): a state.json left at `from` is taken over when `to` has none, so the ports it holds come back.
 * Returns true when it moved one.
 */
export async function adoptStateFile(from: string, to: string, log: Logger): Promise<boolean> {
  if (path.resolve(from) === path.resolve(to)) return false;
  const exists = (f: string) => fs.stat(f).then(() => true, () => false);
  if ((await exists(to)) || !(await exists(from))) return false;
  await writeFileAtomic(to, await fs.readFile(from, 'utf8'));
  await fs.rm(from, { force: true });
  log.warn('state.json taken over from its old place', { from, to });
  return true;
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
   * The stored entries, each validated on its own; nothing when there is no file. An entry that does not validate
   * is logged and returned in `invalid` (the caller sets it aside with the others it cannot restore); only a file
   * whose envelope is unusable (not JSON, another version) is moved aside whole (state.json.bad-TIME). Neither is
   * fatal: the config-file ports must still come up, and the operator keeps what was refused.
   */
  async load(): Promise<LoadedState> {
    const loaded: LoadedState = { ports: [], fdb: [], invalid: [] };
    let text: string;
    try {
      text = await fs.readFile(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return loaded;
      throw new Error(`state ${this.file}: ${(err as Error).message}`);
    }
    let reason: string;
    try {
      const r = stateSchema.safeParse(JSON.parse(text));
      if (r.success) {
        const take = <T>(kind: 'ports' | 'fdb', schema: z.ZodType<T>, out: Stored<T>[]) =>
          r.data[kind].forEach((value, i) => {
            const entry = `${kind}[${i}]`;
            const p = schema.safeParse(kind === 'ports' ? withoutEmptySocket(value) : value);
            if (p.success) return out.push({ entry, spec: p.data });
            const why = describeIssues(p.error);
            this.log.error('stored entry is invalid and is set aside', { entry, reason: why });
            loaded.invalid.push({ entry, reason: why, value });
          });
        take('ports', portSpecSchema, loaded.ports);
        take('fdb', fdbSpecSchema, loaded.fdb);
        return loaded;
      }
      reason = describeIssues(r.error);
    } catch (err) {
      reason = `not valid JSON: ${(err as Error).message}`;
    }
    const aside = await asidePath(this.file);
    await fs.rename(this.file, aside);
    this.log.error('stored state is invalid; starting without it', { file: this.file, movedTo: aside, reason });
    return loaded;
  }

  /**
   * Writes the entries the daemon is not going to use to state.json.bad-TIME (0600, like state.json) and returns
   * its path. Called before state.json is rewritten without them, so a crash in between leaves them in both
   * files rather than in neither.
   */
  async setAside(rejected: SetAside[]): Promise<string> {
    const aside = await asidePath(this.file);
    await writeFileAtomic(aside, JSON.stringify({ from: this.file, time: new Date().toISOString(), rejected }, null, 2) + '\n');
    return aside;
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

function describeIssues(error: z.ZodError): string {
  return issuesOf(error)
    .map((i) => `${i.field || '(root)'}: ${i.reason}`)
    .join('; ');
}

/** state.json.bad-TIME, with -N appended if that name is taken (two set-asides within a millisecond). */
async function asidePath(file: string): Promise<string> {
  const base = `${file}.bad-${new Date().toISOString().replace(/[:.]/g, '')}`;
  for (let n = 0; ; n++) {
    const candidate = n === 0 ? base : `${base}-${n}`;
    try {
      await fs.lstat(candidate);
    } catch {
      return candidate;
    }
  }
}

/**
 * Earlier versions stored nic and tap ports with `socket: ""`, which the schema refuses ("must not be empty"): such
 * an entry is read as having no socket, so those ports come back instead of being set aside.
 */
function withoutEmptySocket(value: unknown): unknown {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return value;
  const v = value as Record<string, unknown>;
  if (v.socket !== '' || (v.type !== 'nic' && v.type !== 'tap')) return value;
  const { socket: _empty, ...rest } = v;
  return rest;
}
