// The config file (JSON) and the shapes shared by the config, the API and state.json. One schema per thing, so a
// port described in a config file, POSTed to /v1/ports or restored from state.json is checked by the same rules
// and a bad field gets the same message everywhere: "ports[1].mtu: must be at most 9710".
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { z } from 'zod';
import { MAX_MTU, MAX_QUEUE_PAIRS, MAX_THREADS, MIN_MTU } from './dataplane/limits.js';

export const PORT_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
export const MAC_RE = /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/;
export { MAX_QUEUE_PAIRS, MAX_THREADS, MIN_MTU, MAX_MTU } from './dataplane/limits.js';
/** Entries in each of a port's allowedMacs and allowedIps (checked one by one for each frame the port sends). */
export const MAX_ALLOWED_ADDRESSES = 64;

/** zod calls this for a wrong type; a missing field has no input, and deserves a different message. */
export const expected =
  (what: string) =>
  (issue: { input?: unknown }): string =>
    issue.input === undefined ? 'is required' : `must be ${what}`;

const int = (what: string, min: number, max: number) =>
  z
    .number({ error: expected(`a number (${what})`) })
    .int({ error: 'must be an integer' })
    .min(min, { error: `must be at least ${min}` })
    .max(max, { error: `must be at most ${max}` });

export const portNameSchema = z
  .string({ error: expected('a string') })
  .regex(PORT_NAME_RE, { error: 'must be 1-64 characters of A-Z a-z 0-9 _ . - and start with a letter or digit' });

/** A unicast MAC, normalised to lower case (multicast/broadcast cannot be a port's or a static entry's address). */
export const macSchema = z
  .string({ error: expected('a string') })
  .regex(MAC_RE, { error: 'must be a MAC address like 52:54:00:12:34:56' })
  .transform((s) => s.toLowerCase())
  .refine((s) => (parseInt(s.slice(0, 2), 16) & 1) === 0, { error: 'must be a unicast address (first octet even)' })
  .refine((s) => s !== '00:00:00:00:00:00', { error: 'must not be all zeros' });

/** An IPv4 or IPv6 address, or a CIDR prefix ("169.254.0.0/16", "fe80::/64"), normalised to lower case. */
export const ipPrefixSchema = z
  .string({ error: expected('a string') })
  .transform((s) => s.trim().toLowerCase())
  .refine(
    (s) => {
      const [addr, len, ...rest] = s.split('/');
      const v = net.isIPv4(addr) ? 4 : net.isIPv6(addr) && !addr.includes('%') ? 6 : 0;
      if (v === 0 || rest.length) return false;
      return len === undefined || (/^\d{1,3}$/.test(len) && Number(len) <= (v === 4 ? 32 : 128));
    },
    { error: 'must be an IPv4 or IPv6 address or prefix like 169.254.1.2, 169.254.0.0/16 or fe80::/64' },
  );

/** The IPv6 link-local address a MAC gives by EUI-64 (RFC 4291 appendix A), as Neutron allows it for a port's MAC. */
export function eui64LinkLocal(mac: string): string {
  const b = mac.split(':').map((h) => parseInt(h, 16));
  const g = [(b[0] ^ 2) << 8 | b[1], b[2] << 8 | 0xff, 0xfe << 8 | b[3], b[4] << 8 | b[5]];
  // The URL parser writes IPv6 hosts in their canonical (RFC 5952) form.
  return new URL(`http://[fe80::${g.map((x) => x.toString(16)).join(':')}]`).hostname.slice(1, -1);
}

/** 802.1Q VLAN ids 1..4094 (0 and 4095 are reserved); 0 here is the untagged default domain. */
export const MAX_VLAN = 4094;
export const vlanSchema = int('VLAN id, 0 = untagged', 0, MAX_VLAN);
export const VLAN_MODES = ['access', 'trunk'] as const;
export type VlanMode = (typeof VLAN_MODES)[number];

/** "100,200-210" or [100, 200]: tagged VLAN ids, returned sorted and each once. */
export const vlanListSchema = z
  .union([z.string(), z.array(z.number())], { error: expected('a VLAN list like "100,200-210" or [100, 200]') })
  .transform((v, ctx) => {
    try {
      const ids = typeof v === 'string' ? parseRangeList(v, checkVlan, 'a VLAN id or range (e.g. "100", "200-210")') : v.map(checkVlan);
      if (ids.length === 0) throw new Error('must list at least one VLAN (leave allowedVlans out to allow every VLAN)');
      return [...new Set(ids)].sort((a, b) => a - b);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message });
      return z.NEVER;
    }
  });

