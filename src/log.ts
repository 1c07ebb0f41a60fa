// Structured logs: one line per event, logfmt by default (greppable by eye and by `grep port=vhu0`),
// JSON lines with VHOST_SWITCH_LOG_FORMAT=json for log shippers. Every line carries time, level and msg;
// a child logger bound to a port adds port=NAME so a port's whole life can be followed in one grep. Under
// systemd, when stderr is the journal (JOURNAL_STREAM), each line starts with its syslog priority (<3> ... <7>,
// sd-daemon(3)), so `journalctl -p warning` finds the warnings.
import fs from 'node:fs';

export const LEVELS = ['debug', 'info', 'warn', 'error'] as const;
export type Level = (typeof LEVELS)[number];
export type LogFormat = 'logfmt' | 'json';
export type Fields = Record<string, unknown>;

export interface Logger {
  readonly level: Level;
  debug(msg: string, fields?: Fields): void;
  info(msg: string, fields?: Fields): void;
  warn(msg: string, fields?: Fields): void;
  error(msg: string, fields?: Fields): void;
  /** A logger that adds `fields` to every line (e.g. {port: 'vhu0'}). */
  child(fields: Fields): Logger;
  isEnabled(level: Level): boolean;
}

export interface LoggerOptions {
  level?: Level;
  format?: LogFormat;
  /** Where lines go; stderr by default so stdout stays for the QEMU attach hints and CLI output. */
  write?: (line: string) => void;
  /** Injected clock, for tests. */
  now?: () => Date;
  /** Prefix each line with its syslog priority; by default when stderr is the journal (stderrIsJournal). */
  journal?: boolean;
}

/** sd-daemon(3) priorities: err, warning, info, debug. */
const PRIORITY: Record<Level, number> = { error: 3, warn: 4, info: 6, debug: 7 };

/** JOURNAL_STREAM is "DEVICE:INODE" of the stream systemd connected to the journal: is stderr still that one? */
export function stderrIsJournal(env: NodeJS.ProcessEnv = process.env, fd = 2): boolean {
  const m = /^(\d+):(\d+)$/.exec(env.JOURNAL_STREAM ?? '');
  if (!m) return false;
  try {
    const st = fs.fstatSync(fd, { bigint: true });
    return st.dev === BigInt(m[1]) && st.ino === BigInt(m[2]);
  } catch {
    return false;
  }
}

export function parseLevel(value: string | undefined, fallback: Level = 'info'): Level {
  if (value === undefined || value === '') return fallback;
  const v = value.toLowerCase();
  if ((LEVELS as readonly string[]).includes(v)) return v as Level;
  throw new Error(`invalid log level "${value}": expected one of ${LEVELS.join(', ')}`);
}

/** Level from the flag, else VHOST_SWITCH_LOG, else info. */
export function levelFromEnv(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): Level {
  return parseLevel(flag ?? env.VHOST_SWITCH_LOG, 'info');
}

const RANK: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

// Values are rendered so a line never spans two lines and never needs a parser that knows types:
// errors become their message, bigints their decimal digits.
function plain(value: unknown): unknown {
  if (typeof value === 'bigint') return value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value.toString();
  if (value instanceof Error) return value.message;
  return value;
}

function logfmtValue(value: unknown): string {
  const v = plain(value);
  const s = typeof v === 'string' ? v : v === undefined ? '' : JSON.stringify(v, (_k, x) => plain(x));
  return s === '' || /[\s"=\\]/.test(s) || /[\x00-\x1f]/.test(s) ? JSON.stringify(s) : s;
}

export function formatLine(format: LogFormat, time: Date, level: Level, msg: string, fields: Fields): string {
  const record: Fields = { time: time.toISOString(), level, msg, ...fields };
  if (format === 'json') return JSON.stringify(record, (_k, x) => plain(x));
  return Object.entries(record)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}=${logfmtValue(v)}`)
    .join(' ');
}

export function createLogger(opts: LoggerOptions = {}, bound: Fields = {}): Logger {
  const level = opts.level ?? 'info';
  const format = opts.format ?? 'logfmt';
  const write = opts.write ?? ((line: string) => process.stderr.write(line + '\n'));
  const now = opts.now ?? (() => new Date());
  const journal = opts.journal ?? (opts.write === undefined && stderrIsJournal());
  const isEnabled = (l: Level) => RANK[l] >= RANK[level];
  const emit = (l: Level, msg: string, fields?: Fields) => {
    if (!isEnabled(l)) return;
    const line = formatLine(format, now(), l, msg, { ...bound, ...fields });
    write(journal ? `<${PRIORITY[l]}>${line}` : line);
  };
  return {
    level,
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    child: (fields) => createLogger({ ...opts, journal }, { ...bound, ...fields }),
    isEnabled,
  };
}

/** A logger that drops everything; for tests and library users who bring no logger. */
export const nullLogger: Logger = createLogger({ level: 'error', write: () => {} });
