// Our virtio-user port: the native driver's rings in a memfd, attached to a vhost-user backend through the
// TypeScript frontend handshake — what DPDK's net_virtio_user is to testpmd. Used by `vhost-switch gen`,
// the e2e tests and the hostile-frontend tests.
import { native, type NativeDriver } from '../dataplane/native.js';
import { VhostUserChannel } from '../vhost/channel.js';
import {
  VHOST_USER_F_PROTOCOL_FEATURES,
  VHOST_USER_PROTOCOL_F_REPLY_ACK,
  VIRTIO_F_RING_PACKED,
  VIRTIO_F_VERSION_1,
  VIRTIO_NET_F_MRG_RXBUF,
  hasBit,
} from '../vhost/features.js';
import { VhostUserFrontend, type Negotiated } from '../vhost/frontend.js';

export interface VirtioUserOptions {
  queueSize?: number;
  /** Bytes per descriptor buffer (default 2048); smaller ones make a frame span a mergeable chain. */
  bufSize?: number;
  /** Features we ask for; what the backend offers is intersected with it. */
  features?: bigint;
  /** Protocol features we ask for (default REPLY_ACK); intersected with what the backend offers. */
  protocolFeatures?: bigint;
  timeoutMs?: number;
  /** Packed virtqueues (VIRTIO_F_RING_PACKED, asked for on top of `features`); the backend must offer it. */
  packed?: boolean;
}

export const DEFAULT_DRIVER_FEATURES =
  (1n << BigInt(VIRTIO_F_VERSION_1)) | (1n << BigInt(VIRTIO_NET_F_MRG_RXBUF)) | (1n << BigInt(VHOST_USER_F_PROTOCOL_FEATURES));

export class VirtioUserPort {
  private constructor(
    readonly driver: NativeDriver,
    readonly frontend: VhostUserFrontend,
    readonly negotiated: Negotiated,
  ) {}

  /** Connects to a backend listening at socketPath and brings one queue pair up. */
  static async connect(socketPath: string, opts: VirtioUserOptions = {}): Promise<VirtioUserPort> {
    const frontend = VhostUserFrontend.connect(socketPath, { timeoutMs: opts.timeoutMs ?? 5000 });
    return VirtioUserPort.setUp(frontend, opts);
  }

  /** Listens at socketPath for a backend in client mode (the switch connects to us), then sets up. */
  static async listen(socketPath: string, opts: VirtioUserOptions & { acceptTimeoutMs?: number } = {}): Promise<VirtioUserPort> {
    const addon = native();
    const lfd = addon.unixListen(socketPath, 1);
    const fd = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => {
        watcher.close();
        reject(new Error(`no backend connected to ${socketPath}`));
      }, opts.acceptTimeoutMs ?? 15000);
      const watcher = new addon.FdWatcher(lfd, () => {
        const c = addon.unixAccept(lfd);
        if (c < 0) return;
        clearTimeout(timer);
        watcher.close();
        resolve(c);
      });
      watcher.start(true, false);
    }).finally(() => addon.closeFd(lfd));
    const frontend = new VhostUserFrontend(new VhostUserChannel(fd, { addon }), { timeoutMs: opts.timeoutMs ?? 5000 });
    return VirtioUserPort.setUp(frontend, opts);
  }

  private static async setUp(frontend: VhostUserFrontend, opts: VirtioUserOptions): Promise<VirtioUserPort> {
    const addon = native();
    const packed = opts.packed ?? false;
    const driver = new addon.Driver({ queueSize: opts.queueSize ?? 256, queuePairs: 1, packed, ...(opts.bufSize ? { bufSize: opts.bufSize } : {}) });
    try {
      const negotiated = await frontend.negotiate({
        features: (opts.features ?? DEFAULT_DRIVER_FEATURES) | (packed ? 1n << BigInt(VIRTIO_F_RING_PACKED) : 0n),
        protocolFeatures: opts.protocolFeatures ?? 1n << BigInt(VHOST_USER_PROTOCOL_F_REPLY_ACK),
      });
      // The rings are laid out already: a backend without packed rings cannot drive them.
      if (hasBit(negotiated.features, VIRTIO_F_RING_PACKED) !== packed) {
        throw new Error(packed ? 'the backend does not offer packed virtqueues (VIRTIO_F_RING_PACKED)' : 'RING_PACKED negotiated unasked');
      }
      frontend.replyAck = hasBit(negotiated.protocolFeatures, VHOST_USER_PROTOCOL_F_REPLY_ACK);
      driver.setFeatures(negotiated.features);
      const info = driver.info();
      await frontend.setMemTable([
        { guestPhysAddr: 0n, size: info.memSize, userAddr: info.memUva, mmapOffset: 0n, fd: info.memFd },
      ]);
      driver.fillRx(0);
      for (let q = 0; q < info.vrings.length; q++) {
        const v = info.vrings[q];
        await frontend.setVringNum(q, info.queueSize);
        // Packed: slot 0 with wrap counter 1, for avail (bits 0-15) and used (bits 16-31).
        await frontend.setVringBase(q, packed ? 0x80008000 : 0);
        await frontend.setVringAddr(q, { flags: 0, desc: v.desc, used: v.used, avail: v.avail, log: 0n });
        await frontend.setVringCall(q, v.callFd);
        await frontend.setVringKick(q, v.kickFd);
        if (hasBit(negotiated.features, VHOST_USER_F_PROTOCOL_FEATURES)) await frontend.setVringEnable(q, true);
      }
      return new VirtioUserPort(driver, frontend, negotiated);
    } catch (e) {
      frontend.close('set-up failed');
      throw e;
    }
  }

  send(frames: Buffer[]): number {
    return this.driver.send(1, frames);
  }

  recv(max = 32): Buffer[] {
    return this.driver.recv(0, max);
  }

  /** Receives until `count` frames arrived or the time is up. */
  async recvSome(count: number, timeoutMs = 2000): Promise<Buffer[]> {
    const out: Buffer[] = [];
    const end = Date.now() + timeoutMs;
    while (out.length < count && Date.now() < end) {
      out.push(...this.recv(32));
      if (out.length < count) await new Promise((r) => setTimeout(r, 2));
    }
    return out;
  }

  close(): void {
    this.frontend.close('port closed');
  }
}

/** An Ethernet frame: dst, src, the IEEE local experimental ethertype 0x88b5, padded to len bytes. */
export function ethFrame(dst: string, src: string, len = 64, payload?: Buffer): Buffer {
  const f = Buffer.alloc(Math.max(len, 14));
  Buffer.from(dst.split(':').map((h) => parseInt(h, 16))).copy(f, 0);
  Buffer.from(src.split(':').map((h) => parseInt(h, 16))).copy(f, 6);
  f.writeUInt16BE(0x88b5, 12);
  payload?.copy(f, 14);
  return f;
}