/** "0660", "660" or the number 0o660 (432); JSON has no octal literals, hence the string form. */
export const socketModeSchema = z
  .union([z.string(), z.number()], { error: expected('an octal string like "0660" or a number') })
  .transform((v, ctx) => {
    const n = typeof v === 'number' ? v : /^0?[0-7]{3}$/.test(v) ? parseInt(v, 8) : NaN;
    if (!Number.isInteger(n) || n < 0 || n > 0o777) {
      ctx.addIssue({ code: 'custom', message: 'must be permission bits like "0660" (0 to 0777)' });
      return z.NEVER;
    }
    return n;
  });

/** A user or group: a name from /etc/passwd|group or a numeric id. */
export const principalSchema = z.union(
  [
    z.string().regex(/^[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?$/, { error: 'must be a user/group name' }),
    int('id', 0, 0xfffffffe),
  ],
  { error: expected('a user/group name or a numeric id') },
);

export const portSpecSchema = z.strictObject({
  name: portNameSchema,
  /** vhost-user: a VM's NIC; nic: a host interface over AF_XDP or AF_PACKET; tap: a tap device the switch creates. */
  type: z.enum(['vhost-user', 'nic', 'tap'], { error: expected('"vhost-user", "nic" or "tap"') }).default('vhost-user'),
  /** nic: the host interface to bind; tap: the name of the tap device to create. */
  iface: z
    .string({ error: expected('a string') })
    .regex(/^[A-Za-z0-9_.:-]{1,15}$/, { error: 'must be an interface name of 1..15 letters, digits, "_", ".", ":" or "-"' })
    .optional(),
  /**
   * access (default): untagged frames of `vlan` only, tagged frames dropped. trunk: `vlan` is the native VLAN
   * (untagged frames), allowedVlans are carried 802.1Q-tagged (a NIC's wire, or a guest that runs its own VLANs).
   */
  vlanMode: z.enum(VLAN_MODES, { error: expected('"access" or "trunk"') }).optional(),
  /** true is vlanMode "trunk" (the older spelling, still accepted). */
  trunk: z.boolean({ error: expected('true or false') }).optional(),
  /** Trunks: the tagged VLANs carried; absent = every VLAN. */
  allowedVlans: vlanListSchema.optional(),
  /** nic: AF_XDP where the kernel and interface allow it, else AF_PACKET (auto, the default); or forced. */
  backend: z.enum(['auto', 'af_xdp', 'af_packet'], { error: expected('"auto", "af_xdp" or "af_packet"') }).optional(),
  /** The switch's side: server = the switch listens and QEMU connects (Nova/libvirt call that QEMU "client"). */
  mode: z.enum(['server', 'client'], { error: expected('"server" or "client"') }).default('server'),
  /** Relative paths are inside the run directory; default RUN_DIR/NAME.sock. */
  socket: z
    .string({ error: expected('a string') })
    .min(1, { error: 'must not be empty' })
    .refine((s) => !s.includes('\0'), { error: 'must not contain NUL' })
    .optional(),
  queues: int('queue pairs', 1, MAX_QUEUE_PAIRS).default(1),
  mtu: int('bytes', MIN_MTU, MAX_MTU).default(1500),
  vlan: vlanSchema.default(0),
  /** The guest's MAC: installed as a static FDB entry for this port and used by `vif` output. */
  mac: macSchema.optional(),
  /**
   * Port security (Neutron's port_security_enabled): frames whose source MAC is neither `mac` nor in allowedMacs
   * are dropped (`spoofed`), and with allowedIps also frames that claim another address (IPv4/IPv6 source, ARP
   * sender, ND target).
   */
  portSecurity: z.boolean({ error: expected('true or false') }).default(false),
  /** Source MACs the port may use besides `mac` (Neutron's allowed_address_pairs). */
  allowedMacs: z
    .array(macSchema, { error: expected('an array of MAC addresses') })
    .max(MAX_ALLOWED_ADDRESSES, { error: `must have at most ${MAX_ALLOWED_ADDRESSES} entries` })
    .default([]),
  /** Addresses and prefixes the port may send from; empty: only the source MAC is checked. */
  allowedIps: z
    .array(ipPrefixSchema, { error: expected('an array of IP addresses or prefixes') })
    .max(MAX_ALLOWED_ADDRESSES, { error: `must have at most ${MAX_ALLOWED_ADDRESSES} entries` })
    .default([]),
  /**
   * Queue -> poll thread, as OVS's pmd-rxq-affinity: {"0": 1} polls queue (pair) 0 on thread 1. Other queues are
   * placed by the switch and keep their thread while the port lives.
   */
  queueAffinity: z
    .record(z.string().regex(/^\d+$/, { error: 'keys must be queue numbers' }), int('a poll thread', 0, MAX_THREADS - 1), { error: expected('an object of queue: thread') })
    .optional(),
  /** Offer checksum/TSO offloads to the guest. */
  offloads: z.boolean({ error: expected('true or false') }).default(false),
  socketMode: socketModeSchema.default(0o660),
  socketOwner: principalSchema.optional(),
  socketGroup: principalSchema.optional(),
}, { error: expected('a port object') }).superRefine((p, ctx) => {
  const host = p.type === 'nic' || p.type === 'tap';
  if (host && !p.iface) ctx.addIssue({ code: 'custom', path: ['iface'], message: `is required for a ${p.type} port` });
  if (!host && p.iface) ctx.addIssue({ code: 'custom', path: ['iface'], message: 'is only for nic and tap ports' });
  if (host && p.socket) ctx.addIssue({ code: 'custom', path: ['socket'], message: 'is only for vhost-user ports' });
  if (p.trunk && p.vlanMode === 'access') ctx.addIssue({ code: 'custom', path: ['trunk'], message: 'true contradicts vlanMode "access"' });
  if (p.allowedVlans && vlanModeOf(p) !== 'trunk') ctx.addIssue({ code: 'custom', path: ['allowedVlans'], message: 'is only for trunk ports (vlanMode "trunk")' });
  if (p.backend !== undefined && p.type !== 'nic') ctx.addIssue({ code: 'custom', path: ['backend'], message: 'is only for nic ports' });
  if (p.type === 'tap' && p.queues !== 1) ctx.addIssue({ code: 'custom', path: ['queues'], message: 'a tap port has one queue' });
  if (p.portSecurity && !p.mac) ctx.addIssue({ code: 'custom', path: ['mac'], message: 'is required with portSecurity' });
  for (const q of Object.keys(p.queueAffinity ?? {}))
    if (Number(q) >= p.queues) ctx.addIssue({ code: 'custom', path: ['queueAffinity', q], message: `the port has ${p.queues} queue${p.queues === 1 ? '' : 's'} (0-${p.queues - 1})` });
  // Without port security nothing would check them: refuse rather than let the operator believe they apply.
  for (const f of ['allowedMacs', 'allowedIps'] as const) {
    if (!p.portSecurity && p[f].length) ctx.addIssue({ code: 'custom', path: [f], message: 'needs portSecurity: true' });
  }
}).transform((p) => ({ ...p, vlanMode: vlanModeOf(p), trunk: vlanModeOf(p) === 'trunk' }));
export type PortSpecInput = z.input<typeof portSpecSchema>;
export type PortSpec = z.output<typeof portSpecSchema>;

/** The addon's queueThreads: thread per queue, -1 where the switch places the queue. */
export function queueThreads(p: Pick<PortSpec, 'queues' | 'queueAffinity'>): number[] | undefined {
  if (!p.queueAffinity) return undefined;
  return Array.from({ length: p.queues }, (_, q) => p.queueAffinity![String(q)] ?? -1);
}

/** "0:1,1:0" (CLI) as a queueAffinity object. */
export function parseQueueAffinity(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const part of text.split(',').map((x) => x.trim()).filter(Boolean)) {
    const m = /^(\d+):(\d+)$/.exec(part);
    if (!m) throw new Error(`"${part}" is not QUEUE:THREAD`);
    out[m[1]!] = Number(m[2]);
  }
  return out;
}

