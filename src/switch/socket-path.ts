// Where a new vhost-user port's socket may be: short enough for sun_path, not another port's, inside the allowed
// directories (symlinks resolved), and not a file or a socket something else listens on.
import fs from 'node:fs/promises';
import path from 'node:path';
import { MAX_SOCKET_PATH_BYTES, socketIsAlive } from '../host/runDir.js';
import { Conflict, Invalid } from './errors.js';

/** Throws the refusal when `sock` cannot be the socket of a new port; `usedBy` names the port that has it. */
export async function checkNewSocket(sock: string, mode: 'server' | 'client', usedBy: string | undefined, allowedDirs: readonly string[]): Promise<void> {
  if (Buffer.byteLength(sock) > MAX_SOCKET_PATH_BYTES) {
    throw new Invalid('socket', `path is ${Buffer.byteLength(sock)} bytes; unix sockets allow at most ${MAX_SOCKET_PATH_BYTES}`);
  }
  if (usedBy !== undefined) throw new Conflict('socket', `${sock} is already used by port "${usedBy}"`);
  if (!(await isAllowed(sock, allowedDirs))) {
    throw new Invalid('socket', `${sock} is outside the allowed socket directories (${allowedDirs.join(', ')})`);
  }
  let st;
  try {
    st = await fs.lstat(sock);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new Invalid('socket', `cannot check ${sock}: ${(err as Error).message}`);
  }
  if (!st.isSocket()) throw new Invalid('socket', `${sock} exists and is not a socket; refusing to replace it`);
  // A socket left by a previous (killed) daemon is stale and is replaced; one that something still listens on is not ours.
  if (mode === 'server' && (await socketIsAlive(sock))) {
    throw new Conflict('socket', `another process is listening on ${sock}`);
  }
}

// Lexically inside an allowed directory, and its parent (once symlinks are resolved) too, so a symlinked
// directory cannot carry a socket out of the allowed tree.
async function isAllowed(sock: string, allowedDirs: readonly string[]): Promise<boolean> {
  const inside = (p: string, dirs: readonly string[]) =>
    dirs.some((d) => {
      const rel = path.relative(d, p);
      return rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel);
    });
  if (!inside(sock, allowedDirs)) return false;
  const realParent = await fs.realpath(path.dirname(sock)).catch(() => undefined);
  if (realParent === undefined) return true;
  const realDirs = await Promise.all(allowedDirs.map((d) => fs.realpath(d).catch(() => d)));
  return inside(path.join(realParent, path.basename(sock)), realDirs);
}
