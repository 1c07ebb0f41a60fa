// How a VM attaches to a vhost-switch port: libvirt <interface type='vhostuser'> XML, QEMU arguments,
// and the Neutron binding / Nova VIF that OpenStack uses (VIF_TYPE_VHOSTUSER).
//
// Socket roles. PortInfo.mode is the SWITCH's role. libvirt's <source mode>, QEMU's chardev and
// Neutron's vhostuser_mode all describe QEMU's role, which is the opposite:
//   switch 'server' (it listens)  -> libvirt mode='client', QEMU chardev without server=on, plus
//                                    reconnect so a restarted switch is picked up again;
//   switch 'client' (it connects) -> libvirt mode='server', QEMU chardev server=on,wait=off.
//
// Written from the public documentation of libvirt (formatdomain "vhost-user interface",
// "memoryBacking", NUMA memAccess; drvqemu "Overriding properties of QEMU devices"), QEMU
// (chardev socket, -netdev vhost-user, virtio-net-pci, memory backends) and Nova's libvirt driver
// (nova/virt/libvirt/config.py LibvirtConfigGuestInterface.format_dom, designer.py
// set_vif_host_backend_vhostuser_config, vif.py _set_config_VIFVHostUser).
import { createHash } from 'node:crypto';
import {
  neutronBinding,
  novaNetworkModelVif,
  osVifObject,
  qemuSocketMode,
  novaDevnameFromNeutronId,
  type SocketMode,
} from './neutron.js';

export {
  portNameFromNeutronId,
  socketPathFor,
  resolveSocketDir,
  qemuSocketMode,
  isNeutronPortName,
  OVS_VHOST_USER_SOCKET_DIR,
} from './neutron.js';
export type { SocketMode } from './neutron.js';

export interface PortInfo {
  name: string;
  /** The SWITCH's socket role. */
  mode: SocketMode;
  socket: string;
  queues: number;
  mtu: number;
  mac?: string;
  /** The switch enforces port security on the port (vif_details port_filter). */
  portSecurity?: boolean;
  rxQueueSize?: number;
  txQueueSize?: number;
}

export type VifFormat = 'libvirt' | 'qemu' | 'nova' | 'json';
export const VIF_FORMATS: readonly VifFormat[] = ['libvirt', 'qemu', 'nova', 'json'];

export interface GuestMemory {
  /** QEMU size syntax, e.g. '1G' or '512M'; must equal the guest's -m. Default '1G'. */
  size?: string;
  /** memfd (default; any kernel >= 3.17, QEMU >= 2.12), hugepages (hugetlbfs), or a file under path. */
  backend?: 'memfd' | 'hugepages' | 'file';
  /** hugetlbfs mount (default /dev/hugepages) or directory for 'file'. */
  path?: string;
}

export interface VifOptions {
  /** How the guest runs. 'tcg' on QEMU 7.2 (or an unknown version) turns on the vectors=0 workaround. */
  accel?: 'kvm' | 'tcg';
  /** QEMU version ('7.2.22'); decides reconnect vs reconnect-ms and the 7.2 TCG workaround. */
  qemuVersion?: string;
  /** Seconds between QEMU's reconnect attempts when QEMU is the client. Default 1. */
  reconnectSeconds?: number;
  /**
   * libvirt only. 'vhost-switch' (default): everything this switch wants (reconnect, alias).
   * 'nova': exactly what Nova's libvirt driver writes for such a VIF, for comparison.
   */
  style?: 'vhost-switch' | 'nova';
  /** Neutron port UUID, for the nova/json formats and the Nova-style <target dev='tap…'/>. */
  neutronPortId?: string;
  /** Neutron binding:host_id to include in the binding. */
  hostId?: string;
  /** Guest memory for the QEMU memory-backend arguments and libvirt notes. */
  memory?: GuestMemory;
  /** qemu: include -m/-object/-numa memory arguments (default true). */
  memoryArgs?: boolean;
  /** libvirt: an existing domain; the shared-memory block is printed only when it lacks shared memory. */
  domainXml?: string;
  /** Append notes (XML comments / shell comments). Default true. */
  notes?: boolean;
  /** libvirt <alias name>. Default 'ua-' + the port name (libvirt's user-alias form). */
  alias?: string;
  /** libvirt <target dev>. Not emitted by default (style 'nova' emits Nova's tap name). */
  targetDev?: string;
  /**
   * libvirt: write <mtu size=…/>. Off by default: libvirt 9.0 then tries to set the MTU of an Open vSwitch
   * port it looks up by socket path and fails to start the domain ("Cannot set interface MTU on ''") when
   * the socket is not an OVS port. The guest MTU goes through a host_mtu <qemu:override> instead.
   */
  libvirtMtu?: boolean;
}

// ---------------------------------------------------------------------------------------------
// Validation and small helpers

const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;
const QUEUE_SIZES = [256, 512, 1024];

