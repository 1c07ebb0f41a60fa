// A vhost-user message channel over one connected AF_UNIX stream socket. Framing: exactly the 12-byte
// header first (the frontend's fds ride on the header's bytes), then exactly `size` payload bytes. The
// socket is non-blocking and driven by a libuv poll watcher, so a slow or hostile peer can cut a message
// anywhere without blocking the event loop: we keep what arrived and wait for the next readable event.
//
// Fd ownership: fds received with a message belong to the channel until a 'message' listener takes them
// with takeFds() (or by splicing them out of msg.fds) during the emit; whatever is left is closed right
// after, so a handler that ignores a message can never leak its fds.
import { EventEmitter } from 'node:events';
import type { FdWatcher, NativeAddon } from '../dataplane/native.js';
import { native } from '../dataplane/native.js';
import {
  ProtocolError,
  VHOST_USER_HDR_SIZE,
  VHOST_USER_MAX_PAYLOAD,
  decodeHeader,
  encodeMessage,
  requestName,
  type VhostUserHeader,
} from './protocol.js';
import { silentLog, type VhostLog } from './log.js';

export type SocketAddon = Pick<NativeAddon, 'recvMsg' | 'sendMsg' | 'closeFd' | 'FdWatcher'>;

export interface VhostUserMessage {
  request: number;
  flags: number;
  payload: Buffer;
  /** Received fds, in order. Closed by the channel after the 'message' emit unless taken. */
  fds: number[];
}

/** Takes ownership of a message's fds: the channel will no longer close them. */
export function takeFds(msg: VhostUserMessage): number[] {
  return msg.fds.splice(0);
}

export interface ChannelOptions {
  /** The socket functions; native() by default (tests may wrap them). */
  addon?: SocketAddon;
  maxPayload?: number;
  /** A message cut mid-way for this long closes the connection (a stalled peer must not pin state). */
  messageTimeoutMs?: number;
  /** Messages handled per readable event before yielding to the event loop (a flood must not starve it). */
  messagesPerEvent?: number;
  /** Bytes we buffer for a peer that does not read its replies before giving up on it. */
  maxSendQueueBytes?: number;
  /** At most this many fds per message; vhost-user needs 8 (SET_MEM_TABLE). */
  maxFdsPerMessage?: number;
  log?: VhostLog;
}

interface ChannelEvents {
  message: [VhostUserMessage];
  close: [reason: string];
  'protocol-error': [ProtocolError];
}

interface Pending {
  data: Buffer;
  fds: number[];
}

const EVENT_READABLE = 1;
const EVENT_WRITABLE = 2;

export class VhostUserChannel extends EventEmitter<ChannelEvents> {
  readonly fd: number;
  messagesReceived = 0;
  messagesSent = 0;
  /** Framing errors (bad header, oversized payload, too many fds, timeouts); each one closes the channel. */
  protocolErrors = 0;

  private readonly addon: SocketAddon;
  private readonly maxPayload: number;
  private readonly messageTimeoutMs: number;
  private readonly messagesPerEvent: number;
  private readonly maxSendQueueBytes: number;
  private readonly maxFdsPerMessage: number;
  private readonly log: VhostLog;

  private watcher: FdWatcher | null = null;
  private writableWanted = false;
  private closedReason: string | null = null;

  // Read side: the message being assembled.
  private readonly headerBuf = Buffer.alloc(VHOST_USER_HDR_SIZE);
  private headerFilled = 0;
  private header: VhostUserHeader | null = null;
  private payload: Buffer = Buffer.alloc(0);
  private payloadFilled = 0;
  private pendingFds: number[] = [];
  private partialTimer: NodeJS.Timeout | null = null;

  // Write side: what the kernel did not take yet.
  private sendQueue: Pending[] = [];
  private queuedBytes = 0;

