// VSwitch: the control plane's model of the switch. It owns the native data plane and one vhost-user endpoint per
// port, keeps names ↔ native port ids, and is the single place that validates a change before making it, so a
// rejected request (API, config, restored state) leaves the data plane exactly as it was. A port and its views are
// port.ts, the static entries of the forwarding table fdb.ts, what the switch reports views.ts.
import fs from 'node:fs/promises';
import path from 'node:path';
import { issuesOf, lookupId, parseWith, portSpecSchema, queueThreads, switchRunSchema, ValidationError, type FdbSpec, type PortSpec } from '../config.js';
import type { Logger } from '../log.js';
import type { CaptureDirection, NativeAddon, NativeSwitch, PortStats, ThreadStats } from '../dataplane/native.js';
import { Conflict, fromNative, Internal, Invalid, NotFound, Unavailable } from './errors.js';
import { ForwardingTable } from './fdb.js';
import {
  DEFAULT_NIC_BACKEND,
  LIVE_PORT_FIELDS,
  normalizePortSpec,
  portInfo,
  securityOf,
  vlanLog,
  vlanOptions,
  type EndpointFactory,
  type EndpointLike,
  type EndpointState,
  type Port,
  type PortInfo,
  type PortOrigin,
} from './port.js';
import { hostPortUp, vhostUserPortUp, type PortUpContext } from './port-up.js';
import { changedFields } from './reconcile.js';
import { reloadPorts, type ConfigChange } from './reload.js';
import { checkNewSocket } from './socket-path.js';
import type { PersistedState } from './state.js';
import { STATE_VERSION } from './state.js';
import { fdbViews, openCapture, threadViews, type CaptureSession, type FdbView, type PortNames, type ThreadView } from './views.js';

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

export class VSwitch {
  readonly dataPlane: NativeSwitch;
  private readonly ports = new Map<string, Port>();
  private readonly fdb: ForwardingTable;
  private threadBaseline = new Map<number, ThreadStats>();
  private chain: Promise<unknown> = Promise.resolve();
  private closed = false;
  private readonly allowedDirs: string[];

  /** Throws Invalid when the threads, CPUs or aging time are outside what the data plane takes (limits.ts). */
  constructor(private readonly opts: VSwitchOptions) {
    const run = switchRunSchema.safeParse({ threads: opts.threads, cpus: opts.cpus, agingSeconds: opts.agingSeconds });
    if (!run.success) {
      const issues = issuesOf(run.error);
      throw issues.length === 1 ? new Invalid(issues[0]!.field, issues[0]!.reason) : new Invalid(undefined, new ValidationError(issues).message);
    }
    this.dataPlane = new opts.native.Switch({ threads: opts.threads, cpus: opts.cpus, agingSeconds: opts.agingSeconds });
    this.allowedDirs = [opts.runDir, ...opts.socketDirs].map((d) => path.resolve(d));
    this.fdb = new ForwardingTable({
      dataPlane: this.dataPlane,
      log: opts.log,
      port: (name) => this.ports.get(name),
      ports: () => this.ports.values(),
      saveOrReport: (what) => this.saveOrReport(what),
    });
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
    return portInfo(this.dataPlane, p);
  }

  private async addPortNow(input: unknown, origin: PortOrigin, opts: { persist?: boolean } = {}): Promise<PortInfo> {
    if (this.closed) throw new Conflict(undefined, 'switch is shutting down');
    const parsed = normalizePortSpec(parseWith(portSpecSchema, input), this.opts.runDir);
    if (parsed.type !== 'vhost-user') return this.addHostPort(parsed, origin, opts);
    const spec = parsed as PortSpec & { socket: string };
    await this.checkNewPort(spec);
    const uid = spec.socketOwner === undefined ? undefined : await this.lookup('user', spec.socketOwner, 'socketOwner');
    const gid = spec.socketGroup === undefined ? undefined : await this.lookup('group', spec.socketGroup, 'socketGroup');
    const { port, undoDir } = await vhostUserPortUp(this.portUp(), spec, origin, { uid, gid });
    this.ports.set(spec.name, port);
    if (origin === 'api' && opts.persist !== false) await this.saveNewPort(spec.name, undoDir);
    return portInfo(this.dataPlane, port);
  }

  // nic and tap ports: no socket, no frontend; the interface is theirs alone.
  private async addHostPort(spec: PortSpec, origin: PortOrigin, opts: { persist?: boolean }): Promise<PortInfo> {
    if (this.ports.has(spec.name)) throw new Conflict('name', `port "${spec.name}" already exists`);
    this.checkAffinity(spec);
    for (const p of this.ports.values()) {
      if (p.spec.iface && p.spec.iface === spec.iface) throw new Conflict('iface', `${spec.iface} is already used by port "${p.spec.name}"`);
    }
    const port = hostPortUp(this.portUp(), spec, origin);
    this.ports.set(spec.name, port);
    if (origin === 'api' && opts.persist !== false) await this.saveNewPort(spec.name);
    return portInfo(this.dataPlane, port);
  }

  private portUp(): PortUpContext {
    return { native: this.opts.native, dataPlane: this.dataPlane, log: this.opts.log, endpointFactory: this.opts.endpointFactory };
  }

