// The driver side of vhost-user, as QEMU would speak it: used by our traffic generator to attach to the
// switch, and by tests that play a correct or a hostile frontend. vhost-user has no sequence numbers:
// replies come back in request order, so pending requests are a FIFO and a reply that does not match the
// head is a protocol error.
import { EventEmitter } from 'node:events';
import type { MemRegion, NativeAddon, VringAddr } from '../dataplane/native.js';
import { native } from '../dataplane/native.js';
import { VhostUserChannel, type ChannelOptions, type SocketAddon, type VhostUserMessage } from './channel.js';
import { hasBit, VHOST_USER_F_PROTOCOL_FEATURES, VHOST_USER_PROTOCOL_F_MQ, VHOST_USER_PROTOCOL_F_REPLY_ACK } from './features.js';
import { silentLog, type VhostLog } from './log.js';
import * as P from './protocol.js';

export interface FrontendOptions {
  /** How long a request waits for its reply (or ack) before it is rejected. */
  timeoutMs?: number;
  /** A timed-out reply could still arrive and be taken for the next one's, so by default we hang up. */
  closeOnTimeout?: boolean;
  log?: VhostLog;
}

interface Waiter {
  request: number;
  resolve: (payload: Buffer) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

interface FrontendEvents {
  close: [reason: string];
  /** A message nobody waited for, or one that did not match the pending request. */
  unexpected: [VhostUserMessage];
}

export interface Negotiated {
  features: bigint;
  protocolFeatures: bigint;
  queueNum: number;
}

export class VhostUserFrontend extends EventEmitter<FrontendEvents> {
  readonly channel: VhostUserChannel;
  /** Set NEED_REPLY on requests without a reply body and wait for the ack (needs REPLY_ACK negotiated). */
  replyAck = false;
  unexpectedReplies = 0;

  private readonly timeoutMs: number;
  private readonly closeOnTimeout: boolean;
  private readonly log: VhostLog;
  private readonly waiters: Waiter[] = [];
  private closeEmitted = false;

  constructor(channel: VhostUserChannel, opts: FrontendOptions = {}) {
    super();
    this.channel = channel;
    this.timeoutMs = opts.timeoutMs ?? 5000;
    this.closeOnTimeout = opts.closeOnTimeout ?? true;
    this.log = opts.log ?? silentLog;
    channel.on('message', (m) => this.onMessage(m));
    channel.on('close', (reason) => this.onClose(reason));
    channel.start();
  }

  /** Connects to a backend listening on socketPath. */
  static connect(
    socketPath: string,
    opts: FrontendOptions & { addon?: Pick<NativeAddon, 'unixConnect'> & SocketAddon; channel?: ChannelOptions } = {},
  ): VhostUserFrontend {
    const addon = opts.addon ?? native();
    const fd = addon.unixConnect(socketPath);
    return new VhostUserFrontend(new VhostUserChannel(fd, { addon, log: opts.log, ...opts.channel }), opts);
  }

  get closed(): boolean {
    return this.channel.closed;
  }

  close(reason = 'frontend closed'): void {
    this.channel.close(reason);
  }

  // ---- raw access (hostile tests) ----

  /** Sends any message as is; nothing waits for a reply. */
  send(request: number, flags: number, payload: Buffer = Buffer.alloc(0), fds: number[] = []): boolean {
    return this.channel.send(request, flags, payload, fds);
  }

