// A port as the switch model keeps it: where it came from, its endpoint, the spec it runs with, and what the API
// reports of it; and how a spec turns into the data plane's options.
import { formatRangeList, resolveSocketPath, type PortSpec } from '../config.js';
import type { NativeAddon, NativeSwitch, PortSecurityOptions, VlanOptions } from '../dataplane/native.js';
import type { EndpointOptions } from '../vhost/endpoint.js';

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

/** A running port: what VSwitch holds for each name. */
export interface Port {
  spec: PortSpec;
  id: number;
  origin: PortOrigin;
  endpoint: EndpointLike;
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

export function vlanOptions(spec: PortSpec): VlanOptions {
  return { vlan: spec.vlan, trunk: spec.vlanMode === 'trunk', ...(spec.allowedVlans ? { allowedVlans: spec.allowedVlans } : {}) };
}

export function vlanLog(spec: PortSpec): Record<string, unknown> {
  if (spec.vlanMode !== 'trunk') return { vlan: spec.vlan };
  return { vlanMode: 'trunk', nativeVlan: spec.vlan, allowedVlans: spec.allowedVlans ? formatRangeList(spec.allowedVlans) : 'all' };
}

/** What the API reports of a port: its spec, its endpoint's state, and what the data plane says of it. */
export function portInfo(dataPlane: NativeSwitch, p: Port): PortInfo {
  const info: PortInfo = { ...p.spec, socket: p.spec.socket ?? '', id: p.id, origin: p.origin, state: p.endpoint.state, protocolErrors: p.endpoint.protocolErrors ?? 0 };
  if (p.spec.type === 'nic' || p.spec.type === 'tap') {
    const { backend, xdpMode, backendNote } = dataPlane.portStats(p.id);
    if (backend) info.activeBackend = backend;
    if (xdpMode) info.xdpMode = xdpMode;
    if (backendNote) info.backendNote = backendNote;
  }
  const fe = p.endpoint.frontend;
  if (p.spec.type === 'vhost-user' && fe) {
    info.memRegions = fe.memRegions;
    info.dirtyLogging = dataPlane.logInfo(p.id).logging;
  }
  return info;
}