function vlanModeOf(p: { vlanMode?: VlanMode; trunk?: boolean }): VlanMode {
  return p.vlanMode ?? (p.trunk ? 'trunk' : 'access');
}

type VlanMembership = Pick<PortSpec, 'name' | 'vlan' | 'vlanMode' | 'allowedVlans'>;

/** Does the port carry `vlan` (frames of it taken from and delivered to the port)? As native/switch/vlan.h decides. */
export function portCarriesVlan(p: VlanMembership, vlan: number): boolean {
  if (vlan === p.vlan) return true;
  return p.vlanMode === 'trunk' && vlan !== 0 && (p.allowedVlans === undefined || p.allowedVlans.includes(vlan));
}

/** "an access port of VLAN 100" / "a trunk of native VLAN 0 and tagged VLANs 100,200-210". */
export function describeVlans(p: VlanMembership): string {
  if (p.vlanMode !== 'trunk') return `an access port of VLAN ${p.vlan}${p.vlan === 0 ? ' (untagged)' : ''}`;
  return `a trunk of native VLAN ${p.vlan} and tagged VLANs ${p.allowedVlans ? formatRangeList(p.allowedVlans) : `1-${MAX_VLAN}`}`;
}

/** Why port p cannot take a static entry on `vlan` (frames of that VLAN would be sent to it), or undefined. */
export function fdbVlanMismatch(p: VlanMembership, vlan: number): string | undefined {
  if (portCarriesVlan(p, vlan)) return undefined;
  return `port "${p.name}" is ${describeVlans(p)}, not on VLAN ${vlan}`;
}

