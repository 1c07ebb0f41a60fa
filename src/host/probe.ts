// The host as `vhost-switch doctor` sees it: files, stats, programs and the identity of this process, behind one
// interface so the checks run against a fake host in tests.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface FileStat {
  mode: number;
  uid: number;
  gid: number;
  isDirectory: boolean;
  isSocket: boolean;
  isCharDevice: boolean;
}

export interface ExecResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface HostProbe {
  readFile(p: string): string | null;
  stat(p: string): FileStat | null;
  readdir(p: string): string[] | null;
  /** null when the program is not there. */
  exec(cmd: string, args: string[]): Promise<ExecResult | null>;
  which(cmd: string): string | null;
  /** Can this process open the path read-write? */
  canOpenRw(p: string): boolean;
  kernelRelease(): string;
  arch(): string;
  uid(): number;
  gids(): number[];
}

export function realHost(): HostProbe {
  return {
    readFile(p) {
      try {
        return fs.readFileSync(p, 'utf8');
      } catch {
        return null;
      }
    },
    stat(p) {
      try {
        const s = fs.statSync(p);
        return { mode: s.mode, uid: s.uid, gid: s.gid, isDirectory: s.isDirectory(), isSocket: s.isSocket(), isCharDevice: s.isCharacterDevice() };
      } catch {
        return null;
      }
    },
    readdir(p) {
      try {
        return fs.readdirSync(p);
      } catch {
        return null;
      }
    },
    exec(cmd, args) {
      return new Promise((resolve) => {
        execFile(cmd, args, { timeout: 10_000, encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } }, (err, stdout, stderr) => {
          const e = err as (NodeJS.ErrnoException & { code?: unknown }) | null;
          if (e && e.code === 'ENOENT') return resolve(null);
          resolve({ code: e ? (typeof e.code === 'number' ? e.code : 1) : 0, stdout: String(stdout), stderr: String(stderr) });
        });
      });
    },
    which(cmd) {
      if (cmd.includes('/')) return fs.existsSync(cmd) ? cmd : null;
      const dirs = (process.env.PATH ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin').split(':');
      for (const d of [...dirs, '/usr/sbin', '/sbin']) {
        const p = path.join(d, cmd);
        try {
          fs.accessSync(p, fs.constants.X_OK);
          if (fs.statSync(p).isFile()) return p;
        } catch {
          /* next */
        }
      }
      return null;
    },
    canOpenRw(p) {
      try {
        fs.closeSync(fs.openSync(p, 'r+'));
        return true;
      } catch {
        return false;
      }
    },
    kernelRelease: () => os.release(),
    arch: () => process.arch,
    uid: () => process.getuid?.() ?? 0,
    gids: () => process.getgroups?.() ?? [],
  };
}
