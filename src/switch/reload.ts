// A config reload, for the ports: which go down, which come up, in which order, and what became of each. The
// static entries follow (ForwardingTable.applyConfig); VSwitch.applyConfig runs both, one change at a time.
import type { FdbSpec, PortSpec } from '../config.js';
import type { Logger } from '../log.js';
import type { Port } from './port.js';
import { changedFields, planPorts } from './reconcile.js';

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

/** What a reload needs of the switch. */
export interface ReloadTarget {
  log: Logger;
  /** The running ports, by name. */
  ports: ReadonlyMap<string, Port>;
  teardown(name: string): Promise<void>;
  /** Brings a config port up (throws when it cannot). */
  bringUp(spec: PortSpec): Promise<unknown>;
  /** Forgets a port's API entries; returns them. */
  dropApiFdb(name: string): FdbSpec[];
}

/**
 * Makes the running config ports the `wanted` ones (normalized specs). Unchanged ports are not touched; removed ones
 * go down, changed ones go down and come up with the new spec, new ones come up, and a new config port wins over an
 * API port of the same name. A port that cannot come up is logged and listed in `failed` (a changed one then keeps
 * its previous spec).
 */
export async function reloadPorts(sw: ReloadTarget, wanted: readonly PortSpec[]): Promise<ConfigChange> {
  const { log } = sw;
  const running = [...sw.ports.values()].filter((p) => p.origin === 'config').map((p) => p.spec);
  const plan = planPorts(running, wanted);
  const change: ConfigChange = {
    added: [], removed: [], replaced: [], unchanged: plan.keep.map((p) => p.name), failed: [],
    fdbAdded: 0, fdbRemoved: 0, dropped: { ports: [], fdb: [] }, apiChanged: false,
  };
  const dropApiFdb = (name: string) => {
    const gone = sw.dropApiFdb(name);
    if (gone.length) change.apiChanged = true;
    return gone;
  };
  for (const to of plan.add) {
    const api = sw.ports.get(to.name);
    if (api?.origin !== 'api') continue;
    log.warn('API port has the name of a new config port: the config wins, the API port is dropped', { port: to.name, apiSocket: api.spec.socket });
    change.dropped.ports.push(api.spec);
    change.dropped.fdb.push(...dropApiFdb(to.name));
    change.apiChanged = true;
    await sw.teardown(to.name);
  }
  // Everything that goes down goes first, so that names, sockets and interfaces are free for what comes up.
  for (const p of plan.remove) {
    await sw.teardown(p.name);
    for (const e of dropApiFdb(p.name)) log.warn('fdb entry of a port removed from the config is dropped', { port: p.name, mac: e.mac, vlan: e.vlan });
    log.info('port removed', { port: p.name, reason: 'no longer in the config' });
    change.removed.push(p.name);
  }
  for (const { from, to } of plan.replace) {
    log.info('config port changed: bringing it up again', { port: to.name, fields: changedFields(from, to).join(',') });
    await sw.teardown(from.name);
  }
  const bringUp = async (spec: PortSpec, what: string): Promise<boolean> => {
    try {
      await sw.bringUp(spec);
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
  return change;
}
