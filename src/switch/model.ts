// VSwitch: the control plane's model of the switch. It owns the native data plane and one vhost-user endpoint per
// port, keeps names ↔ native port ids, and is the single place that validates a change before making it, so a
// rejected request (API, config, restored state) leaves the data plane exactly as it was.
import fs from 'node:fs/promises';
import path from 'node:path';
import {
  queueThreads,
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
} from '../config.js';
import type { Logger } from '../log.js';
import type { CaptureDirection, CaptureRead, FdbEntry, NativeAddon, NativeSwitch, PortSecurityOptions, PortStats, ThreadStats, VlanOptions } from '../dataplane/native.js';
import type { EndpointOptions } from '../vhost/endpoint.js';
import { socketIsAlive } from '../host/runDir.js';
import { changedFields, planFdb, planPorts } from './reconcile.js';
import type { PersistedState } from './state.js';
import { STATE_VERSION } from './state.js';
import { Conflict, fromNative, Internal, Invalid, NotFound, Unavailable } from './errors.js';

export { SwitchError, Conflict, Internal, Invalid, NotFound, Unavailable } from './errors.js';

export type EndpointState = 'listening' | 'connecting' | 'connected' | 'ready' | 'closed';

/** What VSwitch needs from a vhost-user endpoint (src/vhost/endpoint.ts provides the real one). */
export interface EndpointLike {
  readonly state: EndpointState;
  readonly protocolErrors?: number;
  /** vhost-user: the connected frontend's memory map, null with none connected. */
  readonly frontend?: { memRegions: number } | null;
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
 * `auto`: AF_XDP where the interface allows it, else AF_PACKET with the reason in the port's info.
 * Checksums a local sender left pending cross AF_XDP as NEEDS_CSUM (native/core/csum.h).
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
  /** vhost-user with a frontend: guest memory regions mapped (SET_MEM_TABLE, or ADD/REM_MEM_REG for DIMMs). */
  memRegions?: number;
  /** vhost-user: the frontend is migrating the guest (the switch logs the pages it writes). */
  dirtyLogging?: boolean;
}

/** Port fields a running port takes without its frontend renegotiating (VSwitch.updatePort). */
export const LIVE_PORT_FIELDS = ['vlan', 'vlanMode', 'trunk', 'allowedVlans', 'portSecurity', 'mac', 'allowedMacs', 'allowedIps', 'queueAffinity'] as const;

/** Bytes moved from a capture ring per read: a little over 14 full-size GSO frames. */
export const CAPTURE_READ_BYTES = 1 << 20;

export interface CaptureSession {
  /** Records captured since the last read; null once the port or the capture is gone. */
  read(maxRecords?: number): CaptureRead | null;
  stop(): void;
}

export interface ThreadView {
  thread: number;
  cpu: number | null;
  sleeping: boolean;
  busyPercent: number;
  packets: bigint;
  busyCycles: bigint;
  idleCycles: bigint;
  cyclesPerPacket: number;
  queues: Array<{ port: string; queue: number; pinned: boolean }>;
}