  // A new API port that cannot be stored is not added: it goes down again, with what `undo` removes.
  private async saveNewPort(name: string, undo: () => Promise<unknown> = () => Promise.resolve()): Promise<void> {
    try {
      await this.save();
    } catch (err) {
      await this.teardown(name);
      await undo();
      throw new Internal(undefined, `port not added: could not save state: ${(err as Error).message}`);
    }
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
    const usedBy = [...this.ports.values()].find((p) => p.spec.socket === spec.socket)?.spec.name;
    await checkNewSocket(spec.socket, spec.mode, usedBy, this.allowedDirs);
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
        this.fdb.dropApi(name);
        await this.saveOrReport('port removed');
      }
    });
  }

  private async teardown(name: string): Promise<void> {
    const port = this.ports.get(name);
    if (!port) return;
    this.ports.delete(name);
    // Its static entries went with it in the data plane (API entries stay listed: the port may come back, see applyConfig).
    this.fdb.portDown(name);
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
      if (fields.length === 0) return { port: portInfo(this.dataPlane, p), live: [], restarted: [] };
      const slow = fields.filter((f) => !LIVE_PORT_FIELDS.includes(f as (typeof LIVE_PORT_FIELDS)[number]));
      if (slow.length && !opts.restart)
        throw new Conflict(slow[0], `${slow.join(', ')} cannot change while the port runs (the frontend negotiated ${slow.length > 1 ? 'them' : 'it'}, or ${slow.length > 1 ? 'they say' : 'it says'} what the port is): pass restart to bring the port up again (its guest reconnects)`);
      this.checkAffinity(next);
      // Static entries must stay deliverable: refuse a VLAN change that would strand one.
      this.fdb.checkVlans(next);
      if (slow.length) {
        this.opts.log.info('port changed: bringing it up again', { port: name, fields: fields.join(',') });
        await this.teardown(name);
        try {
          await this.addPortNow(next, 'api', { persist: false });
        } catch (err) {
          await this.addPortNow(p.spec, 'api', { persist: false }).catch((e: Error) => this.opts.log.error('could not bring the old port back', { port: name, err: e }));
          throw err;
        }
        this.fdb.restoreApi(name);
        await this.saveOrReport('port changed');
        return { port: portInfo(this.dataPlane, this.ports.get(name)!), live: [], restarted: fields };
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
      return { port: portInfo(this.dataPlane, p), live: fields, restarted: [] };
    });
  }

  private mustGet(name: string): Port {
    const port = this.ports.get(name);
    if (!port) throw new NotFound('name', `no port named "${name}"`);
    return port;
  }

  /** Port names by data-plane id, for what the data plane reports by id. */
  private portNames(): PortNames {
    return new Map([...this.ports.values()].map((p) => [p.id, p.spec.name]));
  }

  listPorts(): PortInfo[] {
    return [...this.ports.values()].map((p) => portInfo(this.dataPlane, p));
  }

  getPort(name: string): PortInfo {
    return portInfo(this.dataPlane, this.mustGet(name));
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
    const { id } = this.mustGet(name);
    return openCapture(this.dataPlane, this.opts.log, { name, id, current: () => this.ports.get(name)?.id === id }, opts);
  }

  /**
   * Each poll thread, its CPU and queues (as `ovs-appctl dpif-netdev/pmd-rxq-show`) and its counters since the
   * last clearStats() (as `pmd-stats-show`): busy % is the share of polling cycles that moved frames (time asleep
   * on kicks counts as neither).
   */
  threads(): ThreadView[] {
    return threadViews(this.dataPlane.threadStats(), this.threadBaseline, this.portNames());
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
    return fdbViews(this.dataPlane.fdbList(), this.portNames());
  }

  /** Adds a static entry. API entries are persisted; an entry for the same MAC+VLAN replaces the old one. */
  fdbAdd(input: unknown, origin: PortOrigin = 'api', opts: { persist?: boolean } = {}): Promise<FdbSpec> {
    return this.serial(() => this.fdb.add(input, origin, opts));
  }

  /** Removes a learned entry or an API one (ForwardingTable.remove says which are refused). */
  fdbRemove(macInput: unknown, vlanInput: unknown = 0): Promise<{ mac: string; vlan: number; static: boolean }> {
    return this.serial(() => this.fdb.remove(macInput, vlanInput));
  }

  /**
   * Forgets learned entries (of one port, or all), as OVS's fdb/flush does. Static entries (config, API, a port's
   * `mac`) stay: they are configuration, and go away with their port.
   */
  fdbFlush(portName?: string): Promise<void> {
    return this.serial(async () => this.fdb.flush(portName));
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
      const change = await reloadPorts(
        {
          log: this.opts.log,
          ports: this.ports,
          teardown: (name) => this.teardown(name),
          bringUp: (spec) => this.addPortNow(spec, 'config'),
          dropApiFdb: (name) => this.fdb.dropApi(name),
        },
        ports.map((p) => normalizePortSpec(p, this.opts.runDir)),
      );
      await this.fdb.applyConfig(fdb, change);
      return change;
    });
  }

  /** The API-created ports and entries, as state.json stores them. */
  snapshot(): PersistedState {
    const ports = [...this.ports.values()].filter((p) => p.origin === 'api').map((p) => ({ ...p.spec }));
    return { version: STATE_VERSION, ports, fdb: this.fdb.apiEntries() };
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