export function validatePort(port: PortInfo): void {
  const where = `port ${JSON.stringify(port.name)}`;
  if (!port.name || !/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(port.name)) {
    throw new Error(`${where}: name must start with a letter or digit and hold only letters, digits, '_', '.', '-'`);
  }
  if (port.mode !== 'server' && port.mode !== 'client') throw new Error(`${where}: mode must be server or client`);
  if (!port.socket || !port.socket.startsWith('/')) throw new Error(`${where}: socket must be an absolute path`);
  if (/[\0\n]/.test(port.socket)) throw new Error(`${where}: socket path holds a NUL or newline`);
  if (!Number.isInteger(port.queues) || port.queues < 1 || port.queues > 1024) {
    throw new Error(`${where}: queues must be an integer from 1 to 1024`);
  }
  if (!Number.isInteger(port.mtu) || port.mtu < 68 || port.mtu > 65535) {
    throw new Error(`${where}: mtu must be an integer from 68 to 65535`);
  }
  if (port.mac !== undefined && !MAC_RE.test(port.mac)) throw new Error(`${where}: mac must look like 52:54:00:12:34:56`);
  if (port.mac !== undefined && (parseInt(port.mac.slice(0, 2), 16) & 1) === 1) {
    throw new Error(`${where}: mac ${port.mac} is a multicast address`);
  }
  for (const [k, v] of [['rxQueueSize', port.rxQueueSize], ['txQueueSize', port.txQueueSize]] as const) {
    if (v !== undefined && !QUEUE_SIZES.includes(v)) throw new Error(`${where}: ${k} must be 256, 512 or 1024`);
  }
}

/** A stable MAC for a port without one: 52:54:00 (QEMU/libvirt's prefix) + 3 bytes of sha256(name). */
export function defaultMacFor(name: string): string {
  const h = createHash('sha256').update(name).digest();
  return ['52', '54', '00', ...[h[0]!, h[1]!, h[2]!].map((b) => b.toString(16).padStart(2, '0'))].join(':');
}

export function portMac(port: PortInfo): string {
  return (port.mac ?? defaultMacFor(port.name)).toLowerCase();
}

/** libvirt user aliases are 'ua-' followed by letters, digits, '_' and '-'. */
export function libvirtAliasFor(name: string): string {
  return 'ua-' + name.replace(/[^A-Za-z0-9_-]/g, '-');
}

/** QEMU ids: a letter first, then letters, digits, '-', '.', '_'. */
export function qemuIdFor(prefix: string, name: string): string {
  return `${prefix}-${name.replace(/[^A-Za-z0-9_.-]/g, '_')}`;
}

export interface QemuVersion {
  major: number;
  minor: number;
  micro: number;
}

export function parseVersion(v: string | undefined): QemuVersion | undefined {
  const m = v ? /(\d+)\.(\d+)(?:\.(\d+))?/.exec(v) : null;
  if (!m) return undefined;
  return { major: Number(m[1]), minor: Number(m[2]), micro: Number(m[3] ?? 0) };
}

export function versionAtLeast(v: QemuVersion, major: number, minor: number, micro = 0): boolean {
  if (v.major !== major) return v.major > major;
  if (v.minor !== minor) return v.minor > minor;
  return v.micro >= micro;
}

/**
 * The QEMU 7.2 TCG MSI-X problem: a vhost-user virtio-net-pci device with MSI-X on QEMU 7.2 without KVM
 * (TCG) is unreliable (the project's known crash), so the device is given vectors=0 (INTx only).
 * Applies when accel is 'tcg' and the version is 7.2.x or unknown.
 */
export function needsTcgMsixWorkaround(opts: Pick<VifOptions, 'accel' | 'qemuVersion'>): boolean {
  if (opts.accel !== 'tcg') return false;
  const v = parseVersion(opts.qemuVersion);
  return v === undefined || (v.major === 7 && v.minor === 2);
}

// ---------------------------------------------------------------------------------------------
// A tiny XML writer and reader (no dependency): enough for libvirt snippets and for comparing documents.

export interface XmlElement {
  name: string;
  attrs: [string, string][];
  children: XmlNode[];
}
export type XmlNode = XmlElement | { text: string } | { comment: string };

export function el(name: string, attrs: Record<string, string | number | undefined> = {}, children: XmlNode[] = []): XmlElement {
  const a: [string, string][] = [];
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined) a.push([k, String(v)]);
  return { name, attrs: a, children };
}

export function xmlEscape(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/'/g, '&apos;').replace(/"/g, '&quot;');
}

/** A comment body that is safe inside <!-- -->: no '--' and no trailing '-'. */
function commentSafe(s: string): string {
  return s.replace(/--/g, '- -').replace(/-$/, '- ');
}

export function renderXml(node: XmlNode, indent = ''): string {
  if ('text' in node) return indent + xmlEscape(node.text);
  if ('comment' in node) {
    const lines = commentSafe(node.comment).split('\n');
    if (lines.length === 1) return `${indent}<!-- ${lines[0]} -->`;
    return `${indent}<!--\n${lines.map((l) => (l ? indent + '  ' + l : '')).join('\n')}\n${indent}-->`;
  }
  const attrs = node.attrs.map(([k, v]) => ` ${k}='${xmlEscape(v)}'`).join('');
  if (node.children.length === 0) return `${indent}<${node.name}${attrs}/>`;
  if (node.children.length === 1 && 'text' in node.children[0]!) {
    return `${indent}<${node.name}${attrs}>${xmlEscape((node.children[0] as { text: string }).text)}</${node.name}>`;
  }
  const inner = node.children.map((c) => renderXml(c, indent + '  ')).join('\n');
  return `${indent}<${node.name}${attrs}>\n${inner}\n${indent}</${node.name}>`;
}

