// One switch port's vhost-user socket. Server mode: we listen and QEMU connects (one frontend at a time).
// Client mode: QEMU listens (-chardev socket,server=on) and we connect, retrying with exponential backoff
// while it is absent and reconnecting the same way after it goes away, so a guest reboot or a QEMU
// restart needs no action on the switch side. Each connection gets a fresh VhostUserBackend; whatever
// ends a connection, the native port is reset so the data plane never touches a dead guest's memory.
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import type { NativeAddon, NativeSwitch, FdWatcher } from '../dataplane/native.js';
import { MAX_SOCKET_PATH_BYTES } from '../host/runDir.js';
import { native as loadAddon } from '../dataplane/native.js';
import { bindBackend, VhostUserBackend, type BackendInfo } from './backend.js';
import { VhostUserChannel, type ChannelOptions } from './channel.js';
import type { VhostLog } from './log.js';

export type EndpointMode = 'server' | 'client';
export type EndpointState = 'listening' | 'connecting' | 'connected' | 'ready' | 'closed';
export type EndpointAddon = Pick<
  NativeAddon,
  'unixListen' | 'unixConnect' | 'unixAccept' | 'recvMsg' | 'sendMsg' | 'closeFd' | 'FdWatcher'
>;

export interface EndpointOptions {
  /** The data plane the port lives in. */
  native: NativeSwitch;
  /** Socket functions; native() by default. */
  addon?: EndpointAddon;
  portId: number;
  name: string;
  mode: EndpointMode;
  socketPath: string;
  queuePairs: number;
  mtu: number;
  offloads: boolean;
  /** Server mode: chmod the socket to this mode (e.g. 0o660) so an unprivileged QEMU can connect. */
  socketMode?: number;
  socketUid?: number;
  socketGid?: number;
  log: VhostLog;
  /** Client-mode backoff bounds. */
  reconnectMinMs?: number;
  reconnectMaxMs?: number;
  /** Passed to each connection's channel (timeouts, limits). */
  channel?: Omit<ChannelOptions, 'addon' | 'log'>;
  maxProtocolErrors?: number;
}

export interface FrontendInfo extends BackendInfo {
  connectedAt: string;
  messagesReceived: number;
}

interface EndpointEvents {
  state: [state: EndpointState, previous: EndpointState];
}

interface Connection {
  channel: VhostUserChannel;
  backend: VhostUserBackend;
  connectedAt: Date;
  wasReady: boolean;
}

const ACCEPT_PAUSE_MS = 500;

export class VhostUserEndpoint extends EventEmitter<EndpointEvents> {
  readonly name: string;
  readonly mode: EndpointMode;
  readonly socketPath: string;
  /** Connections accepted (server) or established (client) since start. */
  connections = 0;
  /** Server mode: connections turned away because a frontend was already attached. */
  refusedConnections = 0;

  private readonly opts: EndpointOptions;
  private readonly addon: EndpointAddon;
  private readonly log: VhostLog;
  private readonly minDelay: number;
  private readonly maxDelay: number;
  private currentState: EndpointState = 'closed';
  private started = false;
  private stopped = false;
  private conn: Connection | null = null;
  /** Protocol errors of connections that are gone; the live one's are added on read. */
  private pastErrors = 0;

  // server
  private listenFd = -1;
  private listenWatcher: FdWatcher | null = null;
  private socketIno: number | null = null;

  // client
  private retryTimer: NodeJS.Timeout | null = null;
  private retryDelay: number;
  private connectFailures = 0;

  constructor(opts: EndpointOptions) {
    super();
    this.opts = opts;
    this.name = opts.name;
    this.mode = opts.mode;
    this.socketPath = opts.socketPath;
    this.addon = opts.addon ?? loadAddon();
    this.log = opts.log;
    this.minDelay = opts.reconnectMinMs ?? 100;
    this.maxDelay = opts.reconnectMaxMs ?? 5000;
    this.retryDelay = this.minDelay;
  }

  get state(): EndpointState {
    return this.currentState;
  }

