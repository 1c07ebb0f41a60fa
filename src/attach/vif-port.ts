// The port as a guest attaches to it, and the rules every rendering of it shares: what a valid port is, its MAC,
// the names libvirt and QEMU give its devices, and which QEMU versions need what.
//
// Socket roles. PortInfo.mode is the SWITCH's role. libvirt's <source mode>, QEMU's chardev and
// Neutron's vhostuser_mode all describe QEMU's role, which is the opposite:
//   switch 'server' (it listens)  -> libvirt mode='client', QEMU chardev without server=on, plus
//                                    reconnect so a restarted switch is picked up again;
//   switch 'client' (it connects) -> libvirt mode='server', QEMU chardev server=on,wait=off.
import { createHash } from 'node:crypto';
import type { SocketMode } from './neutron.js';

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
/** QEMU's size syntax (-m, memory backends): a number with an optional K, M, G or T. */
export const QEMU_SIZE_RE = /^\d+[KMGT]?$/i;

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