const ENTITIES: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };
function decodeEntities(s: string): string {
  return s.replace(/&(#x[0-9a-fA-F]+|#\d+|lt|gt|amp|quot|apos);/g, (_m, e: string) => {
    if (e.startsWith('#x')) return String.fromCodePoint(parseInt(e.slice(2), 16));
    if (e.startsWith('#')) return String.fromCodePoint(parseInt(e.slice(1), 10));
    return ENTITIES[e]!;
  });
}

/**
 * Parse an XML document (or a sequence of top-level nodes) into nodes. Handles the prolog,
 * comments, CDATA, DOCTYPE, both quote styles and the five predefined entities; rejects
 * mismatched tags. Not a validating parser.
 */
export function parseXml(src: string): XmlNode[] {
  let i = 0;
  const root: XmlElement = { name: '#root', attrs: [], children: [] };
  const stack: XmlElement[] = [root];
  const fail = (msg: string): never => {
    const line = src.slice(0, i).split('\n').length;
    throw new Error(`XML: ${msg} at line ${line}`);
  };
  while (i < src.length) {
    const top = stack[stack.length - 1]!;
    if (src.startsWith('<!--', i)) {
      const end = src.indexOf('-->', i + 4);
      if (end < 0) fail('unterminated comment');
      top.children.push({ comment: src.slice(i + 4, end) });
      i = end + 3;
    } else if (src.startsWith('<![CDATA[', i)) {
      const end = src.indexOf(']]>', i);
      if (end < 0) fail('unterminated CDATA');
      top.children.push({ text: src.slice(i + 9, end) });
      i = end + 3;
    } else if (src.startsWith('<?', i)) {
      const end = src.indexOf('?>', i);
      if (end < 0) fail('unterminated processing instruction');
      i = end + 2;
    } else if (src.startsWith('<!', i)) {
      const end = src.indexOf('>', i);
      if (end < 0) fail('unterminated declaration');
      i = end + 1;
    } else if (src.startsWith('</', i)) {
      const m = /^<\/([A-Za-z_][\w.:-]*)\s*>/.exec(src.slice(i));
      if (!m) fail('bad end tag');
      if (stack.length === 1 || top.name !== m![1]) fail(`</${m![1]}> does not close <${top.name}>`);
      stack.pop();
      i += m![0].length;
    } else if (src[i] === '<') {
      const m = /^<([A-Za-z_][\w.:-]*)/.exec(src.slice(i));
      if (!m) fail('bad start tag');
      const e: XmlElement = { name: m![1]!, attrs: [], children: [] };
      i += m![0].length;
      for (;;) {
        const ws = /^\s*/.exec(src.slice(i))![0];
        i += ws.length;
        if (src.startsWith('/>', i)) {
          i += 2;
          top.children.push(e);
          break;
        }
        if (src[i] === '>') {
          i += 1;
          top.children.push(e);
          stack.push(e);
          break;
        }
        const a = /^([A-Za-z_][\w.:-]*)\s*=\s*("([^"]*)"|'([^']*)')/.exec(src.slice(i));
        if (!a || ws.length === 0) fail(`bad attribute in <${e.name}>`);
        if (e.attrs.some(([k]) => k === a![1])) fail(`duplicate attribute ${a![1]} in <${e.name}>`);
        e.attrs.push([a![1]!, decodeEntities(a![3] ?? a![4] ?? '')]);
        i += a![0].length;
      }
    } else {
      const end = src.indexOf('<', i);
      const raw = src.slice(i, end < 0 ? src.length : end);
      top.children.push({ text: decodeEntities(raw) });
      i += raw.length;
    }
  }
  if (stack.length !== 1) fail(`<${stack[stack.length - 1]!.name}> is not closed`);
  return root.children;
}

/** The single root element of a document. */
export function parseXmlElement(src: string): XmlElement {
  const roots = parseXml(src).filter((n): n is XmlElement => 'name' in n);
  if (roots.length !== 1) throw new Error(`XML: expected one root element, found ${roots.length}`);
  return roots[0]!;
}

/**
 * A canonical form for comparing documents: comments and whitespace-only text dropped, text trimmed,
 * attributes sorted, element order kept.
 */
export function canonicalXml(src: string | XmlElement): string {
  const e = typeof src === 'string' ? parseXmlElement(src) : src;
  const walk = (n: XmlElement, ind: string): string => {
    const attrs = [...n.attrs].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([k, v]) => ` ${k}="${xmlEscape(v)}"`).join('');
    const kids: string[] = [];
    for (const c of n.children) {
      if ('name' in c) kids.push(walk(c, ind + '  '));
      else if ('text' in c && c.text.trim()) kids.push(ind + '  ' + xmlEscape(c.text.trim()));
    }
    return kids.length ? `${ind}<${n.name}${attrs}>\n${kids.join('\n')}\n${ind}</${n.name}>` : `${ind}<${n.name}${attrs}/>`;
  };
  return walk(e, '');
}

export function attr(e: XmlElement, name: string): string | undefined {
  return e.attrs.find(([k]) => k === name)?.[1];
}
export function childElements(e: XmlElement, name?: string): XmlElement[] {
  return e.children.filter((c): c is XmlElement => 'name' in c && (name === undefined || c.name === name));
}
export function firstChild(e: XmlElement | undefined, ...pathNames: string[]): XmlElement | undefined {
  let cur = e;
  for (const n of pathNames) cur = cur ? childElements(cur, n)[0] : undefined;
  return cur;
}