export interface FdbView {
  mac: string;
  vlan: number;
  port: string;
  static: boolean;
  ageSeconds: number;
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

/**
 * A port's spec as it runs and is stored: a vhost-user port's socket as an absolute path, a host port without one.
 * Config ports are compared in this form on reload, so "vm1.sock" and "RUN_DIR/vm1.sock" are the same port.
 */
export function normalizePortSpec(spec: PortSpec, runDir: string): PortSpec {
  if (spec.type === 'vhost-user') return { ...spec, socket: resolveSocketPath(runDir, spec.name, spec.socket) };
  const { socket: _none, ...host } = spec;
  return host;
}

/** The data plane's port-security table for a spec, or undefined when port security is off. */
export function securityOf(spec: PortSpec): PortSecurityOptions | undefined {
  return spec.portSecurity && spec.mac ? { macs: [spec.mac, ...spec.allowedMacs], ips: spec.allowedIps } : undefined;
}

/** What a config reload did, port by port. */
export interface ConfigChange {
  added: string[];
  removed: string[];
  /** Changed in the file: taken down and brought up with the new spec. */
  replaced: string[];
  unchanged: string[];
  /** Ports and entries of the file that could not be applied, and why (a changed port keeps its previous spec). */
  failed: Array<{ what: string; reason: string }>;
  fdbAdded: number;
  fdbRemoved: number;
  /** API ports a new config port took the name of (the config wins), with their API FDB entries. */
  dropped: { ports: PortSpec[]; fdb: FdbSpec[] };
  /** The API ports or entries changed: state.json must be written. */
  apiChanged: boolean;
}

interface Port {
  spec: PortSpec;
  id: number;
  origin: PortOrigin;
  endpoint: EndpointLike;
}

export class VSwitch {
  readonly dataPlane: NativeSwitch;
  private readonly ports = new Map<string, Port>();
  private apiFdb: FdbSpec[] = [];
  private threadBaseline = new Map<number, ThreadStats>();
  /** The config file's static entries as installed (entries of a port that is down are not). */
  private configFdb: FdbSpec[] = [];
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
    return this.serial(() => this.addPortNow(input, origin, opts));
  }

  /** addPort, unless a port of that name already runs with the same spec (then that one, created false). */
  ensurePort(input: unknown): Promise<{ port: PortInfo; created: boolean }> {
    return this.serial(async () => {
      const found = this.existing(input);
      return found ? { port: found, created: false } : { port: await this.addPortNow(input, 'api'), created: true };
    });
  }

  /**
   * `--may-exist` (as ovs-vsctl's): the port of that name when it already runs with the same spec; refused when
   * its spec differs (naming the fields), so that a script never believes a different port is what it asked for.
   */
  private existing(input: unknown): PortInfo | undefined {
    const wanted = normalizePortSpec(parseWith(portSpecSchema, input), this.opts.runDir);
    const p = this.ports.get(wanted.name);
    if (!p) return undefined;
    const differ = changedFields(p.spec, wanted);
    if (differ.length) throw new Conflict('name', `port "${wanted.name}" exists with a different ${differ.join(', ')}`);
    return this.info(p);
  }

  private async addPortNow(input: unknown, origin: PortOrigin, opts: { persist?: boolean } = {}): Promise<PortInfo> {
    if (this.closed) throw new Conflict(undefined, 'switch is shutting down');
    const parsed = normalizePortSpec(parseWith(portSpecSchema, input), this.opts.runDir);
    if (parsed.type !== 'vhost-user') return this.addHostPort(parsed, origin, opts);
    const spec = parsed as PortSpec & { socket: string };
    await this.checkNewPort(spec);
    const uid = spec.socketOwner === undefined ? undefined : await this.lookup('user', spec.socketOwner, 'socketOwner');
    const gid = spec.socketGroup === undefined ? undefined : await this.lookup('group', spec.socketGroup, 'socketGroup');
    // A server socket's directory is created if missing (inside an allowed directory, checked above), and
    // removed again if the port does not come up: a refused request leaves nothing behind.
    const madeDir = spec.mode === 'server' ? await fs.mkdir(path.dirname(spec.socket), { recursive: true, mode: 0o755 }) : undefined;
    const undoDir = () => (madeDir ? fs.rm(madeDir, { recursive: true, force: true }) : Promise.resolve());

    let id: number;
    try {
      id = this.dataPlane.addPort({ name: spec.name, ...vlanOptions(spec), queuePairs: spec.queues, mtu: spec.mtu, security: securityOf(spec), queueThreads: queueThreads(spec) });
    } catch (err) {
      await undoDir();
      throw fromNative(err, undefined, 'data plane refused the port');
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
      throw new Unavailable('socket', `cannot open ${spec.socket}: ${(err as Error).message}`);
    }
    this.ports.set(spec.name, { spec, id, origin, endpoint });
    log.info('port added', { id, origin, mode: spec.mode, socket: spec.socket, queues: spec.queues, ...vlanLog(spec), mtu: spec.mtu, portSecurity: spec.portSecurity });
    if (origin === 'api' && opts.persist !== false) {
      try {
        await this.save();
      } catch (err) {
        await this.teardown(spec.name);
        await undoDir();
        throw new Internal(undefined, `port not added: could not save state: ${(err as Error).message}`);
      }
    }
    return this.info(this.ports.get(spec.name)!);
  }

