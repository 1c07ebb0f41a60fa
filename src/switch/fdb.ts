// The forwarding table as the model configures it: the static entries of the config file and of the API (those
// persisted), each checked against its port's VLANs before the data plane gets it, and kept deliverable while ports
// change, go and come back; and the learned entries, removed and flushed.
import { fdbSpecSchema, fdbVlanMismatch, parseWith, type FdbSpec, type PortSpec } from '../config.js';
import type { NativeSwitch } from '../dataplane/native.js';
import type { Logger } from '../log.js';
import { Conflict, fromNative, Invalid, NotFound } from './errors.js';
import type { Port, PortOrigin } from './port.js';
import { planFdb } from './reconcile.js';
import type { ConfigChange } from './reload.js';

/** What the table needs of the switch it belongs to. */
export interface FdbOwner {
  readonly dataPlane: NativeSwitch;
  readonly log: Logger;
  port(name: string): Port | undefined;
  ports(): Iterable<Port>;
  /** Writes state.json after a change that is live already (a failure is reported, not undone). */
  saveOrReport(what: string): Promise<void>;
}

const key = (e: { mac: string; vlan: number }) => `${e.mac}/${e.vlan}`;

export class ForwardingTable {
  /** The API's static entries, as state.json stores them (an entry stays listed while its port is down). */
  private api: FdbSpec[] = [];
  /** The config file's static entries as installed (entries of a port that is down are not). */
  private config: FdbSpec[] = [];

  constructor(private readonly owner: FdbOwner) {}

  apiEntries(): FdbSpec[] {
    return [...this.api];
  }

  /** Refuses a port spec that would strand one of the port's static entries (a VLAN change). */
  checkVlans(next: PortSpec): void {
    for (const e of [...this.api, ...this.config].filter((e) => e.port === next.name)) {
      const why = fdbVlanMismatch(next, e.vlan);
      if (why) throw new Conflict('vlan', `static entry ${e.mac} vlan ${e.vlan} would be stranded: ${why}; remove it first (fdb del)`);
    }
  }

  /** The port went down: its config entries went with it in the data plane (its API entries stay listed). */
  portDown(name: string): void {
    this.config = this.config.filter((e) => e.port !== name);
  }

  /** Forgets the port's API entries (the port is gone for good); returns them. */
  dropApi(name: string): FdbSpec[] {
    const gone = this.api.filter((e) => e.port === name);
    this.api = this.api.filter((e) => e.port !== name);
    return gone;
  }

  /** The port came up again under its name: its API entries go back into the data plane. */
  restoreApi(name: string): void {
    const p = this.owner.port(name);
    if (p) for (const e of this.api.filter((e) => e.port === name)) this.owner.dataPlane.fdbAdd(e.mac, e.vlan, p.id);
  }

  /** Adds a static entry; one for the same MAC+VLAN replaces the old one. API entries are persisted. */
  async add(input: unknown, origin: PortOrigin, opts: { persist?: boolean } = {}): Promise<FdbSpec> {
    const entry = parseWith(fdbSpecSchema, input);
    const port = this.owner.port(entry.port);
    if (!port) throw new Invalid('port', `no port named "${entry.port}"`);
    // The data plane would not deliver through such an entry (native/switch/vlan.h); refusing it says why.
    const mismatch = fdbVlanMismatch(port.spec, entry.vlan);
    if (mismatch) throw new Invalid('vlan', mismatch);
    try {
      this.owner.dataPlane.fdbAdd(entry.mac, entry.vlan, port.id);
    } catch (err) {
      throw fromNative(err, undefined, 'data plane refused the entry');
    }
    this.owner.log.info('fdb entry added', { port: entry.port, mac: entry.mac, vlan: entry.vlan, origin });
    const others = (list: FdbSpec[]) => list.filter((e) => !(e.mac === entry.mac && e.vlan === entry.vlan));
    if (origin === 'config') this.config = [...others(this.config), entry];
    if (origin === 'api') {
      this.api = [...others(this.api), entry];
      if (opts.persist !== false) await this.owner.saveOrReport('fdb entry added');
    }
    return entry;
  }