// ---------------------------------------------------------------------------------------------
// libvirt

/** The <interface type='vhostuser'> element for a port. */
export function libvirtInterfaceElement(port: PortInfo, opts: VifOptions = {}): XmlElement {
  validatePort(port);
  const nova = opts.style === 'nova';
  const qemuMode = qemuSocketMode(port.mode);
  const children: XmlNode[] = [el('mac', { address: portMac(port) }), el('model', { type: 'virtio' })];
  // Nova: <driver> only when queues (multiqueue flavor/image) or queue sizes are set; no driver name for vhostuser.
  const queues = port.queues > 1 ? port.queues : undefined;
  if (queues !== undefined || port.rxQueueSize !== undefined || port.txQueueSize !== undefined) {
    children.push(el('driver', { queues, rx_queue_size: port.rxQueueSize, tx_queue_size: port.txQueueSize }));
  }
  const sourceKids: XmlNode[] = [];
  if (!nova && qemuMode === 'client') {
    // QEMU is the client: reconnect so a restarted switch is picked up again (libvirt >= 4.1).
    sourceKids.push(el('reconnect', { enabled: 'yes', timeout: opts.reconnectSeconds ?? 1 }));
  }
  children.push(el('source', { type: 'unix', path: port.socket, mode: qemuMode }, sourceKids));
  const target = nova ? (opts.neutronPortId ? novaDevnameFromNeutronId(opts.neutronPortId) : opts.targetDev) : opts.targetDev;
  if (target) children.push(el('target', { dev: target }));
  if (!nova) {
    // Nova's format_dom writes <mtu> only for bridge/ethernet; see VifOptions.libvirtMtu for why we don't either.
    if (opts.libvirtMtu) children.push(el('mtu', { size: port.mtu }));
    children.push(el('alias', { name: opts.alias ?? libvirtAliasFor(port.name) }));
  }
  return el('interface', { type: 'vhostuser' }, children);
}

export function libvirtInterfaceXml(port: PortInfo, opts: VifOptions = {}): string {
  return renderXml(libvirtInterfaceElement(port, opts));
}

/** <memoryBacking> that gives vhost-user the guest memory it needs (shared, fd-backed). */
export function libvirtMemoryBackingElement(kind: 'memfd' | 'hugepages' | 'file' = 'memfd'): XmlElement {
  const kids: XmlNode[] = [];
  if (kind === 'hugepages') kids.push(el('hugepages'));
  else kids.push(el('source', { type: kind }));
  kids.push(el('access', { mode: 'shared' }));
  return el('memoryBacking', {}, kids);
}

export interface QemuOverrideProperty {
  name: string;
  type: 'string' | 'signed' | 'unsigned' | 'bool' | 'remove';
  value?: string | number;
}

/**
 * <qemu:override> (libvirt >= 8.2) setting -device properties of devices by alias; needs
 * xmlns:qemu on <domain>. libvirt applies it when the domain starts, not to hot-plugged devices.
 */
export function libvirtOverrideElement(devices: { alias: string; props: QemuOverrideProperty[] }[]): XmlElement {
  return el(
    'qemu:override',
    {},
    devices.map((d) =>
      el('qemu:device', { alias: d.alias }, [el('qemu:frontend', {}, d.props.map((p) => el('qemu:property', { name: p.name, type: p.type, value: p.value })))]),
    ),
  );
}

/** The -device properties a port needs beyond what libvirt writes: vectors=0 (QEMU 7.2 TCG) and host_mtu (MTU != 1500). */
export function libvirtOverrideProps(port: PortInfo, opts: VifOptions = {}): QemuOverrideProperty[] {
  const props: QemuOverrideProperty[] = [];
  if (needsTcgMsixWorkaround(opts)) props.push({ name: 'vectors', type: 'unsigned', value: 0 });
  if (port.mtu !== 1500 && !opts.libvirtMtu) props.push({ name: 'host_mtu', type: 'unsigned', value: port.mtu });
  return props;
}

/** <qemu:override> giving the devices vectors=0 (the QEMU 7.2 TCG MSI-X workaround). */
export function libvirtTcgOverrideElement(aliases: string[]): XmlElement {
  return libvirtOverrideElement(aliases.map((alias) => ({ alias, props: [{ name: 'vectors', type: 'unsigned', value: 0 }] })));
}

export const LIBVIRT_QEMU_NS = 'http://libvirt.org/schemas/domain/qemu/1.0';

/** How a domain's memory is (or is not) shareable with a vhost-user backend. */
export interface SharedMemoryCheck {
  ok: boolean;
  via?: string;
  problem?: string;
}

/**
 * Does a libvirt domain give vhost-user shared, fd-backed guest memory? Accepts
 * <memoryBacking><access mode='shared'/> (with memfd, file, hugepages or libvirt's default file backing),
 * or NUMA cells all carrying memAccess='shared' (how Nova does it for hugepage flavors).
 */