/** GET /v1/ports/{name}/capture's query (strings, as they come in a URL). */
export const captureQuerySchema = z.strictObject({
  direction: z.enum(['in', 'out', 'both'], { error: expected('"in", "out" or "both"') }).default('both'),
  count: z.coerce.number({ error: expected('a number of frames') }).int().min(1).max(1e9).optional(),
  snaplen: z.coerce.number({ error: expected('a number of bytes') }).int().min(64).max(65535).default(65535),
});

export const fdbSpecSchema = z.strictObject({
  mac: macSchema,
  vlan: vlanSchema.default(0),
  port: portNameSchema,
}, { error: expected('an FDB entry object') });
export type FdbSpec = z.output<typeof fdbSpecSchema>;

/** "0-3,6" or [0,1,2,3,6]. */
export const cpuListSchema = z.union([z.string(), z.array(z.number())], { error: expected('a CPU list like "2,3" or [2,3]') }).transform((v, ctx) => {
  try {
    return typeof v === 'string' ? parseCpuList(v) : v.map((n) => checkCpu(n));
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
    return z.NEVER;
  }
});

const threadsSchema = int('poll threads', 1, MAX_THREADS);
const agingSecondsSchema = int('seconds', 1, 86400);

/** A CPU list that names one CPU per poll thread, or undefined when it does. */
export function cpuCountMismatch(threads: number, cpus: readonly number[] | undefined): string | undefined {
  return cpus !== undefined && cpus.length !== threads ? `lists ${cpus.length} CPUs for ${threads} threads` : undefined;
}

/** The data plane's settings as the switch runs with them (the file, the environment and the flags resolved). */
export const switchRunSchema = z
  .object({ threads: threadsSchema, cpus: cpuListSchema.optional(), agingSeconds: agingSecondsSchema })
  .superRefine((run, ctx) => {
    const mismatch = cpuCountMismatch(run.threads, run.cpus);
    if (mismatch) ctx.addIssue({ code: 'custom', path: ['cpus'], message: mismatch });
  });

export const switchSectionSchema = z.strictObject({
  threads: threadsSchema.optional(),
  cpus: cpuListSchema.optional(),
  agingSeconds: agingSecondsSchema.default(300),
  runDir: z.string({ error: expected('a string') }).min(1).optional(),
  stateDir: z.string({ error: expected('a string') }).min(1).optional(),
  /** Prometheus over TCP: "[HOST:]PORT" (HOST 127.0.0.1 when omitted; "[::1]:9100" for IPv6). */
  metricsListen: z.string({ error: expected('a string like "9100" or "127.0.0.1:9100"') }).refine((v) => parseListen(v) !== undefined, { error: 'must be [HOST:]PORT with PORT 1-65535' }).optional(),
  /** Directories besides the run directory where port sockets may live. */
  socketDirs: z.array(z.string({ error: expected('a string') }).min(1), { error: expected('an array of directories') }).default([]),
}, { error: expected('an object') });

