// The run directory holds the control socket, state.json and (by default) the port sockets. One rule picks it
// for the daemon and the CLI alike, so `vhost-switch port list` finds the daemon without flags.
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';

export const CONTROL_SOCKET_NAME = 'control.sock';
/** The longest unix socket path: sockaddr_un.sun_path is 108 bytes including the terminating NUL. */
export const MAX_SOCKET_PATH_BYTES = 107;
/** The places a packaged switch uses (the systemd unit's RuntimeDirectory, StateDirectory, ConfigurationDirectory). */
export const SYSTEM_RUN_DIR = '/run/vhost-switch';
export const SYSTEM_STATE_DIR = '/var/lib/vhost-switch';
export const SYSTEM_CONFIG_FILE = '/etc/vhost-switch/config.json';
export const STATE_FILE_NAME = 'state.json';
/** The control socket is group-accessible so an operators' group can drive the switch without root. */
export const CONTROL_SOCKET_MODE = 0o660;

export interface RunDirInputs {
  flag?: string;
  env?: NodeJS.ProcessEnv;
  uid?: number;
  cwd?: string;
}

/** --run-dir, else VHOST_SWITCH_RUN_DIR, else /run/vhost-switch (root), $XDG_RUNTIME_DIR/vhost-switch, ./run. */
export function resolveRunDir(inputs: RunDirInputs = {}): string {
  const env = inputs.env ?? process.env;
  const cwd = inputs.cwd ?? process.cwd();
  const uid = inputs.uid ?? (process.getuid ? process.getuid() : -1);
  const chosen =
    nonEmpty(inputs.flag) ??
    nonEmpty(env.VHOST_SWITCH_RUN_DIR) ??
    (uid === 0
      ? SYSTEM_RUN_DIR
      : nonEmpty(env.XDG_RUNTIME_DIR)
        ? path.join(env.XDG_RUNTIME_DIR as string, 'vhost-switch')
        : path.join(cwd, 'run'));
  return path.resolve(cwd, chosen);
}

function nonEmpty(s: string | undefined): string | undefined {
  return s !== undefined && s !== '' ? s : undefined;
}

export function controlSocketPath(runDir: string): string {
  return path.join(runDir, CONTROL_SOCKET_NAME);
}

/**
 * Where state.json lives unless --state-dir, VHOST_SWITCH_STATE_DIR or the config say: across reboots in
 * /var/lib/vhost-switch for the system run directory (/run is a tmpfs), else beside the chosen run directory (a
 * second switch, a user's, a test's).
 */
export function defaultStateDir(runDir: string): string {
  return path.resolve(runDir) === SYSTEM_RUN_DIR ? SYSTEM_STATE_DIR : runDir;
}

/** --config, else VHOST_SWITCH_CONFIG, else /etc/vhost-switch/config.json if it exists, else none (embedded default). */
export async function resolveConfigFile(flag: string | undefined, env: NodeJS.ProcessEnv = process.env, system = SYSTEM_CONFIG_FILE): Promise<string | undefined> {
  const explicit = nonEmpty(flag) ?? nonEmpty(env.VHOST_SWITCH_CONFIG);
  if (explicit) return explicit;
  return (await fs.stat(system).then((st) => st.isFile(), () => false)) ? system : undefined;
}

/** --control, else VHOST_SWITCH_CONTROL, else RUN_DIR/control.sock. */
export function resolveControlSocket(flag: string | undefined, runDirInputs: RunDirInputs = {}): string {
  const env = runDirInputs.env ?? process.env;
  const explicit = nonEmpty(flag) ?? nonEmpty(env.VHOST_SWITCH_CONTROL);
  if (explicit) return path.resolve(runDirInputs.cwd ?? process.cwd(), explicit);
  return controlSocketPath(resolveRunDir(runDirInputs));
}

/**
 * Creates the run directory (0755: QEMU, often another user, must reach the port sockets inside; the sockets
 * carry their own modes). An existing directory keeps its mode: the operator may have chosen a stricter one.
 */
export async function prepareRunDir(dir: string): Promise<void> {
  await fs.mkdir(dir, { recursive: true, mode: 0o755 });
  const st = await fs.stat(dir);
  if (!st.isDirectory()) throw new Error(`run directory ${dir} exists and is not a directory`);
}

/**
 * Removes a leftover control socket from a previous daemon, but only if nobody answers on it: two daemons on
 * one run directory would fight over the port sockets and state.json.
 */
export async function claimSocketPath(socketPath: string, isAlive: (p: string) => Promise<boolean>): Promise<void> {
  let st;
  try {
    st = await fs.lstat(socketPath);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  if (!st.isSocket()) throw new Error(`${socketPath} exists and is not a socket; refusing to replace it`);
  if (await isAlive(socketPath)) {
    throw new Error(`another vhost-switch is already listening on ${socketPath}`);
  }
  await fs.unlink(socketPath);
}

/** True if something accepts connections on the unix socket at `socketPath` (within timeoutMs). */
export function socketIsAlive(socketPath: string, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ path: socketPath });
    const done = (alive: boolean) => {
      clearTimeout(timer);
      sock.destroy();
      resolve(alive);
    };
    // A listener that never accepts (backlog full, stopped process) counts as alive: not ours to delete.
    const timer = setTimeout(() => done(true), timeoutMs);
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
  });
}
