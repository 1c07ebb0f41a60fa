// VSwitch: the control plane's model of the switch. It owns the native data plane and one vhost-user endpoint per
// port, keeps names ↔ native port ids, and is the single place that validates a change before making it, so a
// rejected request (API, config, restored state) leaves the data plane exactly as it was.
import fs from 'node:fs/promises';
import path from 'node:path';
import {
  fdbSpecSchema,
  fdbVlanMismatch,
  formatRangeList,
  lookupId,
  MAX_SOCKET_PATH_BYTES,
  parseWith,
  portSpecSchema,
  resolveSocketPath,
  ValidationError,
  type FdbSpec,
  type PortSpec,
} from './config.js';
import type { Logger } from './log.js';
import type { FdbEntry, NativeAddon, NativeSwitch, PortStats, ThreadStats, VlanOptions } from './native.js';
import type { EndpointOptions } from './vhost/endpoint.js';
import { socketIsAlive } from './runDir.js';
import type { PersistedState } from './state.js';
import { STATE_VERSION } from './state.js';

export type EndpointState = 'listening' | 'connecting' | 'connected' | 'ready' | 'closed';

/** What VSwitch needs from a vhost-user endpoint (src/vhost/endpoint.ts provides the real one). */
export interface EndpointLike {
  readonly state: EndpointState;
  readonly protocolErrors?: number;
  start(): void | Promise<void>;
  close(): void | Promise<void>;
  on(event: 'state', listener: (state: EndpointState, previous: EndpointState) => void): unknown;
}

/**
 * Everything an endpoint needs: VhostUserEndpoint's own options, less the knobs VSwitch leaves at their defaults,
 * with the data plane under its VSwitch name. The daemon's factory maps it onto VhostUserEndpoint's constructor.
 */
export type EndpointParams = Pick<
  EndpointOptions,
  'portId' | 'name' | 'mode' | 'socketPath' | 'queuePairs' | 'mtu' | 'offloads' | 'socketMode' | 'socketUid' | 'socketGid'
