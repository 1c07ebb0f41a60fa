// What every CLI command gets: the API client, --json, and where to write (injectable for tests).
import type { Command } from 'commander';
import { toJson } from '../api/http.js';
import type { ApiClient } from './client.js';

export interface CliContext {
  client: ApiClient;
  json: boolean;
  out: (text: string) => void;
  err: (text: string) => void;
  /** --run-dir, when given (the daemon's; client commands find its control socket through it). */
  runDir?: string;
}

/** What main.ts gives each command module: action() wraps a handler, building its context and keeping its exit code. */
export interface CliHost {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  action(fn: (ctx: CliContext, ...args: any[]) => Promise<number>): (...args: any[]) => Promise<void>;
}

/** Repeated and comma-separated values of one option, collected as one list ("a,b" --x c → [a, b, c]). */
export function collectList(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), ...value.split(',').map((v) => v.trim()).filter((v) => v !== '')];
}

/** A usage error about cmd, with its help text. */
export function usage(cmd: Command, message: string): UsageError {
  return new UsageError(message, cmd.helpInformation().trimEnd());
}

/** Wrong arguments: exit status 2 and the usage line. */
export class UsageError extends Error {
  constructor(
    message: string,
    readonly usage?: string,
  ) {
    super(message);
    this.name = 'UsageError';
  }
}

export function printJson(ctx: CliContext, value: unknown): void {
  ctx.out(JSON.stringify(JSON.parse(toJson(value)), null, 2) + '\n');
}

/**
 * Flag values go to the API as typed as they can be ("4" → 4) but are never judged here: the daemon's validation
 * gives the one message for a bad value, whether it came from the CLI, curl or a config file.
 */
export function numeric(v: string | undefined): string | number | undefined {
  return v !== undefined && /^-?\d+$/.test(v) ? Number(v) : v;
}