  // A port on a host interface (nic: AF_PACKET; tap: a device we create): no socket, no frontend; it is
  // up as soon as the data plane has opened the interface.
  private async addHostPort(spec: PortSpec, origin: PortOrigin, opts: { persist?: boolean }): Promise<PortInfo> {
    if (this.ports.has(spec.name)) throw new Conflict('name', `port "${spec.name}" already exists`);
    this.checkAffinity(spec);
    for (const p of this.ports.values()) {
      if (p.spec.iface && p.spec.iface === spec.iface) throw new Conflict('iface', `${spec.iface} is already used by port "${p.spec.name}"`);
    }
    let id: number;
    try {
      id = this.dataPlane.addNicPort({
        name: spec.name, kind: spec.type === 'tap' ? 'tap' : 'nic', iface: spec.iface!, queues: spec.queues,
        ...vlanOptions(spec), mtu: spec.mtu, security: securityOf(spec), queueThreads: queueThreads(spec),
        ...(spec.type === 'nic' ? { backend: spec.backend ?? DEFAULT_NIC_BACKEND } : {}),
      });
    } catch (err) {
      throw fromNative(err, 'iface');
    }
    const endpoint: EndpointLike = { state: 'ready', start() {}, close() {}, on: () => endpoint };
    if (spec.mac) this.dataPlane.fdbAdd(spec.mac, spec.vlan, id);
    this.ports.set(spec.name, { spec, id, origin, endpoint });
    const { backend, xdpMode, backendNote } = this.dataPlane.portStats(id);
    const plog = this.opts.log.child({ port: spec.name });
    // backend auto that could not have AF_XDP says why (the port works, over AF_PACKET).
    if (backendNote) plog.info('AF_XDP not used, AF_PACKET instead', { iface: spec.iface, reason: backendNote });
    plog.info('port added', { id, origin, type: spec.type, iface: spec.iface, queues: spec.queues, ...vlanLog(spec), backend, xdpMode, portSecurity: spec.portSecurity });
    if (origin === 'api' && opts.persist !== false) {
      try {
        await this.save();
      } catch (err) {
        await this.teardown(spec.name);
        throw new Internal(undefined, `port not added: could not save state: ${(err as Error).message}`);
      }
    }
    return this.info(this.ports.get(spec.name)!);
  }

  /** queueAffinity names threads this switch runs (the schema only knows the largest count there can be). */
  private checkAffinity(spec: PortSpec): void {
    for (const [q, t] of Object.entries(spec.queueAffinity ?? {}))
      if (t >= this.opts.threads)
        throw new Invalid(`queueAffinity.${q}`, `thread ${t} does not exist: the switch runs ${this.opts.threads} poll thread${this.opts.threads === 1 ? '' : 's'} (0-${this.opts.threads - 1})`);
  }