export function domainSharedMemory(domainXml: string): SharedMemoryCheck {
  const dom = parseXmlElement(domainXml);
  if (dom.name !== 'domain') return { ok: false, problem: `root element is <${dom.name}>, not <domain>` };
  const mb = firstChild(dom, 'memoryBacking');
  const globalShared = attr(firstChild(mb, 'access') ?? el('x'), 'mode') === 'shared';
  const cells = childElements(firstChild(dom, 'cpu', 'numa') ?? el('x'), 'cell');
  const privateCells = cells.filter((c) => attr(c, 'memAccess') === 'private');
  const sharedCells = cells.filter((c) => attr(c, 'memAccess') === 'shared');
  const source = attr(firstChild(mb, 'source') ?? el('x'), 'type');
  const huge = firstChild(mb, 'hugepages') !== undefined;
  const backing = huge ? 'hugepages' : source ?? 'default';
  if (globalShared && privateCells.length === 0) return { ok: true, via: `memoryBacking access=shared (${backing})` };
  if (cells.length > 0 && sharedCells.length === cells.length) return { ok: true, via: `NUMA memAccess=shared (${backing})` };
  if (privateCells.length > 0) return { ok: false, problem: `NUMA cell(s) ${privateCells.map((c) => attr(c, 'id')).join(',')} have memAccess='private'` };
  if (huge || source) return { ok: false, problem: `guest memory is ${backing}-backed but private; add <access mode='shared'/>` };
  return { ok: false, problem: 'guest memory is private anonymous memory; vhost-user needs shared, fd-backed memory' };
}

function libvirtNotes(port: PortInfo, opts: VifOptions): XmlNode[] {
  const notes: XmlNode[] = [];
  let memOk = false;
  if (opts.domainXml !== undefined) {
    const chk = domainSharedMemory(opts.domainXml);
    memOk = chk.ok;
    if (!chk.ok) notes.push({ comment: `This domain cannot use vhost-user yet: ${chk.problem}.` });
  }
  if (!memOk) {
    const kind = opts.memory?.backend ?? 'memfd';
    notes.push({
      comment: [
        'vhost-user needs guest memory the switch can map: put this in <domain> (memfd, libvirt >= 4.10)',
        renderXml(libvirtMemoryBackingElement(kind)),
        'or, with hugepages (Nova flavors with hw:mem_page_size do this):',
        renderXml(libvirtMemoryBackingElement('hugepages')),
        'or mark every NUMA cell shared: <cpu><numa><cell id=\'0\' cpus=\'0-1\' memory=\'1048576\' unit=\'KiB\' memAccess=\'shared\'/></numa></cpu>',
      ].join('\n'),
    });
  }
  const alias = opts.alias ?? libvirtAliasFor(port.name);
  const props = libvirtOverrideProps(port, opts);
  if (props.length) {
    const why = [
      needsTcgMsixWorkaround(opts) ? 'QEMU 7.2 without KVM (TCG): this NIC needs vectors=0 (no MSI-X).' : '',
      props.some((p) => p.name === 'host_mtu') ? `MTU ${port.mtu}: the guest learns it from host_mtu (libvirt's <mtu> would make libvirt look for an Open vSwitch port and fail).` : '',
    ].filter(Boolean);
    notes.push({
      comment: [
        ...why,
        `In <domain xmlns:qemu='${LIBVIRT_QEMU_NS}'>, after <devices>:`,
        renderXml(libvirtOverrideElement([{ alias, props }])),
        ...(needsTcgMsixWorkaround(opts)
          ? [
              'libvirt applies overrides only at domain start, not to hot-plugged NICs. For hot-plugged single-queue',
              'NICs add this to the domain (libvirt sets vectors itself on multiqueue NICs, which -global cannot change):',
              renderXml(libvirtVectorsGlobalElement()).replace(/\n\s*/g, ''),
              ...(props.some((p) => p.name === 'host_mtu') ? ['and set the MTU inside the guest (ip link set dev eth0 mtu N).'] : []),
            ]
          : ['libvirt applies overrides only at domain start, not to hot-plugged NICs: set a hot-plugged NIC\'s MTU inside the guest (ip link set dev eth0 mtu N).']),
      ].join('\n'),
    });
  }
  if (!needsTcgMsixWorkaround(opts) && opts.accel === undefined) {
    notes.push({ comment: 'If the guest runs on QEMU 7.2 without KVM (TCG), its NIC needs vectors=0: ask vhost-switch vif for this port with accel tcg to get the override.' });
  }
  if (qemuSocketMode(port.mode) === 'server') {
    notes.push({ comment: 'QEMU is the socket server here: at domain start it waits for the switch to connect before running the guest; a hot-plugged NIC does not wait.' });
  }
  return notes;
}

// ---------------------------------------------------------------------------------------------
// QEMU