  constructor(fd: number, opts: ChannelOptions = {}) {
    super();
    this.fd = fd;
    this.addon = opts.addon ?? native();
    this.maxPayload = opts.maxPayload ?? VHOST_USER_MAX_PAYLOAD;
    this.messageTimeoutMs = opts.messageTimeoutMs ?? 5000;
    this.messagesPerEvent = opts.messagesPerEvent ?? 64;
    this.maxSendQueueBytes = opts.maxSendQueueBytes ?? 256 * 1024;
    this.maxFdsPerMessage = opts.maxFdsPerMessage ?? 16;
    this.log = opts.log ?? silentLog;
  }

  get closed(): boolean {
    return this.closedReason !== null;
  }

  get closeReason(): string | null {
    return this.closedReason;
  }

  /** Starts reading. Listeners should be attached first: messages may already be waiting. */
  start(): void {
    if (this.watcher || this.closed) return;
    this.watcher = new this.addon.FdWatcher(this.fd, (status, events) => this.onPoll(status, events));
    this.watcher.start(true, this.writableWanted);
  }

  /**
   * Sends one message. The fds stay the caller's; they must stay open until sent, which is immediate
   * unless the socket buffer is full (then the message waits for writability). Returns false when the
   * channel is closed.
   */
  send(request: number, flags: number, payload: Buffer = Buffer.alloc(0), fds: number[] = []): boolean {
    if (this.closed) return false;
    this.messagesSent++;
    this.sendRaw(encodeMessage(request, flags, payload), fds);
    return !this.closed;
  }

  /** Writes arbitrary bytes (hostile-frontend tests: truncated or garbage messages). */
  sendRaw(data: Buffer, fds: number[] = []): boolean {
    if (this.closed) return false;
    if (this.sendQueue.length > 0) {
      this.enqueue(data, fds);
      return true;
    }
    this.trySend({ data, fds });
    return !this.closed;
  }

  /** Processes whatever already arrived (messages, EOF) now instead of at the next poll event. */
  readPending(): void {
    if (!this.closed && this.watcher) this.readSome();
  }

  /** Idempotent. Stops the watcher, closes the socket and any fds of a half-read message, emits 'close'. */
  close(reason = 'closed'): void {
    if (this.closed) return;
    this.closedReason = reason;
    this.clearPartialTimer();
    // uv_poll must be stopped before the fd is closed (libuv rule); FdWatcher.close() stops it first.
    this.watcher?.close();
    this.watcher = null;
    this.addon.closeFd(this.fd);
    this.closeFds(this.pendingFds);
    this.pendingFds = [];
    this.sendQueue = [];
    this.queuedBytes = 0;
    this.emit('close', reason);
  }

  private onPoll(status: number, events: number): void {
    if (this.closed) return;
    if (status < 0) {
      // libuv turns POLLERR (e.g. the peer closed with our data unread: a reset) into a bare UV_EBADF and
      // stops the watcher; a read gives the real reason (ECONNRESET, EOF) for the log.
      this.readSome();
      this.close(`poll error ${status}`);
      return;
    }
    if (events & EVENT_WRITABLE) this.flush();
    if (events & EVENT_READABLE && !this.closed) this.readSome();
  }

  // ---- read side ----

  private readSome(): void {
    let delivered = 0;
    while (!this.closed && delivered < this.messagesPerEvent) {
      if (this.header && this.payloadFilled === this.header.size) {
        this.deliver();
        delivered++;
        continue;
      }
      const want = this.header ? this.header.size - this.payloadFilled : VHOST_USER_HDR_SIZE - this.headerFilled;
      let r;
      try {
        r = this.addon.recvMsg(this.fd, want);
      } catch (e) {
        // EMSGSIZE: more fds than the addon accepts in one recvmsg (it closed them); ECONNRESET; ...
        this.close(`recvmsg failed: ${(e as Error).message}`);
        return;
      }
      if (r === null) break; // EAGAIN: the rest comes with a later readable event
      if (r.data.length === 0 && r.fds.length === 0) {
        this.close(this.isPartial() ? 'eof in the middle of a message' : 'eof');
        return;
      }
      this.pendingFds.push(...r.fds);
      if (this.pendingFds.length > this.maxFdsPerMessage) {
        this.fail(new ProtocolError('BAD_FD_COUNT', `more than ${this.maxFdsPerMessage} fds in one message`));
        return;
      }
      if (!this.header) {
        r.data.copy(this.headerBuf, this.headerFilled);
        this.headerFilled += r.data.length;
        if (this.headerFilled === VHOST_USER_HDR_SIZE) {
          try {
            this.header = decodeHeader(this.headerBuf, this.maxPayload);
          } catch (e) {
            this.fail(e as ProtocolError);
            return;
          }
          this.payload = Buffer.alloc(this.header.size);
          this.payloadFilled = 0;
        }
      } else {
        r.data.copy(this.payload, this.payloadFilled);
        this.payloadFilled += r.data.length;
      }
      if (this.isPartial()) this.armPartialTimer();
    }
  }