  private async checkNewPort(spec: PortSpec & { socket: string }): Promise<void> {
    if (this.ports.has(spec.name)) throw new Conflict('name', `port "${spec.name}" already exists`);
    this.checkAffinity(spec);
    const sock = spec.socket;
    if (Buffer.byteLength(sock) > MAX_SOCKET_PATH_BYTES) {
      throw new Invalid('socket', `path is ${Buffer.byteLength(sock)} bytes; unix sockets allow at most ${MAX_SOCKET_PATH_BYTES}`);
    }
    for (const p of this.ports.values()) {
      if (p.spec.socket === sock) throw new Conflict('socket', `${sock} is already used by port "${p.spec.name}"`);
    }
    if (!(await this.isAllowed(sock))) {
      throw new Invalid('socket', `${sock} is outside the allowed socket directories (${this.allowedDirs.join(', ')})`);
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
    if (spec.mode === 'server' && (await socketIsAlive(sock))) {
      throw new Conflict('socket', `another process is listening on ${sock}`);
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
      throw new Invalid(field, (err as Error).message);
    }
  }

  /** Closes the port's socket and removes it from the data plane. Config ports are refused unless `force`. */
  removePort(name: string, opts: { force?: boolean } = {}): Promise<void> {
    return this.serial(async () => {
      const port = this.mustGet(name);
      if (port.origin === 'config' && !opts.force) {
        throw new Conflict('name', `port "${name}" is declared in the config file; remove it there and reload (SIGHUP)`);
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
    // Its static entries went with it in the data plane (API entries stay listed: the port may come back, see applyConfig).
    this.configFdb = this.configFdb.filter((e) => e.port !== name);
    try {
      await port.endpoint.close();
    } catch (err) {
      this.opts.log.warn('endpoint close failed', { port: name, err });
    }
    // The endpoint removed its own socket file (only if it is still the one it created).
    this.dataPlane.removePort(port.id);
    this.opts.onPortRemoved?.();
  }

  /**
   * PATCH: changes a running API port. VLAN membership, port security, the MAC and queue affinity apply live (the
   * guest keeps its link; the data plane swaps them in while parked). Fields a vhost-user frontend negotiated
   * (offloads, MTU) and what the port is (type, mode, socket, interface, queues, backend) need the port brought up
   * again: refused unless `restart` is set, then the guest reconnects (QEMU's reconnect, or the switch's).
   */
  updatePort(name: string, patch: unknown, opts: { restart?: boolean } = {}): Promise<{ port: PortInfo; live: string[]; restarted: string[] }> {
    return this.serial(async () => {
      const p = this.mustGet(name);
      if (p.origin === 'config') throw new Conflict('name', `port "${name}" is declared in the config file; change it there and reload (SIGHUP)`);
      if (typeof patch !== 'object' || patch === null || Array.isArray(patch)) throw new Invalid(undefined, 'must be an object of the fields to change');
      const changes = patch as Record<string, unknown>;
      if ('name' in changes && changes.name !== name) throw new Invalid('name', 'cannot be changed (delete the port and add it again)');
      const merged: Record<string, unknown> = { ...p.spec };
      // vlanMode and trunk say the same thing: the one given wins; leaving trunk mode drops the allowed list.
      if ('vlanMode' in changes && !('trunk' in changes)) delete merged.trunk;
      if ('trunk' in changes && !('vlanMode' in changes)) delete merged.vlanMode;
      // Turning a mode off drops what only that mode uses, unless the same request sets it.
      if ((changes.vlanMode === 'access' || changes.trunk === false) && !('allowedVlans' in changes)) delete merged.allowedVlans;
      if (changes.portSecurity === false) for (const k of ['allowedMacs', 'allowedIps']) if (!(k in changes)) delete merged[k];
      for (const [k, v] of Object.entries(changes)) {
        if (v === null) delete merged[k];  // null: back to the default
        else merged[k] = v;
      }
      const next = normalizePortSpec(parseWith(portSpecSchema, merged), this.opts.runDir);
      const fields = changedFields(p.spec, next);
      if (fields.length === 0) return { port: this.info(p), live: [], restarted: [] };
      const slow = fields.filter((f) => !LIVE_PORT_FIELDS.includes(f as (typeof LIVE_PORT_FIELDS)[number]));
      if (slow.length && !opts.restart)
        throw new Conflict(slow[0], `${slow.join(', ')} cannot change while the port runs (the frontend negotiated ${slow.length > 1 ? 'them' : 'it'}, or ${slow.length > 1 ? 'they say' : 'it says'} what the port is): pass restart to bring the port up again (its guest reconnects)`);
      this.checkAffinity(next);
      // Static entries must stay deliverable: refuse a VLAN change that would strand one.
      for (const e of [...this.apiFdb, ...this.configFdb].filter((e) => e.port === name)) {
        const why = fdbVlanMismatch(next, e.vlan);
        if (why) throw new Conflict('vlan', `static entry ${e.mac} vlan ${e.vlan} would be stranded: ${why}; remove it first (fdb del)`);
      }
      if (slow.length) {
        this.opts.log.info('port changed: bringing it up again', { port: name, fields: fields.join(',') });
        await this.teardown(name);
        try {
          await this.addPortNow(next, 'api', { persist: false });
        } catch (err) {
          await this.addPortNow(p.spec, 'api', { persist: false }).catch((e: Error) => this.opts.log.error('could not bring the old port back', { port: name, err: e }));
          throw err;
        }
        for (const e of this.apiFdb.filter((e) => e.port === name)) this.dataPlane.fdbAdd(e.mac, e.vlan, this.ports.get(name)!.id);
        await this.saveOrReport('port changed');
        return { port: this.info(this.ports.get(name)!), live: [], restarted: fields };
      }
      if (p.spec.mac && (p.spec.mac !== next.mac || p.spec.vlan !== next.vlan)) this.dataPlane.fdbRemove(p.spec.mac, p.spec.vlan);
      try {
        this.dataPlane.updatePort(p.id, { ...vlanOptions(next), security: securityOf(next), queueThreads: queueThreads(next) ?? [] });
      } catch (err) {
        if (p.spec.mac) this.dataPlane.fdbAdd(p.spec.mac, p.spec.vlan, p.id);
        throw fromNative(err, undefined, 'data plane refused the change');
      }
      if (next.mac) this.dataPlane.fdbAdd(next.mac, next.vlan, p.id);
      p.spec = next;
      this.opts.log.info('port changed', { port: name, fields: fields.join(','), ...vlanLog(next), portSecurity: next.portSecurity });
      await this.saveOrReport('port changed');
      return { port: this.info(p), live: fields, restarted: [] };
    });
  }

  private mustGet(name: string): Port {
    const port = this.ports.get(name);
    if (!port) throw new NotFound('name', `no port named "${name}"`);
    return port;
  }

  private info(p: Port): PortInfo {
    const info: PortInfo = { ...p.spec, socket: p.spec.socket ?? '', id: p.id, origin: p.origin, state: p.endpoint.state, protocolErrors: p.endpoint.protocolErrors ?? 0 };
    if (p.spec.type === 'nic' || p.spec.type === 'tap') {
      const { backend, xdpMode, backendNote } = this.dataPlane.portStats(p.id);
      if (backend) info.activeBackend = backend;
      if (xdpMode) info.xdpMode = xdpMode;
      if (backendNote) info.backendNote = backendNote;
    }
    const fe = p.endpoint.frontend;
    if (p.spec.type === 'vhost-user' && fe) {
      info.memRegions = fe.memRegions;
      info.dirtyLogging = this.dataPlane.logInfo(p.id).logging;
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

  threadStats(): ThreadStats[] {
    return this.dataPlane.threadStats();
  }

  tscHz(): number {
    return this.dataPlane.tscHz();
  }

  /** Starts capturing the port's frames (one capture per port: 409 while one runs). */
  startCapture(name: string, opts: { direction: CaptureDirection; snaplen: number }): CaptureSession {
    const p = this.mustGet(name);
    const id = p.id;
    try {
      this.dataPlane.startCapture(id, { direction: opts.direction, snaplen: opts.snaplen });
    } catch (err) {
      throw fromNative(err, undefined, `capture on ${name}`);
    }
    this.opts.log.info('capture started', { port: name, direction: opts.direction, snaplen: opts.snaplen });
    let stopped = false;
    return {
      read: (maxRecords) => (stopped || this.ports.get(name)?.id !== id ? null : this.dataPlane.readCapture(id, CAPTURE_READ_BYTES, maxRecords)),
      stop: () => {
        if (stopped) return;
        stopped = true;
        // The port may have gone (and its capture with it) while the capture ran.
        if (this.ports.get(name)?.id === id) this.dataPlane.stopCapture(id);
        this.opts.log.info('capture stopped', { port: name });
      },
    };
  }

  /**
   * Each poll thread, its CPU and queues (as `ovs-appctl dpif-netdev/pmd-rxq-show`) and its counters since the
   * last clearStats() (as `pmd-stats-show`): busy % is the share of polling cycles that moved frames (time asleep
   * on kicks counts as neither).
   */
  threads(): ThreadView[] {
    const names = new Map([...this.ports.values()].map((p) => [p.id, p.spec.name]));
    return this.dataPlane.threadStats().map((t) => {
      const base = this.threadBaseline.get(t.thread);
      const busy = t.busyCycles - (base?.busyCycles ?? 0n);
      const idle = t.idleCycles - (base?.idleCycles ?? 0n);
      const packets = t.packets - (base?.packets ?? 0n);
      return {
        thread: t.thread,
        cpu: t.cpu,
        sleeping: t.sleeping,
        busyPercent: busy + idle > 0n ? Number((busy * 10000n) / (busy + idle)) / 100 : 0,
        packets,
        busyCycles: busy,
        idleCycles: idle,
        cyclesPerPacket: packets > 0n ? Number(busy / packets) : 0,
        queues: t.queues.map((q) => ({ port: names.get(q.portId) ?? `#${q.portId}`, queue: q.queue, pinned: q.pinned })),
      };
    });
  }

  /** Starts the counters of threads() from zero (the data plane's own counters, and the metrics, go on). */
  clearStats(): void {
    this.threadBaseline = new Map(this.dataPlane.threadStats().map((t) => [t.thread, t]));
    this.opts.log.info('thread statistics cleared');
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
    return this.serial(() => this.fdbAddNow(input, origin, opts));
  }

  private async fdbAddNow(input: unknown, origin: PortOrigin, opts: { persist?: boolean } = {}): Promise<FdbSpec> {
    const entry = parseWith(fdbSpecSchema, input);
    const port = this.ports.get(entry.port);
    if (!port) throw new Invalid('port', `no port named "${entry.port}"`);
    // The data plane would not deliver through such an entry (native/switch/vlan.h); refusing it says why.
    const mismatch = fdbVlanMismatch(port.spec, entry.vlan);
    if (mismatch) throw new Invalid('vlan', mismatch);
    try {
      this.dataPlane.fdbAdd(entry.mac, entry.vlan, port.id);
    } catch (err) {
      throw fromNative(err, undefined, 'data plane refused the entry');
    }
    this.opts.log.info('fdb entry added', { port: entry.port, mac: entry.mac, vlan: entry.vlan, origin });
    const others = (list: FdbSpec[]) => list.filter((e) => !(e.mac === entry.mac && e.vlan === entry.vlan));
    if (origin === 'config') this.configFdb = [...others(this.configFdb), entry];
    if (origin === 'api') {
      this.apiFdb = [...others(this.apiFdb), entry];
      if (opts.persist !== false) await this.saveOrReport('fdb entry added');
    }
    return entry;
  }

  /**
   * Removes the entry for mac+vlan: a learned one, or a static one added through the API (then stored). A config
   * entry is refused (the config file declares it) and so is a port's own `mac` entry (it goes with the port).
   */
  fdbRemove(macInput: unknown, vlanInput: unknown = 0): Promise<{ mac: string; vlan: number; static: boolean }> {
    return this.serial(async () => {
      const { mac, vlan } = parseWith(fdbSpecSchema.pick({ mac: true, vlan: true }), { mac: macInput, vlan: vlanInput });
      const same = (e: { mac: string; vlan: number }) => e.mac === mac && e.vlan === vlan;
      if (this.configFdb.some(same)) throw new Conflict('mac', `${mac} vlan ${vlan} is declared in the config file; remove it there and reload`);
      const owner = [...this.ports.values()].find((p) => p.spec.mac === mac && p.spec.vlan === vlan);
      if (owner) throw new Conflict('mac', `${mac} vlan ${vlan} is port ${owner.spec.name}'s own MAC; it goes with the port`);
      const wasStatic = this.apiFdb.some(same);
      if (!this.dataPlane.fdbRemove(mac, vlan) && !wasStatic) throw new NotFound('mac', `no entry for ${mac} vlan ${vlan}`);
      this.opts.log.info('fdb entry removed', { mac, vlan, static: wasStatic });
      if (wasStatic) {
        this.apiFdb = this.apiFdb.filter((e) => !same(e));
        await this.saveOrReport('fdb entry removed');
      }
      return { mac, vlan, static: wasStatic };
    });
  }

  /**
   * Forgets learned entries (of one port, or all), as OVS's fdb/flush does. Static entries (config, API, a port's
   * `mac`) stay: they are configuration, and go away with their port.
   */
  fdbFlush(portName?: string): Promise<void> {
    return this.serial(async () => {
      const port = portName === undefined ? undefined : this.ports.get(portName);
      if (portName !== undefined && !port) throw new NotFound('port', `no port named "${portName}"`);
      this.dataPlane.fdbFlush(port?.id);
      this.opts.log.info('fdb flushed', { port: portName });
    });
  }

  /**
   * Makes the config ports and static entries what the config file now declares (a reload). Unchanged ports are not
   * touched, so their guests stay connected; removed ones go down, changed ones go down and come up with the new
   * spec, new ones come up. A new config port wins over an API port of the same name, as at start. Something that
   * cannot be applied is logged and listed in `failed` (a changed port then keeps its previous spec) and the rest
   * still is: the file has already been validated as a whole.
   */
  applyConfig(ports: readonly PortSpec[], fdb: readonly FdbSpec[]): Promise<ConfigChange> {
    return this.serial(async () => {
      if (this.closed) throw new Conflict(undefined, 'switch is shutting down');
      const log = this.opts.log;
      const wanted = ports.map((p) => normalizePortSpec(p, this.opts.runDir));
      const running = [...this.ports.values()].filter((p) => p.origin === 'config').map((p) => p.spec);
      const plan = planPorts(running, wanted);
      const change: ConfigChange = {
        added: [], removed: [], replaced: [], unchanged: plan.keep.map((p) => p.name), failed: [],
        fdbAdded: 0, fdbRemoved: 0, dropped: { ports: [], fdb: [] }, apiChanged: false,
      };
      const dropApiFdb = (name: string) => {
        const gone = this.apiFdb.filter((e) => e.port === name);
        this.apiFdb = this.apiFdb.filter((e) => e.port !== name);
        if (gone.length) change.apiChanged = true;
        return gone;
      };
      for (const to of plan.add) {
        const api = this.ports.get(to.name);
        if (api?.origin !== 'api') continue;
        log.warn('API port has the name of a new config port: the config wins, the API port is dropped', { port: to.name, apiSocket: api.spec.socket });
        change.dropped.ports.push(api.spec);
        change.dropped.fdb.push(...dropApiFdb(to.name));
        change.apiChanged = true;
        await this.teardown(to.name);
      }
      // Everything that goes down goes first, so that names, sockets and interfaces are free for what comes up.
      for (const p of plan.remove) {
        await this.teardown(p.name);
        for (const e of dropApiFdb(p.name)) log.warn('fdb entry of a port removed from the config is dropped', { port: p.name, mac: e.mac, vlan: e.vlan });
        log.info('port removed', { port: p.name, reason: 'no longer in the config' });
        change.removed.push(p.name);
      }
      for (const { from, to } of plan.replace) {
        log.info('config port changed: bringing it up again', { port: to.name, fields: changedFields(from, to).join(',') });
        await this.teardown(from.name);
      }
      const bringUp = async (spec: PortSpec, what: string): Promise<boolean> => {
        try {
          await this.addPortNow(spec, 'config');
          return true;
        } catch (err) {
          log.error(`${what} could not be brought up`, { port: spec.name, err: err as Error });
          change.failed.push({ what: `port ${spec.name}`, reason: (err as Error).message });
          return false;
        }
      };
      for (const { from, to } of plan.replace) {
        if (await bringUp(to, 'changed config port')) change.replaced.push(to.name);
        else if (await bringUp(from, 'previous spec of the config port')) log.warn('config port kept its previous spec', { port: to.name });
      }
      for (const to of plan.add) if (await bringUp(to, 'new config port')) change.added.push(to.name);

      // Entries of ports that went down went with them: they are no longer in configFdb, so the plan brings them back.
      const fdbPlan = planFdb(this.configFdb, fdb);
      const removedKeys = new Set(fdbPlan.remove.map((e) => `${e.mac}/${e.vlan}`));
      for (const e of fdbPlan.remove) {
        this.dataPlane.fdbRemove(e.mac, e.vlan);
        log.info('fdb entry removed', { port: e.port, mac: e.mac, vlan: e.vlan, reason: 'no longer in the config' });
        change.fdbRemoved++;
      }
      this.configFdb = this.configFdb.filter((e) => !removedKeys.has(`${e.mac}/${e.vlan}`));
      for (const e of fdbPlan.add) {
        try {
          await this.fdbAddNow(e, 'config');
          change.fdbAdded++;
        } catch (err) {
          log.error('config fdb entry could not be installed', { port: e.port, mac: e.mac, vlan: e.vlan, err: err as Error });
          change.failed.push({ what: `fdb ${e.mac} vlan ${e.vlan}`, reason: (err as Error).message });
        }
      }
      // Static entries that a port going down took along, or that a removed config entry had replaced: put back.
      const installed = new Set(this.dataPlane.fdbList().filter((x) => x.static).map((x) => `${x.mac}/${x.vlan}`));
      const reinstall = (mac: string, vlan: number, port: string) => {
        const p = this.ports.get(port);
        if (!p || installed.has(`${mac}/${vlan}`)) return;
        this.dataPlane.fdbAdd(mac, vlan, p.id);
        installed.add(`${mac}/${vlan}`);
      };
      for (const e of this.apiFdb) reinstall(e.mac, e.vlan, e.port);
      for (const p of this.ports.values()) if (p.spec.mac && removedKeys.has(`${p.spec.mac}/${p.spec.vlan}`)) reinstall(p.spec.mac, p.spec.vlan, p.spec.name);
      return change;
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
      throw new Internal(undefined, `${what}, but state could not be saved: ${(err as Error).message}`);
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

export { ValidationError };

function vlanOptions(spec: PortSpec): VlanOptions {
  return { vlan: spec.vlan, trunk: spec.vlanMode === 'trunk', ...(spec.allowedVlans ? { allowedVlans: spec.allowedVlans } : {}) };
}
function vlanLog(spec: PortSpec): Record<string, unknown> {
  if (spec.vlanMode !== 'trunk') return { vlan: spec.vlan };
  return { vlanMode: 'trunk', nativeVlan: spec.vlan, allowedVlans: spec.allowedVlans ? formatRangeList(spec.allowedVlans) : 'all' };
}
