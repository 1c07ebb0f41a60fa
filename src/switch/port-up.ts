// Bringing a port up: into the data plane, with its vhost-user endpoint or its host interface, its own MAC into the
// forwarding table; and back out again when a step fails, so that a refused port leaves nothing behind.
import fs from 'node:fs/promises';
import path from 'node:path';
import { queueThreads, type PortSpec } from '../config.js';
import type { NativeAddon, NativeSwitch } from '../dataplane/native.js';
import type { Logger } from '../log.js';
import { fromNative, Unavailable } from './errors.js';
import { DEFAULT_NIC_BACKEND, securityOf, vlanLog, vlanOptions, type EndpointFactory, type EndpointLike, type Port, type PortOrigin } from './port.js';

export interface PortUpContext {
  native: NativeAddon;
  dataPlane: NativeSwitch;
  log: Logger;
  endpointFactory: EndpointFactory;
}

/**
 * A vhost-user port whose spec has been checked (name, socket, owner ids): up, its socket open. `undoDir` removes
 * the socket directory made for it, for a caller that takes the port down again.
 */
export async function vhostUserPortUp(
  ctx: PortUpContext,
  spec: PortSpec & { socket: string },
  origin: PortOrigin,
  ids: { uid?: number; gid?: number },
): Promise<{ port: Port; undoDir: () => Promise<unknown> }> {
  // A server socket's directory is created if missing (inside an allowed directory, as the caller checked), and
  // removed again if the port does not come up: a refused request leaves nothing behind.
  const madeDir = spec.mode === 'server' ? await fs.mkdir(path.dirname(spec.socket), { recursive: true, mode: 0o755 }) : undefined;
  const undoDir = () => (madeDir ? fs.rm(madeDir, { recursive: true, force: true }) : Promise.resolve());

  let id: number;
  try {
    id = ctx.dataPlane.addPort({ name: spec.name, ...vlanOptions(spec), queuePairs: spec.queues, mtu: spec.mtu, security: securityOf(spec), queueThreads: queueThreads(spec) });
  } catch (err) {
    await undoDir();
    throw fromNative(err, undefined, 'data plane refused the port');
  }
  const log = ctx.log.child({ port: spec.name });
  let endpoint: EndpointLike | undefined;
  try {
    endpoint = ctx.endpointFactory({
      addon: ctx.native,
      dataPlane: ctx.dataPlane,
      portId: id,
      name: spec.name,
      mode: spec.mode,
      socketPath: spec.socket,
      queuePairs: spec.queues,
      mtu: spec.mtu,
      offloads: spec.offloads,
      socketMode: spec.mode === 'server' ? spec.socketMode : undefined,
      socketUid: ids.uid,
      socketGid: ids.gid,
      log: (level, msg, fields) => log[level](msg, fields),
    });
    endpoint.on('state', (state, previous) => log.info('port state', { state, previous }));
    await endpoint.start();
    if (spec.mac) ctx.dataPlane.fdbAdd(spec.mac, spec.vlan, id);
  } catch (err) {
    await Promise.resolve(endpoint?.close()).catch(() => {});
    ctx.dataPlane.removePort(id);
    await undoDir();
    throw new Unavailable('socket', `cannot open ${spec.socket}: ${(err as Error).message}`);
  }
  log.info('port added', { id, origin, mode: spec.mode, socket: spec.socket, queues: spec.queues, ...vlanLog(spec), mtu: spec.mtu, portSecurity: spec.portSecurity });
  return { port: { spec, id, origin, endpoint }, undoDir };
}

/**
 * A port on a host interface (nic: AF_PACKET or AF_XDP; tap: a device we create): no socket, no frontend; it is up
 * as soon as the data plane has opened the interface.
 */
export function hostPortUp(ctx: PortUpContext, spec: PortSpec, origin: PortOrigin): Port {
  let id: number;
  try {
    id = ctx.dataPlane.addNicPort({
      name: spec.name, kind: spec.type === 'tap' ? 'tap' : 'nic', iface: spec.iface!, queues: spec.queues,
      ...vlanOptions(spec), mtu: spec.mtu, security: securityOf(spec), queueThreads: queueThreads(spec),
      ...(spec.type === 'nic' ? { backend: spec.backend ?? DEFAULT_NIC_BACKEND } : {}),
    });
  } catch (err) {
    throw fromNative(err, 'iface');
  }
  const endpoint: EndpointLike = { state: 'ready', start() {}, close() {}, on: () => endpoint };
  if (spec.mac) ctx.dataPlane.fdbAdd(spec.mac, spec.vlan, id);
  const { backend, xdpMode, backendNote } = ctx.dataPlane.portStats(id);
  const plog = ctx.log.child({ port: spec.name });
  // backend auto that could not have AF_XDP says why (the port works, over AF_PACKET).
  if (backendNote) plog.info('AF_XDP not used, AF_PACKET instead', { iface: spec.iface, reason: backendNote });
  plog.info('port added', { id, origin, type: spec.type, iface: spec.iface, queues: spec.queues, ...vlanLog(spec), backend, xdpMode, portSecurity: spec.portSecurity });
  return { spec, id, origin, endpoint };
}