  /** Frontend protocol errors over the endpoint's life (framing errors and refused requests). */
  get protocolErrors(): number {
    const live = this.conn ? this.conn.backend.protocolErrors + this.conn.channel.protocolErrors : 0;
    return this.pastErrors + live;
  }

  /** The attached frontend's negotiated state, or null when none is connected. */
  get frontend(): FrontendInfo | null {
    if (!this.conn) return null;
    return {
      ...this.conn.backend.info(),
      connectedAt: this.conn.connectedAt.toISOString(),
      messagesReceived: this.conn.channel.messagesReceived,
    };
  }

  /** Server: listens (throws if the socket cannot be created). Client: starts connecting. */
  start(): void {
    if (this.started) throw new Error(`endpoint ${this.name} already started`);
    this.started = true;
    if (Buffer.byteLength(this.socketPath) > MAX_SOCKET_PATH_BYTES) {
      throw new Error(`socket path is longer than ${MAX_SOCKET_PATH_BYTES} bytes: ${this.socketPath}`);
    }
    if (this.mode === 'server') this.listen();
    else {
      this.setState('connecting');
      this.tryConnect();
    }
  }

  /** Stops for good: drops the frontend, stops listening/retrying, removes our socket, resets the port. */
  close(): void {
    if (this.stopped) return;
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.conn?.channel.close('endpoint closed');
    if (this.listenFd >= 0) {
      this.listenWatcher?.close();
      this.listenWatcher = null;
      this.addon.closeFd(this.listenFd);
      this.listenFd = -1;
      this.unlinkOwnSocket();
    }
    try {
      this.opts.native.resetPort(this.opts.portId);
    } catch (e) {
      this.log('warn', 'native resetPort failed on close', { error: e as Error });
    }
    this.setState('closed');
  }

  private setState(s: EndpointState): void {
    if (s === this.currentState) return;
    const prev = this.currentState;
    this.currentState = s;
    this.emit('state', s, prev);
  }

  // ---- server mode ----

  private listen(): void {
    this.removeStaleSocket();
    this.listenFd = this.addon.unixListen(this.socketPath, 4);
    try {
      if (this.opts.socketMode !== undefined) fs.chmodSync(this.socketPath, this.opts.socketMode);
      if (this.opts.socketUid !== undefined || this.opts.socketGid !== undefined) {
        fs.chownSync(this.socketPath, this.opts.socketUid ?? -1, this.opts.socketGid ?? -1);
      }
      this.socketIno = fs.statSync(this.socketPath).ino;
    } catch (e) {
      this.addon.closeFd(this.listenFd);
      this.listenFd = -1;
      fs.rmSync(this.socketPath, { force: true });
      throw e;
    }
    this.listenWatcher = new this.addon.FdWatcher(this.listenFd, (status) => this.onAcceptable(status));
    this.listenWatcher.start(true, false);
    this.log('info', 'vhost-user socket listening', { socket: this.socketPath });
    this.setState('listening');
  }

  /** A socket file left by a previous run is ours to replace; anything else at that path is not. */
  private removeStaleSocket(): void {
    let st: fs.Stats;
    try {
      st = fs.lstatSync(this.socketPath);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw e;
    }
    if (!st.isSocket()) throw new Error(`${this.socketPath} exists and is not a socket; refusing to replace it`);
    fs.unlinkSync(this.socketPath);
    this.log('info', 'removed stale vhost-user socket', { socket: this.socketPath });
  }

  private unlinkOwnSocket(): void {
    // Only if the file is still the socket we bound: an operator or a new instance may have replaced it.
    try {
      const st = fs.lstatSync(this.socketPath);
      if (st.isSocket() && st.ino === this.socketIno) fs.unlinkSync(this.socketPath);
    } catch {
      // already gone
    }
  }