export const configSchema = z
  .strictObject(
    {
      switch: switchSectionSchema.default({ agingSeconds: 300, socketDirs: [] }),
      ports: z.array(portSpecSchema, { error: expected('an array of ports') }).default([]),
      fdb: z.array(fdbSpecSchema, { error: expected('an array of entries') }).default([]),
    },
    { error: expected('a JSON object') },
  )
  .superRefine((cfg, ctx) => {
    const names = new Map<string, number>();
    cfg.ports.forEach((p, i) => {
      if (names.has(p.name)) {
        ctx.addIssue({ code: 'custom', path: ['ports', i, 'name'], message: `duplicate port name "${p.name}" (also ports[${names.get(p.name)}])` });
      } else names.set(p.name, i);
    });
    cfg.fdb.forEach((e, i) => {
      const port = names.has(e.port) ? cfg.ports[names.get(e.port)!] : undefined;
      if (!port) ctx.addIssue({ code: 'custom', path: ['fdb', i, 'port'], message: `no port named "${e.port}" in ports` });
      const mismatch = port && fdbVlanMismatch(port, e.vlan);
      if (mismatch) ctx.addIssue({ code: 'custom', path: ['fdb', i, 'vlan'], message: mismatch });
    });
    const { threads, cpus } = cfg.switch;
    const mismatch = threads === undefined ? undefined : cpuCountMismatch(threads, cpus);
    if (mismatch) ctx.addIssue({ code: 'custom', path: ['switch', 'cpus'], message: mismatch });
  });
export type Config = z.output<typeof configSchema>;

/** The config used when `run` gets no --config: two server-mode ports, sockets in the run directory. */
export const DEFAULT_CONFIG_JSON = {
  switch: { threads: 1, agingSeconds: 300 },
  ports: [
    { name: 'vhu0', type: 'vhost-user', mode: 'server', socket: 'vhu0.sock', queues: 1, mtu: 1500 },
    { name: 'vhu1', type: 'vhost-user', mode: 'server', socket: 'vhu1.sock', queues: 1, mtu: 1500 },
  ],
  fdb: [],
} as const;

export interface FieldIssue {
  field: string;
  reason: string;
}

/** A validation failure that names each bad field and why. */
export class ValidationError extends Error {
  constructor(
    readonly issues: FieldIssue[],
    prefix = '',
  ) {
    super(prefix + issues.map((i) => (i.field ? `${i.field}: ${i.reason}` : i.reason)).join('; '));
    this.name = 'ValidationError';
  }
}

/** "ports[0].mtu" from ['ports', 0, 'mtu']. */
export function fieldPath(p: readonly PropertyKey[]): string {
  return p.reduce<string>((acc, k) => (typeof k === 'number' ? `${acc}[${k}]` : acc ? `${acc}.${String(k)}` : String(k)), '');
}

export function issuesOf(error: z.ZodError): FieldIssue[] {
  return error.issues.map((issue) => {
    if (issue.code === 'unrecognized_keys') {
      return { field: fieldPath([...issue.path, issue.keys[0] ?? '']), reason: `unknown field${issue.keys.length > 1 ? `s ${issue.keys.join(', ')}` : ''}` };
    }
    return { field: fieldPath(issue.path), reason: issue.message };
  });
}

/** Parses with a schema or throws a ValidationError naming the fields. */
export function parseWith<S extends z.ZodType>(schema: S, value: unknown, prefix = ''): z.output<S> {
  const r = schema.safeParse(value);
  if (!r.success) throw new ValidationError(issuesOf(r.error), prefix);
  return r.data;
}

export function parseCpuList(list: string): number[] {
  return parseRangeList(list, checkCpu, 'a CPU number or range (e.g. "2", "4-7")');
}

/** "2,4-7" → [2, 4, 5, 6, 7]; check() vets each number (throws with the reason). */
function parseRangeList(list: string, check: (n: number) => number, what: string): number[] {
  const out: number[] = [];
  for (const part of list.split(',').map((s) => s.trim())) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (!m) throw new Error(`"${part}" is not ${what}`);
    const lo = check(Number(m[1]));
    const hi = m[2] === undefined ? lo : check(Number(m[2]));
    if (hi < lo) throw new Error(`range "${part}" is backwards`);
    for (let c = lo; c <= hi; c++) out.push(c);
  }
  return out;
}

/** [100, 200, 201, 202] → "100,200-202" (sorted input). */
export function formatRangeList(ids: readonly number[]): string {
  const parts: string[] = [];
  for (let i = 0; i < ids.length; ) {
    let j = i;
    while (j + 1 < ids.length && ids[j + 1] === ids[j]! + 1) j++;
    parts.push(j === i ? `${ids[i]}` : `${ids[i]}-${ids[j]}`);
    i = j + 1;
  }
  return parts.join(',');
}

function checkVlan(n: number): number {
  if (!Number.isInteger(n) || n < 1 || n > MAX_VLAN) throw new Error(`VLAN ${n} is not an integer 1-${MAX_VLAN}`);
  return n;
}