  private isPartial(): boolean {
    return this.headerFilled > 0;
  }

  private deliver(): void {
    const h = this.header!;
    const msg: VhostUserMessage = { request: h.request, flags: h.flags, payload: this.payload, fds: this.pendingFds };
    this.header = null;
    this.headerFilled = 0;
    this.payload = Buffer.alloc(0);
    this.payloadFilled = 0;
    this.pendingFds = [];
    this.clearPartialTimer();
    this.messagesReceived++;
    try {
      this.emit('message', msg);
    } catch (e) {
      // A handler bug must not take the read loop down with it; the connection itself is still sane.
      this.log('error', 'vhost-user message handler threw', { request: requestName(h.request), error: e as Error });
    }
    this.closeFds(msg.fds);
    msg.fds.length = 0;
  }

  private armPartialTimer(): void {
    if (this.partialTimer) return;
    this.partialTimer = setTimeout(() => {
      this.partialTimer = null;
      if (!this.closed && this.isPartial()) {
        this.fail(new ProtocolError('TIMEOUT', `message incomplete after ${this.messageTimeoutMs} ms`));
      }
    }, this.messageTimeoutMs);
    this.partialTimer.unref();
  }

  private clearPartialTimer(): void {
    if (this.partialTimer) clearTimeout(this.partialTimer);
    this.partialTimer = null;
  }

  private fail(err: ProtocolError): void {
    this.protocolErrors++;
    this.log('warn', 'vhost-user framing error, closing connection', { code: err.code, error: err.message });
    if (this.listenerCount('protocol-error') > 0) this.emit('protocol-error', err);
    this.close(`protocol error: ${err.message}`);
  }

  private closeFds(fds: number[]): void {
    for (const fd of fds) this.addon.closeFd(fd);
  }

  // ---- write side ----

  private trySend(p: Pending): boolean {
    let n: number;
    try {
      n = this.addon.sendMsg(this.fd, p.data, p.fds);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EAGAIN') {
        this.enqueue(p.data, p.fds, true);
        return false;
      }
      this.close(`sendmsg failed: ${(e as Error).message}`);
      return false;
    }
    if (n < p.data.length) {
      // The fds went with the first byte; the rest is plain bytes.
      this.enqueue(p.data.subarray(n), [], true);
      return false;
    }
    return true;
  }

  private enqueue(data: Buffer, fds: number[], front = false): void {
    if (this.queuedBytes + data.length > this.maxSendQueueBytes) {
      this.close(`send queue over ${this.maxSendQueueBytes} bytes: peer is not reading`);
      return;
    }
    const p = { data, fds };
    if (front) this.sendQueue.unshift(p);
    else this.sendQueue.push(p);
    this.queuedBytes += data.length;
    this.watchWritable(true);
  }

  private flush(): void {
    while (this.sendQueue.length > 0 && !this.closed) {
      const p = this.sendQueue.shift()!;
      this.queuedBytes -= p.data.length;
      if (!this.trySend(p)) return; // re-queued at the front, or closed
    }
    if (!this.closed) this.watchWritable(false);
  }

  private watchWritable(on: boolean): void {
    if (this.writableWanted === on) return;
    this.writableWanted = on;
    this.watcher?.start(true, on);
  }
}
