// Bringing back state.json's API ports and static FDB entries at start, after the config ports. Entry by entry:
// whatever cannot be used (does not validate, cannot be reopened, its name is now a config port's, its port is
// gone) is logged, kept in state.json.bad-TIME with the reason, and skipped; the rest comes back.
import type { Logger } from '../log.js';
import type { SetAside, StateStore } from './state.js';
import type { VSwitch } from './model.js';

export async function restoreState(vswitch: VSwitch, store: StateStore, configNames: ReadonlySet<string>, log: Logger): Promise<void> {
  const stored = await store.load();
  const rejected: SetAside[] = [...stored.invalid];
  // FDB entries of a port that does not come back go with it, even when a config port now has that name: they
  // were never its. An invalid port entry's name counts too, when it has one.
  const droppedPorts = new Set<string>();
  for (const r of stored.invalid) {
    const name = (r.value as { name?: unknown } | null)?.name;
    if (r.entry.startsWith('ports[') && typeof name === 'string') droppedPorts.add(name);
  }
  for (const { entry, spec } of stored.ports) {
    if (configNames.has(spec.name)) {
      log.warn('stored port has the name of a config port: the config wins, the stored port is dropped', { port: spec.name, storedSocket: spec.socket, entry });
      rejected.push({ entry, reason: 'a config port has this name (the config wins)', value: spec });
      droppedPorts.add(spec.name);
      continue;
    }
    try {
      await vswitch.addPort(spec, 'api', { persist: false });
      log.info('port restored', { port: spec.name });
    } catch (err) {
      log.error('stored port could not be restored and is set aside', { port: spec.name, entry, err: err as Error });
      rejected.push({ entry, reason: (err as Error).message, value: spec });
      droppedPorts.add(spec.name);
    }
  }
  for (const { entry, spec: e } of stored.fdb) {
    if (droppedPorts.has(e.port)) {
      log.warn('stored fdb entry of a dropped port is dropped', { port: e.port, mac: e.mac, vlan: e.vlan, entry });
      rejected.push({ entry, reason: `its port "${e.port}" was not restored`, value: e });
      continue;
    }
    try {
      await vswitch.fdbAdd(e, 'api', { persist: false });
    } catch (err) {
      log.warn('stored fdb entry could not be restored and is set aside', { port: e.port, mac: e.mac, vlan: e.vlan, entry, err: err as Error });
      rejected.push({ entry, reason: (err as Error).message, value: e });
    }
  }
  if (rejected.length === 0) return;
  const movedTo = await store.setAside(rejected);
  log.warn('stored entries set aside', { count: rejected.length, movedTo });
  // state.json now says what runs; the set-aside file was written first, so nothing is in neither.
  await vswitch.save();
}