function checkCpu(n: number): number {
  if (!Number.isInteger(n) || n < 0 || n > 4095) throw new Error(`CPU ${n} is not an integer 0-4095`);
  return n;
}

/** Reads and validates a config file; errors start with the file name. */
export async function loadConfigFile(file: string): Promise<Config> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    throw new Error(`config ${file}: ${(err as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new Error(`config ${file}: not valid JSON: ${(err as Error).message}`);
  }
  return parseWith(configSchema, raw, `config ${file}: `);
}

export function defaultConfig(): Config {
  return parseWith(configSchema, DEFAULT_CONFIG_JSON, 'embedded default config: ');
}

/** Where a port's socket lives: relative paths are inside the run directory. */
export function resolveSocketPath(runDir: string, name: string, socket: string | undefined): string {
  return path.resolve(runDir, socket ?? `${name}.sock`);
}

/** "9100" → 127.0.0.1:9100 (loopback unless a host is named), "0.0.0.0:9100", "[::1]:9100"; undefined if malformed. */
export function parseListen(v: string): { host: string; port: number } | undefined {
  const m = /^(?:(?:\[([0-9a-fA-F:.]+)\]|([^:\[\]]+)):)?(\d{1,5})$/.exec(v.trim());
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return undefined;
  return { host: m[1] ?? m[2] ?? '127.0.0.1', port };
}

export interface ResolvedSwitchSettings {
  metricsListen?: { host: string; port: number };
  threads: number;
  cpus?: number[];
  agingSeconds: number;
  runDir: string;
  stateDir: string;
  socketDirs: string[];
}

export interface SettingOverrides {
  metricsListen?: string;
  runDir?: string;
  stateDir?: string;
  threads?: number;
  cpus?: number[];
}

/**
 * Flags win over the environment, which wins over the config file, which wins over the built-in defaults.
 * Relative directories in the file are relative to the file's directory (baseDir).
 */
export function resolveSettings(
  cfg: Config,
  flags: SettingOverrides,
  defaults: { runDir: string; stateDir?: (runDir: string) => string },
  baseDir: string,
  env: NodeJS.ProcessEnv = process.env,
): ResolvedSwitchSettings {
  const s = cfg.switch;
  const fromFile = (p: string | undefined) => (p === undefined ? undefined : path.resolve(baseDir, p));
  const runDir = path.resolve(flags.runDir ?? (env.VHOST_SWITCH_RUN_DIR || undefined) ?? fromFile(s.runDir) ?? defaults.runDir);
  const stateDir = path.resolve(flags.stateDir ?? (env.VHOST_SWITCH_STATE_DIR || undefined) ?? fromFile(s.stateDir) ?? defaults.stateDir?.(runDir) ?? runDir);
  const cpus = flags.cpus ?? s.cpus;
  const threads = flags.threads ?? s.threads ?? cpus?.length ?? 1;
  const mismatch = cpuCountMismatch(threads, cpus);
  if (mismatch) throw new ValidationError([{ field: 'cpus', reason: mismatch }]);
  const listen = flags.metricsListen ?? (env.VHOST_SWITCH_METRICS_LISTEN || undefined) ?? s.metricsListen;
  const metricsListen = listen === undefined ? undefined : parseListen(listen);
  if (listen !== undefined && !metricsListen) throw new ValidationError([{ field: 'metricsListen', reason: `"${listen}" is not [HOST:]PORT with PORT 1-65535` }]);
  return { threads, cpus, agingSeconds: s.agingSeconds, runDir, stateDir, socketDirs: s.socketDirs.map((d) => path.resolve(baseDir, d)), metricsListen };
}

/**
 * A user or group name → numeric id, from /etc/passwd or /etc/group (Node has no getpwnam). Numbers pass through.
 * NSS sources beyond the files (LDAP, sssd) are not consulted: use numeric ids for those.
 */
export async function lookupId(kind: 'user' | 'group', who: string | number, etc = '/etc'): Promise<number> {
  if (typeof who === 'number') return who;
  const file = path.join(etc, kind === 'user' ? 'passwd' : 'group');
  let text = '';
  try {
    text = await fs.readFile(file, 'utf8');
  } catch {
    // Treated as "not found" below: the message names the file we looked in.
  }
  for (const line of text.split('\n')) {
    const [name, , id] = line.split(':');
    if (name === who && id !== undefined && /^\d+$/.test(id)) return Number(id);
  }
  throw new Error(`no ${kind} named "${who}" in ${file}`);
}
