// Reloading the config file: what changes between the config ports and static FDB entries that run and the ones the
// file now declares. A port is unchanged only if its whole spec is, compared field by field whatever fields the
// schema has, so a field added to PortSpec later is covered without touching this file.
import type { FdbSpec, PortSpec } from '../config.js';

export interface PortPlan {
  /** Running, no longer declared. */
  remove: PortSpec[];
  /** Declared, not running. */
  add: PortSpec[];
  /** Running under this name with another spec: taken down and brought up again as declared. */
  replace: Array<{ from: PortSpec; to: PortSpec }>;
  /** Same spec: left alone, its guest link stays up. */
  keep: PortSpec[];
}

export interface FdbPlan {
  /** Running entries whose MAC+VLAN the file no longer has. */
  remove: FdbSpec[];
  /** Entries the file has that do not run as declared (new, or now pointing at another port). */
  add: FdbSpec[];
}

/** Both sides hold specs in the same form (parsed, socket paths resolved); order follows `wanted`. */
export function planPorts(running: readonly PortSpec[], wanted: readonly PortSpec[]): PortPlan {
  const byName = new Map(running.map((p) => [p.name, p]));
  const wantedNames = new Set(wanted.map((p) => p.name));
  const plan: PortPlan = { remove: running.filter((p) => !wantedNames.has(p.name)), add: [], replace: [], keep: [] };
  for (const to of wanted) {
    const from = byName.get(to.name);
    if (!from) plan.add.push(to);
    else if (sameSpec(from, to)) plan.keep.push(to);
    else plan.replace.push({ from, to });
  }
  return plan;
}

export function planFdb(running: readonly FdbSpec[], wanted: readonly FdbSpec[]): FdbPlan {
  const key = (e: FdbSpec) => `${e.mac}/${e.vlan}`;
  const wantedKeys = new Set(wanted.map(key));
  const runningByKey = new Map(running.map((e) => [key(e), e]));
  return {
    remove: running.filter((e) => !wantedKeys.has(key(e))),
    add: wanted.filter((e) => !sameSpec(runningByKey.get(key(e)), e)),
  };
}

/** The top-level fields whose values differ (for the log line saying why a port is brought up again). */
export function changedFields(a: object, b: object): string[] {
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
  return keys.filter((k) => !sameSpec((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}

/** Deep equality of two JSON-shaped values; object key order and undefined-valued keys do not count. */
export function sameSpec(a: unknown, b: unknown): boolean {
  return JSON.stringify(canonical(a)) === JSON.stringify(canonical(b));
}

function canonical(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canonical);
  if (v === null || typeof v !== 'object') return v;
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(v).sort()) {
    const x = (v as Record<string, unknown>)[k];
    if (x !== undefined) out[k] = canonical(x);
  }
  return out;
}