  private onAcceptable(status: number): void {
    if (this.stopped) return;
    if (status < 0) {
      this.log('error', 'poll error on listening socket', { status });
      return;
    }
    for (;;) {
      let fd: number;
      try {
        fd = this.addon.unixAccept(this.listenFd);
      } catch (e) {
        // EMFILE and friends. The pending connection keeps the socket readable, so retrying at once
        // would spin; pause accepting for a moment instead.
        this.log('error', 'accept failed, pausing', { error: e as Error, retryMs: ACCEPT_PAUSE_MS });
        this.listenWatcher?.stop();
        this.retryTimer = setTimeout(() => {
          this.retryTimer = null;
          if (!this.stopped) this.listenWatcher?.start(true, false);
        }, ACCEPT_PAUSE_MS);
        return;
      }
      if (fd < 0) return;
      // A restarted QEMU reconnects as soon as the old one is dead, possibly before we have seen the
      // old connection's EOF: look at it first so the new frontend is not refused for a corpse.
      this.conn?.channel.readPending();
      if (this.conn) {
        // One frontend per port: a second QEMU on the same socket is a configuration error.
        this.refusedConnections++;
        this.log('warn', 'refused a second vhost-user frontend while one is attached', { socket: this.socketPath });
        this.addon.closeFd(fd);
        continue;
      }
      this.attach(fd);
    }
  }

  // ---- client mode ----

  private tryConnect(): void {
    this.retryTimer = null;
    if (this.stopped) return;
    let fd: number;
    try {
      fd = this.addon.unixConnect(this.socketPath);
    } catch (e) {
      this.connectFailures++;
      // The first failure is worth a line; the retries every few seconds are not.
      this.log(this.connectFailures === 1 ? 'info' : 'debug', 'vhost-user peer not available, retrying', {
        socket: this.socketPath,
        error: e as Error,
        retryMs: this.retryDelay,
      });
      this.scheduleConnect();
      return;
    }
    this.connectFailures = 0;
    this.attach(fd);
  }

  private scheduleConnect(): void {
    const delay = this.retryDelay;
    this.retryDelay = Math.min(this.retryDelay * 2, this.maxDelay);
    this.retryTimer = setTimeout(() => this.tryConnect(), delay);
  }

  // ---- connection ----

  private attach(fd: number): void {
    const channel = new VhostUserChannel(fd, { ...this.opts.channel, addon: this.addon, log: this.log });
    const backend = new VhostUserBackend({
      native: this.opts.native,
      portId: this.opts.portId,
      queuePairs: this.opts.queuePairs,
      mtu: this.opts.mtu,
      offloads: this.opts.offloads,
      log: this.log,
      maxProtocolErrors: this.opts.maxProtocolErrors,
    });
    const conn: Connection = { channel, backend, connectedAt: new Date(), wasReady: false };
    this.conn = conn;
    this.connections++;
    // bindBackend first: on close the backend resets the native port before we change state.
    bindBackend(channel, backend);
    backend.on('ready', () => {
      conn.wasReady = true;
      this.setState('ready');
    });
    backend.on('down', () => {
      if (!channel.closed) this.setState('connected');
    });
    channel.on('close', (reason) => this.onConnectionClosed(conn, reason));
    this.log('info', 'vhost-user frontend connected', { socket: this.socketPath, mode: this.mode });
    this.setState('connected');
    channel.start();
  }

  private onConnectionClosed(conn: Connection, reason: string): void {
    if (this.conn !== conn) return;
    this.conn = null;
    this.pastErrors += conn.backend.protocolErrors + conn.channel.protocolErrors;
    if (this.stopped) return;
    if (this.mode === 'server') {
      this.setState('listening');
      return;
    }
    // A connection that came up properly earns a fast reconnect; one the peer keeps dropping at once
    // keeps backing off, so a crashing peer is not hammered.
    const lived = Date.now() - conn.connectedAt.getTime();
    if (conn.wasReady || lived >= this.maxDelay) this.retryDelay = this.minDelay;
    this.log('info', 'vhost-user connection lost, reconnecting', { reason, retryMs: this.retryDelay });
    this.setState('connecting');
    this.scheduleConnect();
  }
}