/** Shell-quote one argument when it needs it. */
export function shellQuote(a: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`;
}

/** In a QEMU option value, a ',' is written ',,'. */
function qemuOptValue(v: string): string {
  return v.replace(/,/g, ',,');
}

export function qemuMemoryArgs(mem: GuestMemory = {}, id = 'mem0'): string[] {
  const size = mem.size ?? '1G';
  if (!/^\d+[KMGT]?$/i.test(size)) throw new Error(`memory size ${JSON.stringify(size)} is not QEMU size syntax (e.g. 1G, 512M)`);
  const backend = mem.backend ?? 'memfd';
  let obj: string;
  if (backend === 'memfd') obj = `memory-backend-memfd,id=${id},size=${size},share=on`;
  else {
    const p = mem.path ?? (backend === 'hugepages' ? '/dev/hugepages' : '/dev/shm');
    obj = `memory-backend-file,id=${id},size=${size},mem-path=${qemuOptValue(p)},share=on`;
  }
  return ['-m', size, '-object', obj, '-numa', `node,memdev=${id}`];
}

/** The -chardev/-netdev/-device arguments for one port. */
export function qemuNicArgs(port: PortInfo, opts: VifOptions = {}): string[] {
  validatePort(port);
  const chr = qemuIdFor('chr', port.name);
  const net = qemuIdFor('net', port.name);
  const dev = qemuIdFor('nic', port.name);
  let chardev = `socket,id=${chr},path=${qemuOptValue(port.socket)}`;
  if (qemuSocketMode(port.mode) === 'server') chardev += ',server=on,wait=off';
  else {
    const secs = opts.reconnectSeconds ?? 1;
    const v = parseVersion(opts.qemuVersion);
    // 'reconnect' (seconds) was deprecated in QEMU 9.2 in favour of 'reconnect-ms'.
    chardev += v && versionAtLeast(v, 9, 2) ? `,reconnect-ms=${secs * 1000}` : `,reconnect=${secs}`;
  }
  let netdev = `vhost-user,id=${net},chardev=${chr}`;
  if (port.queues > 1) netdev += `,queues=${port.queues}`;
  const d: string[] = [`virtio-net-pci`, `netdev=${net}`, `id=${dev}`, `mac=${portMac(port)}`, `host_mtu=${port.mtu}`];
  if (port.rxQueueSize) d.push(`rx_queue_size=${port.rxQueueSize}`);
  if (port.txQueueSize) d.push(`tx_queue_size=${port.txQueueSize}`);
  if (port.queues > 1) d.push('mq=on');
  if (needsTcgMsixWorkaround(opts)) d.push('vectors=0');
  else if (port.queues > 1) d.push(`vectors=${2 * port.queues + 2}`);
  return ['-chardev', chardev, '-netdev', netdev, '-device', d.join(',')];
}

export function qemuArgs(port: PortInfo, opts: VifOptions = {}): string[] {
  const mem = opts.memoryArgs === false ? [] : qemuMemoryArgs(opts.memory);
  return [...mem, ...qemuNicArgs(port, opts)];
}

/** Arguments as shell text, one option and its value per line. */
export function formatArgLines(args: string[]): string {
  const lines: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a.startsWith('-') && i + 1 < args.length && !args[i + 1]!.startsWith('-')) {
      lines.push(`${a} ${shellQuote(args[i + 1]!)}`);
      i++;
    } else lines.push(shellQuote(a));
  }
  return lines.join(' \\\n');
}

function qemuNotes(port: PortInfo, opts: VifOptions): string[] {
  const n: string[] = [];
  if (qemuSocketMode(port.mode) === 'client') {
    n.push(`The switch listens on ${port.socket}; QEMU connects (at start-up it waits, retrying, until the socket accepts) and reconnects every ${opts.reconnectSeconds ?? 1} s, so a restarted switch is picked up again.`);
  } else {
    n.push(`QEMU listens on ${port.socket}; at start-up it waits until the switch connects (a vhost-user netdev does so even with wait=off), and the switch reconnects whenever QEMU restarts.`);
  }
  if (opts.memoryArgs !== false) n.push('Guest memory must be shared and fd-backed; the -m size and the memory backend size must match. Add these memory arguments once per guest.');
  if (needsTcgMsixWorkaround(opts)) n.push('QEMU 7.2 without KVM (TCG): vectors=0 turns MSI-X off for this NIC (the known 7.2 TCG MSI-X crash).');
  else if (opts.accel === undefined) n.push('On QEMU 7.2 without KVM (TCG) add vectors=0 to -device (or pass --accel tcg).');
  return n;
}

// ---------------------------------------------------------------------------------------------
// OpenStack

function novaInput(port: PortInfo, opts: VifOptions) {
  return { mode: port.mode, socket: port.socket, portSecurity: port.portSecurity, mac: portMac(port), mtu: port.mtu, neutronPortId: opts.neutronPortId };
}

export function novaDocument(port: PortInfo, opts: VifOptions = {}): Record<string, unknown> {
  validatePort(port);
  const input = novaInput(port, opts);
  return {
    neutron_port_binding: neutronBinding(port, opts.hostId),
    nova_network_model_vif: novaNetworkModelVif(input),
    os_vif: osVifObject(input),
  };
}

// ---------------------------------------------------------------------------------------------
// The entry point the CLI calls.

export interface VifRendering {
  /** The document itself (XML, shell arguments, JSON). */
  output: string;
  /** Human notes that go with it (also appended as comments to libvirt/qemu output unless notes:false). */
  notes: string[];
}

export function describeVif(port: PortInfo, format: VifFormat, opts: VifOptions = {}): VifRendering {
  switch (format) {
    case 'libvirt': {
      const xml = libvirtInterfaceXml(port, opts);
      const notes = opts.style === 'nova' ? [] : libvirtNotes(port, opts);
      return { output: xml, notes: notes.map((c) => ('comment' in c ? c.comment : '')) };
    }
    case 'qemu':
      return { output: formatArgLines(qemuArgs(port, opts)), notes: qemuNotes(port, opts) };
    case 'nova':
      return { output: JSON.stringify(novaDocument(port, opts), null, 2), notes: [] };
    case 'json': {
      validatePort(port);
      const alias = opts.alias ?? libvirtAliasFor(port.name);
      const doc = {
        port: { ...port, mac: portMac(port) },
        qemu_socket_mode: qemuSocketMode(port.mode),
        libvirt: {
          interface: libvirtInterfaceXml(port, { ...opts, style: 'vhost-switch' }),
          memory_backing: renderXml(libvirtMemoryBackingElement(opts.memory?.backend ?? 'memfd')),
          qemu_override: libvirtOverrideProps(port, opts).length ? renderXml(libvirtOverrideElement([{ alias, props: libvirtOverrideProps(port, opts) }])) : null,
          notes: libvirtNotes(port, { ...opts, style: 'vhost-switch' }).map((c) => ('comment' in c ? c.comment : '')),
        },
        qemu: { args: qemuArgs(port, opts), notes: qemuNotes(port, opts) },
        ...novaDocument(port, opts),
      };
      return { output: JSON.stringify(doc, null, 2), notes: [] };
    }
    default:
      throw new Error(`unknown format ${JSON.stringify(format)}; use ${VIF_FORMATS.join(', ')}`);
  }
}

/**
 * The text `vhost-switch vif PORT --format F` prints. libvirt output stays one XML document
 * (notes are comments after the element, so the text can go straight to `virsh attach-device`);
 * qemu output is shell comments followed by the arguments; nova/json are JSON.
 */
export function formatVif(port: PortInfo, format: VifFormat, opts: VifOptions = {}): string {
  const r = describeVif(port, format, opts);
  if (opts.notes === false || r.notes.length === 0) return r.output + '\n';
  if (format === 'libvirt') return [r.output, ...r.notes.map((c) => renderXml({ comment: c }))].join('\n') + '\n';
  if (format === 'qemu') {
    const comments = r.notes.flatMap((n) => n.split('\n')).map((l) => `# ${l}`);
    return [...comments, r.output].join('\n') + '\n';
  }
  return r.output + '\n';
}