  /** Sends a request and resolves with the reply's payload (the next message from the backend). */
  call(request: number, payload: Buffer = Buffer.alloc(0), fds: number[] = [], flags = P.VHOST_USER_VERSION): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      if (this.closed) {
        reject(new Error(`${P.requestName(request)}: connection closed`));
        return;
      }
      const timer = setTimeout(() => this.onTimeout(waiter), this.timeoutMs);
      const waiter: Waiter = { request, resolve, reject, timer };
      this.waiters.push(waiter);
      if (!this.channel.send(request, flags, payload, fds)) this.onClose(this.channel.closeReason ?? 'closed');
    });
  }

  /** A request without a reply body: acked when REPLY_ACK is on, otherwise done once sent. */
  async command(request: number, payload: Buffer = Buffer.alloc(0), fds: number[] = []): Promise<void> {
    if (!this.replyAck) {
      if (!this.send(request, P.VHOST_USER_VERSION, payload, fds)) {
        throw new Error(`${P.requestName(request)}: connection closed`);
      }
      return;
    }
    const reply = await this.call(request, payload, fds, P.VHOST_USER_VERSION | P.VHOST_USER_NEED_REPLY_MASK);
    const status = P.decodeU64(reply, request);
    if (status !== 0n) throw new Error(`${P.requestName(request)} refused by the backend (status ${status})`);
  }

  // ---- the vhost-user requests ----

  async getFeatures(): Promise<bigint> {
    return P.decodeU64(await this.call(P.VHOST_USER_GET_FEATURES), P.VHOST_USER_GET_FEATURES);
  }

  setFeatures(features: bigint): Promise<void> {
    return this.command(P.VHOST_USER_SET_FEATURES, P.encodeU64(features));
  }

  async getProtocolFeatures(): Promise<bigint> {
    return P.decodeU64(await this.call(P.VHOST_USER_GET_PROTOCOL_FEATURES), P.VHOST_USER_GET_PROTOCOL_FEATURES);
  }

  /** Also switches replyAck on when REPLY_ACK is among the bits, as QEMU does. */
  async setProtocolFeatures(features: bigint): Promise<void> {
    await this.command(P.VHOST_USER_SET_PROTOCOL_FEATURES, P.encodeU64(features));
    this.replyAck = hasBit(features, VHOST_USER_PROTOCOL_F_REPLY_ACK);
  }

  setOwner(): Promise<void> {
    return this.command(P.VHOST_USER_SET_OWNER);
  }

  resetOwner(): Promise<void> {
    return this.command(P.VHOST_USER_RESET_OWNER);
  }

  async getQueueNum(): Promise<number> {
    return Number(P.decodeU64(await this.call(P.VHOST_USER_GET_QUEUE_NUM), P.VHOST_USER_GET_QUEUE_NUM));
  }

  /** One fd per region, in order; the fds stay the caller's (the kernel passes duplicates). */
  setMemTable(regions: MemRegion[]): Promise<void> {
    return this.command(P.VHOST_USER_SET_MEM_TABLE, P.encodeMemoryTable(regions), regions.map((r) => r.fd));
  }

  setVringNum(index: number, num: number): Promise<void> {
    return this.command(P.VHOST_USER_SET_VRING_NUM, P.encodeVringState({ index, num }));
  }

  setVringAddr(index: number, addr: VringAddr): Promise<void> {
    return this.command(P.VHOST_USER_SET_VRING_ADDR, P.encodeVringAddr({ index, ...addr }));
  }

  setVringBase(index: number, base: number): Promise<void> {
    return this.command(P.VHOST_USER_SET_VRING_BASE, P.encodeVringState({ index, num: base }));
  }

  /** Stops the ring; resolves with the next avail index the backend would have processed. */
  async getVringBase(index: number): Promise<number> {
    const reply = await this.call(P.VHOST_USER_GET_VRING_BASE, P.encodeVringState({ index, num: 0 }));
    const s = P.decodeVringState(reply, P.VHOST_USER_GET_VRING_BASE);
    if (s.index !== index) {
      throw new P.ProtocolError('UNEXPECTED_REPLY', `reply for ring ${s.index}, asked for ${index}`, P.VHOST_USER_GET_VRING_BASE);
    }
    return s.num;
  }

  /** fd null: VHOST_USER_VRING_NOFD_MASK (the backend polls the ring). Starts the ring. */
  setVringKick(index: number, fd: number | null): Promise<void> {
    return this.vringFd(P.VHOST_USER_SET_VRING_KICK, index, fd);
  }

  /** fd null: no interrupts, the driver polls. */
  setVringCall(index: number, fd: number | null): Promise<void> {
    return this.vringFd(P.VHOST_USER_SET_VRING_CALL, index, fd);
  }

  setVringErr(index: number, fd: number | null): Promise<void> {
    return this.vringFd(P.VHOST_USER_SET_VRING_ERR, index, fd);
  }

  setVringEnable(index: number, enable: boolean): Promise<void> {
    return this.command(P.VHOST_USER_SET_VRING_ENABLE, P.encodeVringState({ index, num: enable ? 1 : 0 }));
  }

  /**
   * SET_LOG_BASE with LOG_SHMFD, as QEMU sends it when migration starts: the log's size and offset in fd (null:
   * send none). Resolves with the backend's status (0: mapped); the fd stays the caller's.
   */
  async setLogBase(size: bigint, offset: bigint, fd: number | null): Promise<bigint> {
    const reply = await this.call(P.VHOST_USER_SET_LOG_BASE, P.encodeLog({ size, offset }), fd === null ? [] : [fd]);
    return P.decodeU64(reply, P.VHOST_USER_SET_LOG_BASE);
  }

  sendRarp(mac: string): Promise<void> {
    return this.command(P.VHOST_USER_SEND_RARP, P.encodeRarpMac(mac));
  }

  netSetMtu(mtu: number): Promise<void> {
    return this.command(P.VHOST_USER_NET_SET_MTU, P.encodeU64(BigInt(mtu)));
  }

  /**
   * The feature part of QEMU's start-up sequence: SET_OWNER, GET_FEATURES, then (if offered)
   * GET/SET_PROTOCOL_FEATURES and GET_QUEUE_NUM, then SET_FEATURES. `want` masks are intersected with
   * what the backend offers.
   */
  async negotiate(want: { features?: bigint; protocolFeatures?: bigint } = {}): Promise<Negotiated> {
    await this.setOwner();
    const offered = await this.getFeatures();
    let protocolFeatures = 0n;
    let queueNum = 1;
    if (hasBit(offered, VHOST_USER_F_PROTOCOL_FEATURES)) {
      const offeredProto = await this.getProtocolFeatures();
      protocolFeatures = offeredProto & (want.protocolFeatures ?? offeredProto);
      await this.setProtocolFeatures(protocolFeatures);
      if (hasBit(protocolFeatures, VHOST_USER_PROTOCOL_F_MQ)) queueNum = await this.getQueueNum();
    }
    const features = offered & (want.features ?? offered);
    await this.setFeatures(features);
    return { features, protocolFeatures, queueNum };
  }

  private vringFd(request: number, index: number, fd: number | null): Promise<void> {
    return this.command(request, P.encodeVringFd({ index, noFd: fd === null }), fd === null ? [] : [fd]);
  }

  private onMessage(m: VhostUserMessage): void {
    const w = this.waiters[0];
    if (!w || !(m.flags & P.VHOST_USER_REPLY_MASK) || m.request !== w.request) {
      this.unexpectedReplies++;
      this.log('warn', 'vhost-user frontend: unexpected message', {
        request: P.requestName(m.request),
        waitingFor: w ? P.requestName(w.request) : null,
      });
      if (this.listenerCount('unexpected') > 0) this.emit('unexpected', m);
      if (w) this.settle(w, new P.ProtocolError('UNEXPECTED_REPLY', `got ${P.requestName(m.request)} flags 0x${m.flags.toString(16)}`, w.request));
      return;
    }
    this.settle(w, m.payload);
  }

  private settle(w: Waiter, result: Buffer | Error): void {
    const i = this.waiters.indexOf(w);
    if (i < 0) return;
    this.waiters.splice(i, 1);
    clearTimeout(w.timer);
    if (result instanceof Error) w.reject(result);
    else w.resolve(result);
  }

  private onTimeout(w: Waiter): void {
    this.settle(w, new P.ProtocolError('TIMEOUT', `no reply after ${this.timeoutMs} ms`, w.request));
    if (this.closeOnTimeout) this.close(`${P.requestName(w.request)}: reply timeout`);
  }

  private onClose(reason: string): void {
    for (const w of [...this.waiters]) this.settle(w, new Error(`${P.requestName(w.request)}: connection closed (${reason})`));
    if (this.closeEmitted) return;
    this.closeEmitted = true;
    this.emit('close', reason);
  }
}