  /**
   * Removes the entry for mac+vlan: a learned one, or a static one added through the API (then stored). A config
   * entry is refused (the config file declares it) and so is a port's own `mac` entry (it goes with the port).
   */
  async remove(macInput: unknown, vlanInput: unknown): Promise<{ mac: string; vlan: number; static: boolean }> {
    const { mac, vlan } = parseWith(fdbSpecSchema.pick({ mac: true, vlan: true }), { mac: macInput, vlan: vlanInput });
    const same = (e: { mac: string; vlan: number }) => e.mac === mac && e.vlan === vlan;
    if (this.config.some(same)) throw new Conflict('mac', `${mac} vlan ${vlan} is declared in the config file; remove it there and reload`);
    const owner = [...this.owner.ports()].find((p) => p.spec.mac === mac && p.spec.vlan === vlan);
    if (owner) throw new Conflict('mac', `${mac} vlan ${vlan} is port ${owner.spec.name}'s own MAC; it goes with the port`);
    const wasStatic = this.api.some(same);
    if (!this.owner.dataPlane.fdbRemove(mac, vlan) && !wasStatic) throw new NotFound('mac', `no entry for ${mac} vlan ${vlan}`);
    this.owner.log.info('fdb entry removed', { mac, vlan, static: wasStatic });
    if (wasStatic) {
      this.api = this.api.filter((e) => !same(e));
      await this.owner.saveOrReport('fdb entry removed');
    }
    return { mac, vlan, static: wasStatic };
  }

  /** Forgets learned entries, of one port or all (static ones stay: they are configuration). */
  flush(portName?: string): void {
    const port = portName === undefined ? undefined : this.owner.port(portName);
    if (portName !== undefined && !port) throw new NotFound('port', `no port named "${portName}"`);
    this.owner.dataPlane.fdbFlush(port?.id);
    this.owner.log.info('fdb flushed', { port: portName });
  }

  /**
   * A reload, once its ports are up: the config entries become what the file declares. Entries of ports that went
   * down went with them (they are no longer in `config`, so the plan brings them back).
   */
  async applyConfig(fdb: readonly FdbSpec[], change: ConfigChange): Promise<void> {
    const { dataPlane, log } = this.owner;
    const fdbPlan = planFdb(this.config, fdb);
    const removedKeys = new Set(fdbPlan.remove.map(key));
    for (const e of fdbPlan.remove) {
      dataPlane.fdbRemove(e.mac, e.vlan);
      log.info('fdb entry removed', { port: e.port, mac: e.mac, vlan: e.vlan, reason: 'no longer in the config' });
      change.fdbRemoved++;
    }
    this.config = this.config.filter((e) => !removedKeys.has(key(e)));
    for (const e of fdbPlan.add) {
      try {
        await this.add(e, 'config');
        change.fdbAdded++;
      } catch (err) {
        log.error('config fdb entry could not be installed', { port: e.port, mac: e.mac, vlan: e.vlan, err: err as Error });
        change.failed.push({ what: `fdb ${e.mac} vlan ${e.vlan}`, reason: (err as Error).message });
      }
    }
    // Static entries that a port going down took along, or that a removed config entry had replaced: put back.
    const installed = new Set(dataPlane.fdbList().filter((x) => x.static).map(key));
    const reinstall = (mac: string, vlan: number, port: string) => {
      const p = this.owner.port(port);
      if (!p || installed.has(key({ mac, vlan }))) return;
      dataPlane.fdbAdd(mac, vlan, p.id);
      installed.add(key({ mac, vlan }));
    };
    for (const e of this.api) reinstall(e.mac, e.vlan, e.port);
    for (const p of this.owner.ports()) if (p.spec.mac && removedKeys.has(key({ mac: p.spec.mac, vlan: p.spec.vlan }))) reinstall(p.spec.mac, p.spec.vlan, p.spec.name);
  }
}