// ---------------------------------------------------------------------------------------------
// A whole domain, for tests and for users starting from nothing.

export interface LibvirtDomainSpec {
  name: string;
  memoryMiB: number;
  vcpus?: number;
  ports: PortInfo[];
  accel?: 'kvm' | 'tcg';
  qemuVersion?: string;
  memoryBacking?: 'memfd' | 'hugepages';
  emulator?: string;
  kernel?: string;
  initrd?: string;
  cmdline?: string;
  /** Serial console to this file (for tests to read). */
  serialLog?: string;
  uuid?: string;
  /**
   * Ready for NICs hot-plugged with `virsh attach-device` (off by default): <features><acpi/></features>, without
   * which QEMU's i440fx 'pc' machine refuses device_add ("Bus 'pci.0' does not support hotplugging"), and, when
   * the QEMU 7.2 TCG workaround applies, the -global virtio-net-pci.vectors=0 <qemu:commandline> (a hot-plugged
   * NIC gets no <qemu:override>, and QEMU 7.2 TCG crashes when it starts with MSI-X).
   */
  hotplug?: boolean;
}

/** <qemu:commandline> making vectors=0 the default of every virtio-net-pci device, hot-plugged ones included. */
export function libvirtVectorsGlobalElement(): XmlElement {
  return el('qemu:commandline', {}, [el('qemu:arg', { value: '-global' }), el('qemu:arg', { value: 'virtio-net-pci.vectors=0' })]);
}

export function libvirtDomainXml(spec: LibvirtDomainSpec): string {
  const vcpus = spec.vcpus ?? 1;
  const kib = spec.memoryMiB * 1024;
  const os: XmlNode[] = [el('type', { arch: 'x86_64', machine: 'pc' }, [{ text: 'hvm' }])];
  if (spec.kernel) os.push(el('kernel', {}, [{ text: spec.kernel }]));
  if (spec.initrd) os.push(el('initrd', {}, [{ text: spec.initrd }]));
  if (spec.cmdline) os.push(el('cmdline', {}, [{ text: spec.cmdline }]));
  const devices: XmlNode[] = [];
  if (spec.emulator) devices.push(el('emulator', {}, [{ text: spec.emulator }]));
  for (const p of spec.ports) devices.push(libvirtInterfaceElement(p, { accel: spec.accel, qemuVersion: spec.qemuVersion }));
  if (spec.serialLog) {
    devices.push(el('serial', { type: 'file' }, [el('source', { path: spec.serialLog }), el('target', { port: 0 })]));
    devices.push(el('console', { type: 'file' }, [el('source', { path: spec.serialLog }), el('target', { type: 'serial', port: 0 })]));
  }
  devices.push(el('memballoon', { model: 'none' }));
  const children: XmlNode[] = [
    el('name', {}, [{ text: spec.name }]),
    ...(spec.uuid ? [el('uuid', {}, [{ text: spec.uuid }])] : []),
    el('memory', { unit: 'KiB' }, [{ text: String(kib) }]),
    el('vcpu', {}, [{ text: String(vcpus) }]),
    libvirtMemoryBackingElement(spec.memoryBacking ?? 'memfd'),
    el('os', {}, os),
    el('cpu', {}, [el('numa', {}, [el('cell', { id: 0, cpus: vcpus > 1 ? `0-${vcpus - 1}` : '0', memory: kib, unit: 'KiB', memAccess: 'shared' })])]),
    ...(spec.hotplug ? [el('features', {}, [el('acpi')])] : []),
    el('on_reboot', {}, [{ text: 'destroy' }]),
    el('devices', {}, devices),
  ];
  const overrides = spec.ports
    .map((p) => ({ alias: libvirtAliasFor(p.name), props: libvirtOverrideProps(p, spec) }))
    .filter((d) => d.props.length > 0);
  if (overrides.length) children.push(libvirtOverrideElement(overrides));
  const globalVectors = spec.hotplug === true && needsTcgMsixWorkaround(spec);
  if (globalVectors) children.push(libvirtVectorsGlobalElement());
  const attrs: Record<string, string> = { type: spec.accel === 'tcg' ? 'qemu' : 'kvm' };
  if (overrides.length || globalVectors) attrs['xmlns:qemu'] = LIBVIRT_QEMU_NS;
  return renderXml(el('domain', attrs, children)) + '\n';
}