> & {
  addon: NativeAddon;
  dataPlane: NativeSwitch;
  log: (level: 'debug' | 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;
};
export type EndpointFactory = (params: EndpointParams) => EndpointLike;

/**
 * `auto`: AF_XDP where the interface allows it, else AF_PACKET with the reason in the port's info (issue 6).
 * Checksums a local sender left pending cross AF_XDP as NEEDS_CSUM (native/csum.h).
 */
export const DEFAULT_NIC_BACKEND = 'auto' as const;

/** Where a port came from; decides whether it is persisted and whether the API may delete it. */
export type PortOrigin = 'config' | 'api';

export interface PortInfo extends PortSpec {
  id: number;
  /** Absolute socket path. */
  socket: string;
  origin: PortOrigin;
  state: EndpointState;
  protocolErrors: number;
  /** nic and tap ports: the backend in use (a nic port's `backend` is what was asked for). */
  activeBackend?: 'af_packet' | 'af_xdp' | 'tap';
  /** AF_XDP: native (driver) or generic XDP. */
  xdpMode?: 'native' | 'generic';
  /** backend auto on AF_PACKET: why AF_XDP was not used. */
  backendNote?: string;
}

export interface FdbView {
  mac: string;
  vlan: number;
  port: string;
  static: boolean;
  ageSeconds: number;
}

/** A refused change, with the HTTP status the API answers with and the field it concerns. */
export class SwitchError extends Error {
  constructor(
    readonly status: 404 | 409 | 422 | 500,
    readonly field: string | undefined,
    readonly reason: string,
  ) {
    super(field ? `${field}: ${reason}` : reason);
    this.name = 'SwitchError';
  }
}

export interface VSwitchOptions {
  native: NativeAddon;
  threads: number;
  cpus?: number[];
  agingSeconds: number;
  runDir: string;
  /** Directories besides runDir where port sockets may be. */
  socketDirs: string[];
  log: Logger;
  endpointFactory: EndpointFactory;
  /** Called with the API-created ports and FDB entries after each change to them. */
  persist?: (state: PersistedState) => Promise<void>;
  /** Resolves socketOwner/socketGroup names (injectable for tests). */
  lookupId?: (kind: 'user' | 'group', who: string | number) => Promise<number>;
  /** Called after a port was torn down (its guest memory unmapped, its data-plane state freed). */
  onPortRemoved?: () => void;
}

interface Port {
  spec: PortSpec & { socket: string };
  id: number;
  origin: PortOrigin;
  endpoint: EndpointLike;
}

export class VSwitch {
  readonly dataPlane: NativeSwitch;
  private readonly ports = new Map<string, Port>();
  private apiFdb: FdbSpec[] = [];
  private chain: Promise<unknown> = Promise.resolve();
  private closed = false;
  private readonly allowedDirs: string[];

  constructor(private readonly opts: VSwitchOptions) {
    this.dataPlane = new opts.native.Switch({ threads: opts.threads, cpus: opts.cpus, agingSeconds: opts.agingSeconds });
    this.allowedDirs = [opts.runDir, ...opts.socketDirs].map((d) => path.resolve(d));
  }

  get runDir(): string {
    return this.opts.runDir;
  }

  get socketDirs(): string[] {
    return [...this.allowedDirs];
  }

  // Changes run one at a time: validation awaits the file system, and two requests for the same name or socket
  // must not both pass the uniqueness checks.
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn);
    this.chain = run.catch(() => {});
    return run;
  }

  /** Validates `input` (an untrusted object) and brings the port up. Nothing changes if it throws. */
  addPort(input: unknown, origin: PortOrigin = 'api', opts: { persist?: boolean } = {}): Promise<PortInfo> {
    return this.serial(async () => {
      if (this.closed) throw new SwitchError(409, undefined, 'switch is shutting down');
      const parsed = parseWith(portSpecSchema, input);
      if (parsed.type !== 'vhost-user') return this.addHostPort(parsed, origin, opts);
      const spec = { ...parsed, socket: resolveSocketPath(this.opts.runDir, parsed.name, parsed.socket) };
      await this.checkNewPort(spec);
      const uid = spec.socketOwner === undefined ? undefined : await this.lookup('user', spec.socketOwner, 'socketOwner');
      const gid = spec.socketGroup === undefined ? undefined : await this.lookup('group', spec.socketGroup, 'socketGroup');
      // A server socket's directory is created if missing (inside an allowed directory, checked above), and
      // removed again if the port does not come up: a refused request leaves nothing behind.
      const madeDir = spec.mode === 'server' ? await fs.mkdir(path.dirname(spec.socket), { recursive: true, mode: 0o755 }) : undefined;
      const undoDir = () => (madeDir ? fs.rm(madeDir, { recursive: true, force: true }) : Promise.resolve());

      let id: number;
      try {
        id = this.dataPlane.addPort({ name: spec.name, ...vlanOptions(spec), queuePairs: spec.queues, mtu: spec.mtu });
      } catch (err) {
        await undoDir();
        throw new SwitchError(422, undefined, `data plane refused the port: ${(err as Error).message}`);
      }
      const log = this.opts.log.child({ port: spec.name });
      let endpoint: EndpointLike | undefined;
      try {
        endpoint = this.opts.endpointFactory({
          addon: this.opts.native,
          dataPlane: this.dataPlane,
          portId: id,
          name: spec.name,
          mode: spec.mode,
          socketPath: spec.socket,
          queuePairs: spec.queues,
          mtu: spec.mtu,
          offloads: spec.offloads,
          socketMode: spec.mode === 'server' ? spec.socketMode : undefined,
          socketUid: uid,
          socketGid: gid,
          log: (level, msg, fields) => log[level](msg, fields),
        });
        endpoint.on('state', (state, previous) => log.info('port state', { state, previous }));
        await endpoint.start();
        if (spec.mac) this.dataPlane.fdbAdd(spec.mac, spec.vlan, id);
      } catch (err) {
        await Promise.resolve(endpoint?.close()).catch(() => {});
        this.dataPlane.removePort(id);
        await undoDir();
        throw new SwitchError(422, 'socket', `cannot open ${spec.socket}: ${(err as Error).message}`);
      }
      this.ports.set(spec.name, { spec, id, origin, endpoint });
      log.info('port added', { id, origin, mode: spec.mode, socket: spec.socket, queues: spec.queues, ...vlanLog(spec), mtu: spec.mtu });
      if (origin === 'api' && opts.persist !== false) {
        try {
          await this.save();
        } catch (err) {
          await this.teardown(spec.name);
          await undoDir();
          throw new SwitchError(500, undefined, `port not added: could not save state: ${(err as Error).message}`);
        }
      }
      return this.info(this.ports.get(spec.name)!);
    });
  }

  // A port on a host interface (nic: AF_PACKET; tap: a device we create): no socket, no frontend; it is
  // up as soon as the data plane has opened the interface.
  private async addHostPort(spec: PortSpec, origin: PortOrigin, opts: { persist?: boolean }): Promise<PortInfo> {
    if (this.ports.has(spec.name)) throw new SwitchError(409, 'name', `port "${spec.name}" already exists`);
    for (const p of this.ports.values()) {
      if (p.spec.iface && p.spec.iface === spec.iface) throw new SwitchError(409, 'iface', `${spec.iface} is already used by port "${p.spec.name}"`);
    }
    let id: number;
    try {
      id = this.dataPlane.addNicPort({
        name: spec.name, kind: spec.type === 'tap' ? 'tap' : 'nic', iface: spec.iface!, queues: spec.queues,
        ...vlanOptions(spec), mtu: spec.mtu, ...(spec.type === 'nic' ? { backend: spec.backend ?? DEFAULT_NIC_BACKEND } : {}),
      });
    } catch (err) {
      throw new SwitchError(422, 'iface', (err as Error).message);
    }
    const endpoint: EndpointLike = { state: 'ready', start() {}, close() {}, on: () => endpoint };
    if (spec.mac) this.dataPlane.fdbAdd(spec.mac, spec.vlan, id);
    this.ports.set(spec.name, { spec: { ...spec, socket: '' }, id, origin, endpoint });
    const { backend, xdpMode, backendNote } = this.dataPlane.portStats(id);
    const plog = this.opts.log.child({ port: spec.name });
    // backend auto that could not have AF_XDP says why (the port works, over AF_PACKET).
    if (backendNote) plog.info('AF_XDP not used, AF_PACKET instead', { iface: spec.iface, reason: backendNote });
    plog.info('port added', { id, origin, type: spec.type, iface: spec.iface, queues: spec.queues, ...vlanLog(spec), backend, xdpMode });
    if (origin === 'api' && opts.persist !== false) {
      try {
        await this.save();
      } catch (err) {
        await this.teardown(spec.name);
        throw new SwitchError(500, undefined, `port not added: could not save state: ${(err as Error).message}`);
      }
    }
    return this.info(this.ports.get(spec.name)!);
  }

  private async checkNewPort(spec: PortSpec & { socket: string }): Promise<void> {
    if (this.ports.has(spec.name)) throw new SwitchError(409, 'name', `port "${spec.name}" already exists`);
    const sock = spec.socket;
    if (Buffer.byteLength(sock) > MAX_SOCKET_PATH_BYTES) {
      throw new SwitchError(422, 'socket', `path is ${Buffer.byteLength(sock)} bytes; unix sockets allow at most ${MAX_SOCKET_PATH_BYTES}`);
    }
    for (const p of this.ports.values()) {
      if (p.spec.socket === sock) throw new SwitchError(409, 'socket', `${sock} is already used by port "${p.spec.name}"`);
    }
    if (!(await this.isAllowed(sock))) {
      throw new SwitchError(422, 'socket', `${sock} is outside the allowed socket directories (${this.allowedDirs.join(', ')})`);
    }
    let st;
    try {
      st = await fs.lstat(sock);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw new SwitchError(422, 'socket', `cannot check ${sock}: ${(err as Error).message}`);
    }
    if (!st.isSocket()) throw new SwitchError(422, 'socket', `${sock} exists and is not a socket; refusing to replace it`);
    // A socket left by a previous (killed) daemon is stale and is replaced; one that something still listens on is not ours.
    if (spec.mode === 'server' && (await socketIsAlive(sock))) {
      throw new SwitchError(409, 'socket', `another process is listening on ${sock}`);
    }
  }

  // Lexically inside an allowed directory, and its parent (once symlinks are resolved) too, so a symlinked
  // directory cannot carry a socket out of the allowed tree.
  private async isAllowed(sock: string): Promise<boolean> {
    const inside = (p: string, dirs: string[]) =>
      dirs.some((d) => {
        const rel = path.relative(d, p);
        return rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel);
      });
    if (!inside(sock, this.allowedDirs)) return false;
    const realParent = await fs.realpath(path.dirname(sock)).catch(() => undefined);
    if (realParent === undefined) return true;
    const realDirs = await Promise.all(this.allowedDirs.map((d) => fs.realpath(d).catch(() => d)));
    return inside(path.join(realParent, path.basename(sock)), realDirs);
  }

  private async lookup(kind: 'user' | 'group', who: string | number, field: string): Promise<number> {
    try {
      return await (this.opts.lookupId ?? lookupId)(kind, who);
    } catch (err) {
      throw new SwitchError(422, field, (err as Error).message);
    }
  }

  /** Closes the port's socket and removes it from the data plane. Config ports are refused unless `force`. */
  removePort(name: string, opts: { force?: boolean } = {}): Promise<void> {
    return this.serial(async () => {
      const port = this.mustGet(name);
      if (port.origin === 'config' && !opts.force) {
        throw new SwitchError(409, 'name', `port "${name}" is declared in the config file; remove it there and restart`);
      }
      await this.teardown(name);
      this.opts.log.info('port removed', { port: name });
      if (port.origin === 'api') {
        this.apiFdb = this.apiFdb.filter((e) => e.port !== name);
        await this.saveOrReport('port removed');
      }
    });
  }

  private async teardown(name: string): Promise<void> {
    const port = this.ports.get(name);
    if (!port) return;
    this.ports.delete(name);
    try {
      await port.endpoint.close();
    } catch (err) {
      this.opts.log.warn('endpoint close failed', { port: name, err });
    }
    // The endpoint removed its own socket file (only if it is still the one it created).
    this.dataPlane.removePort(port.id);
    this.opts.onPortRemoved?.();
  }

  private mustGet(name: string): Port {
    const port = this.ports.get(name);
    if (!port) throw new SwitchError(404, 'name', `no port named "${name}"`);
    return port;
  }

  private info(p: Port): PortInfo {
    const info: PortInfo = { ...p.spec, id: p.id, origin: p.origin, state: p.endpoint.state, protocolErrors: p.endpoint.protocolErrors ?? 0 };
    if (p.spec.type === 'nic' || p.spec.type === 'tap') {
      const { backend, xdpMode, backendNote } = this.dataPlane.portStats(p.id);
      if (backend) info.activeBackend = backend;
      if (xdpMode) info.xdpMode = xdpMode;
      if (backendNote) info.backendNote = backendNote;
    }
    return info;
  }

  listPorts(): PortInfo[] {
    return [...this.ports.values()].map((p) => this.info(p));
  }

  getPort(name: string): PortInfo {
    return this.info(this.mustGet(name));
  }

  portStats(name: string): PortStats & { state: EndpointState; protocolErrors: number } {
    const p = this.mustGet(name);
    return { ...this.dataPlane.portStats(p.id), state: p.endpoint.state, protocolErrors: p.endpoint.protocolErrors ?? 0 };
  }

  stats(): { ports: Array<ReturnType<VSwitch['portStats']>>; threads: ThreadStats[] } {
    return { ports: [...this.ports.keys()].map((n) => this.portStats(n)), threads: this.dataPlane.threadStats() };
  }

  fdbList(): FdbView[] {
    const names = new Map([...this.ports.values()].map((p) => [p.id, p.spec.name]));
    return this.dataPlane.fdbList().map((e: FdbEntry) => ({
      mac: e.mac,
      vlan: e.vlan,
      port: names.get(e.portId) ?? `#${e.portId}`,
      static: e.static,
      ageSeconds: e.ageSeconds,
    }));
  }

  /** Adds a static entry. API entries are persisted; an entry for the same MAC+VLAN replaces the old one. */
  fdbAdd(input: unknown, origin: PortOrigin = 'api', opts: { persist?: boolean } = {}): Promise<FdbSpec> {
    return this.serial(async () => {
      const entry = parseWith(fdbSpecSchema, input);
      const port = this.ports.get(entry.port);
      if (!port) throw new SwitchError(422, 'port', `no port named "${entry.port}"`);
      // The data plane would not deliver through such an entry (native/vlan.h); refusing it says why.
      const mismatch = fdbVlanMismatch(port.spec, entry.vlan);
      if (mismatch) throw new SwitchError(422, 'vlan', mismatch);
      try {
        this.dataPlane.fdbAdd(entry.mac, entry.vlan, port.id);
      } catch (err) {
        throw new SwitchError(422, undefined, `data plane refused the entry: ${(err as Error).message}`);
      }
      this.opts.log.info('fdb entry added', { port: entry.port, mac: entry.mac, vlan: entry.vlan, origin });
      if (origin === 'api') {
        this.apiFdb = [...this.apiFdb.filter((e) => !(e.mac === entry.mac && e.vlan === entry.vlan)), entry];
        if (opts.persist !== false) await this.saveOrReport('fdb entry added');
      }
      return entry;
    });
  }

  /**
   * Forgets learned entries (of one port, or all), as OVS's fdb/flush does. Static entries (config, API, a port's
   * `mac`) stay: they are configuration, and go away with their port.
   */
  fdbFlush(portName?: string): Promise<void> {
    return this.serial(async () => {
      const port = portName === undefined ? undefined : this.ports.get(portName);
      if (portName !== undefined && !port) throw new SwitchError(404, 'port', `no port named "${portName}"`);
      this.dataPlane.fdbFlush(port?.id);
      this.opts.log.info('fdb flushed', { port: portName });
    });
  }

  /** The API-created ports and entries, as state.json stores them. */
  snapshot(): PersistedState {
    const ports = [...this.ports.values()].filter((p) => p.origin === 'api').map((p) => ({ ...p.spec }));
    return { version: STATE_VERSION, ports, fdb: [...this.apiFdb] };
  }

  /** Writes state now (after a restore that dropped entries, for instance). */
  save(): Promise<void> {
    return this.opts.persist ? this.opts.persist(this.snapshot()) : Promise.resolve();
  }

  // The change is live already and cannot be taken back cleanly; say so instead of pretending it failed.
  private async saveOrReport(what: string): Promise<void> {
    try {
      await this.save();
    } catch (err) {
      this.opts.log.error('could not save state', { err, change: what });
      throw new SwitchError(500, undefined, `${what}, but state could not be saved: ${(err as Error).message}`);
    }
  }

  /** Closes every port and the data plane; idempotent. */
  close(): Promise<void> {
    if (this.closed) return this.chain.then(() => {});
    this.closed = true;
    return this.serial(async () => {
      for (const name of [...this.ports.keys()]) await this.teardown(name);
      this.dataPlane.close();
    });
  }
}

function vlanOptions(spec: PortSpec): VlanOptions {
  return { vlan: spec.vlan, trunk: spec.vlanMode === 'trunk', ...(spec.allowedVlans ? { allowedVlans: spec.allowedVlans } : {}) };
}

function vlanLog(spec: PortSpec): Record<string, unknown> {
  if (spec.vlanMode !== 'trunk') return { vlan: spec.vlan };
  return { vlanMode: 'trunk', nativeVlan: spec.vlan, allowedVlans: spec.allowedVlans ? formatRangeList(spec.allowedVlans) : 'all' };
}

export { ValidationError };
