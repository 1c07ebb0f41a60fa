// The vhost-user backend for one virtio-net frontend (QEMU or DPDK virtio-user) on one switch port. It
// runs requests through the handler table (handlers.ts), which turns them into NativeSwitch calls, answers
// them, and keeps the negotiated state (session.ts) for the API. The data plane never sees a message: only
// validated values.
//
// Failure policy: a bad request is logged, counted, answered with a failure where the frontend waits for
// an answer, and its fds are closed (by the channel). The connection survives unless the two sides can no
// longer agree on what the device is (feature bits we did not offer), or the frontend keeps misbehaving.
import { EventEmitter } from 'node:events';
import { MAX_QUEUE_PAIRS } from '../dataplane/limits.js';
import type { VhostUserChannel, VhostUserMessage } from './channel.js';
import { featureNames, offeredFeatures, protocolFeatureNames, VHOST_USER_PROTOCOL_F_REPLY_ACK } from './features.js';
import { ACK_FAIL, ACK_OK, runRequest, wantsStatusReply } from './handlers.js';
import * as P from './protocol.js';
import { Session } from './session.js';
import { RequestError } from './validate.js';
import type { BackendEvents, BackendInfo, BackendOptions, BackendTransport, RingState } from './backend-types.js';

export type { BackendInfo, BackendOptions, BackendTransport, FdState, RingState } from './backend-types.js';

/** A reply-bearing request that failed gets an empty body: the frontend's size check turns it into an
 * error (the spec uses the same convention for GET_CONFIG). Better than a made-up value. */
const EMPTY = Buffer.alloc(0);

export class VhostUserBackend extends EventEmitter<BackendEvents> {
  readonly portId: number;
  readonly queuePairs: number;
  readonly offered: bigint;
  protocolErrors = 0;
  lastError: string | null = null;

  private readonly s: Session;
  private readonly log: BackendOptions['log'];
  private readonly maxProtocolErrors: number;
  private transport: BackendTransport | null = null;
  private disconnected = false;

  constructor(opts: BackendOptions) {
    super();
    if (!Number.isInteger(opts.queuePairs) || opts.queuePairs < 1 || opts.queuePairs > MAX_QUEUE_PAIRS) {
      throw new RangeError(`queuePairs must be 1..${MAX_QUEUE_PAIRS}, got ${opts.queuePairs}`);
    }
    this.portId = opts.portId;
    this.queuePairs = opts.queuePairs;
    this.log = opts.log;
    this.maxProtocolErrors = opts.maxProtocolErrors ?? 100;
    this.offered = offeredFeatures({ offloads: opts.offloads });
    this.s = new Session(opts.native, opts.portId, opts.queuePairs, opts.mtu, this.offered, opts.log, (up, reason) => {
      this.log('info', up ? 'link up' : 'link down', up ? {} : { reason });
      if (up) this.emit('ready');
      else this.emit('down', reason);
    });
  }

  /** Where replies go. Call before the first message. */
  attach(transport: BackendTransport): void {
    this.transport = transport;
  }

  get features(): bigint {
    return this.s.acked;
  }

  get protocolFeatures(): bigint {
    return this.s.protocolAcked;
  }

  get ready(): boolean {
    return this.s.ready;
  }

  get rings(): RingState[] {
    return this.s.rings.map((r) => ({ ...r }));
  }

  info(): BackendInfo {
    const s = this.s;
    return {
      portId: this.portId,
      owner: s.owner,
      features: s.acked,
      featureNames: featureNames(s.acked),
      protocolFeatures: s.protocolAcked,
      protocolFeatureNames: protocolFeatureNames(s.protocolAcked),
      mtu: s.netMtu,
      memRegions: s.memRegions,
      rings: this.rings,
      ready: s.ready,
      protocolErrors: this.protocolErrors,
      lastError: this.lastError,
    };
  }

  /** Handles one request. fds the handler keeps are taken from msg.fds; the rest are the caller's to close. */
  handleMessage(msg: VhostUserMessage): void {
    if (this.disconnected) return;
    const { request, flags } = msg;
    const name = P.requestName(request);
    if (flags & P.VHOST_USER_REPLY_MASK) {
      // A reply where a request belongs: nobody waits for an answer, so only count it.
      this.recordError(name, new RequestError('reply flag set on a request'));
      return;
    }
    const statusReply = wantsStatusReply(this.s, request);
    const replyBody = P.hasReplyBody(request);
    const ackBefore = this.s.hasProtocolFeature(VHOST_USER_PROTOCOL_F_REPLY_ACK);
    let reply: Buffer | undefined;
    let failure: Error | undefined;
    try {
      reply = runRequest(this.s, msg);
    } catch (e) {
      failure = e as Error;
    }
    // REPLY_ACK may have been switched on or off by this very message; either way the frontend that set
    // NEED_REPLY is waiting.
    const replyAck = ackBefore || this.s.hasProtocolFeature(VHOST_USER_PROTOCOL_F_REPLY_ACK);
    const needAck = (flags & P.VHOST_USER_NEED_REPLY_MASK) !== 0 && replyAck && !replyBody && !statusReply;
    if (failure) {
      this.recordError(name, failure);
      if (replyBody) this.reply(request, EMPTY);
      else if (statusReply || needAck) this.reply(request, ACK_FAIL);
      if (failure instanceof RequestError && failure.fatal) {
        this.transport?.close(`${name}: ${failure.message}`);
        return;
      }
      if (this.protocolErrors >= this.maxProtocolErrors) {
        this.transport?.close(`too many protocol errors (${this.protocolErrors})`);
      }
      return;
    }
    if (reply) this.reply(request, reply);
    else if (statusReply || needAck) this.reply(request, ACK_OK);
  }

  /** The connection is gone: stop the port's rings and unmap memory now, not when a new frontend comes. */
  onDisconnect(reason: string): void {
    if (this.disconnected) return;
    this.disconnected = true;
    this.log('info', 'vhost-user frontend disconnected', { reason, protocolErrors: this.protocolErrors });
    this.s.stop(`disconnected: ${reason}`);
  }

  private reply(request: number, payload: Buffer): void {
    if (!this.transport) {
      this.log('warn', 'vhost-user reply dropped: no transport', { request: P.requestName(request) });
      return;
    }
    this.transport.send(request, P.VHOST_USER_VERSION | P.VHOST_USER_REPLY_MASK, payload);
  }

  private recordError(name: string, e: Error): void {
    this.protocolErrors++;
    // Our own errors already name the request; native ones do not.
    this.lastError = e.message.startsWith(name) ? e.message : `${name}: ${e.message}`;
    this.log('warn', 'vhost-user request failed', { request: name, error: this.lastError, protocolErrors: this.protocolErrors });
  }
}

/** Wires a channel to a backend: requests in, replies out, disconnect resets the port. */
export function bindBackend(channel: VhostUserChannel, backend: VhostUserBackend): void {
  backend.attach(channel);
  channel.on('message', (m) => backend.handleMessage(m));
  channel.on('close', (reason) => backend.onDisconnect(reason));
}