// ---------------------------------------------------------------------------------------------
// The CLI's flags for `vhost-switch vif PORT --format F [flags]`, in one place so the CLI and the
// notes printed above (which mention --accel tcg) agree.

export const VIF_CLI_FLAGS: readonly { flag: string; value?: string; help: string }[] = [
  { flag: '--format', value: 'libvirt|qemu|nova|json', help: 'what to print (default libvirt)' },
  { flag: '--accel', value: 'kvm|tcg', help: 'how the guest runs (default: kvm when this host can open /dev/kvm, else tcg); tcg on QEMU 7.2 adds vectors=0' },
  { flag: '--qemu-version', value: 'X.Y.Z', help: 'QEMU version (reconnect vs reconnect-ms, the 7.2 TCG workaround)' },
  { flag: '--memory', value: 'SIZE', help: 'guest memory for the QEMU memory arguments (default 1G)' },
  { flag: '--memory-backend', value: 'memfd|hugepages|file', help: 'guest memory backend (default memfd)' },
  { flag: '--reconnect', value: 'SECONDS', help: 'QEMU reconnect interval when QEMU is the client (default 1)' },
  { flag: '--domain', value: 'FILE', help: 'libvirt: an existing domain XML; print the memory block only if it lacks shared memory' },
  { flag: '--style', value: 'vhost-switch|nova', help: "libvirt: 'nova' prints exactly what Nova's libvirt driver writes" },
  { flag: '--neutron-port-id', value: 'UUID', help: 'Neutron port id for nova/json output' },
  { flag: '--host-id', value: 'HOST', help: 'binding:host_id for nova/json output' },
  { flag: '--no-notes', help: 'print the document only' },
];

/** Turn parsed CLI flags (name without '--' -> value) into VifOptions; throws with the flag's name on bad input. */
export function vifOptionsFromFlags(flags: Record<string, string | boolean | undefined>, readFile?: (p: string) => string): { format: VifFormat; opts: VifOptions } {
  const known = new Set(VIF_CLI_FLAGS.map((f) => f.flag.slice(2)).concat(['notes']));
  for (const k of Object.keys(flags)) if (flags[k] !== undefined && !known.has(k)) throw new Error(`--${k}: unknown option for vif`);
  const str = (k: string): string | undefined => {
    const v = flags[k];
    if (v === undefined || v === false) return undefined;
    if (v === true) throw new Error(`--${k} needs a value`);
    return v;
  };
  const oneOf = <T extends string>(k: string, allowed: readonly T[]): T | undefined => {
    const v = str(k);
    if (v !== undefined && !allowed.includes(v as T)) throw new Error(`--${k} must be one of ${allowed.join(', ')}, not ${JSON.stringify(v)}`);
    return v as T | undefined;
  };
  const format = oneOf('format', VIF_FORMATS) ?? 'libvirt';
  const opts: VifOptions = {};
  const accel = oneOf('accel', ['kvm', 'tcg'] as const);
  if (accel) opts.accel = accel;
  const qv = str('qemu-version');
  if (qv !== undefined) {
    if (!parseVersion(qv)) throw new Error(`--qemu-version must look like 7.2.0, not ${JSON.stringify(qv)}`);
    opts.qemuVersion = qv;
  }
  const size = str('memory');
  const backend = oneOf('memory-backend', ['memfd', 'hugepages', 'file'] as const);
  if (size !== undefined || backend !== undefined) {
    if (size !== undefined && !/^\d+[KMGT]?$/i.test(size)) throw new Error(`--memory must be a QEMU size such as 1G or 512M, not ${JSON.stringify(size)}`);
    opts.memory = { ...(size !== undefined ? { size } : {}), ...(backend ? { backend } : {}) };
  }
  const rc = str('reconnect');
  if (rc !== undefined) {
    if (!/^\d+$/.test(rc) || Number(rc) < 1 || Number(rc) > 3600) throw new Error('--reconnect must be whole seconds from 1 to 3600');
    opts.reconnectSeconds = Number(rc);
  }
  const dom = str('domain');
  if (dom !== undefined) {
    if (!readFile) throw new Error('--domain needs a file reader');
    opts.domainXml = readFile(dom);
  }
  const style = oneOf('style', ['vhost-switch', 'nova'] as const);
  if (style) opts.style = style;
  const pid = str('neutron-port-id');
  if (pid !== undefined) {
    if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(pid)) throw new Error('--neutron-port-id must be a UUID');
    opts.neutronPortId = pid.toLowerCase();
  }
  const hid = str('host-id');
  if (hid !== undefined) opts.hostId = hid;
  if (flags['no-notes'] === true || flags.notes === false) opts.notes = false;
  return { format, opts };
}
