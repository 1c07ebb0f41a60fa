// The backend state machine, fed with encoded messages against a recording fake data plane.
import { describe, expect, it } from 'vitest';
import { VhostUserBackend } from '../../src/vhost/backend.js';
import type { VhostUserMessage } from '../../src/vhost/channel.js';
import { FakeNativeSwitch } from '../support/fake-native-switch.js';
import {
  bit,
  offeredFeatures,
  OFFERED_PROTOCOL_FEATURES,
  VHOST_F_LOG_ALL,
  VHOST_USER_F_PROTOCOL_FEATURES,
  VHOST_USER_PROTOCOL_F_CONFIG,
  VHOST_USER_PROTOCOL_F_REPLY_ACK,
  VIRTIO_F_NOTIFICATION_DATA,
  VIRTIO_F_RING_PACKED,
  VIRTIO_F_VERSION_1,
  VIRTIO_NET_F_MRG_RXBUF,
} from '../../src/vhost/features.js';
import * as P from '../../src/vhost/protocol.js';

const V = P.VHOST_USER_VERSION;
const NEED = P.VHOST_USER_VERSION | P.VHOST_USER_NEED_REPLY_MASK;
const PORT = 3;

interface Reply {
  request: number;
  flags: number;
  payload: Buffer;
}

function harness(opts: { queuePairs?: number; offloads?: boolean; maxProtocolErrors?: number } = {}) {
  const sw = new FakeNativeSwitch();
  const replies: Reply[] = [];
  const logs: string[] = [];
  const events: string[] = [];
  let closed: string | null = null;
  const backend = new VhostUserBackend({
    native: sw,
    portId: PORT,
    queuePairs: opts.queuePairs ?? 2,
    mtu: 1500,
    offloads: opts.offloads ?? true,
    log: (level, msg, fields) => logs.push(`${level} ${msg} ${JSON.stringify(fields ?? {}, (_k, v) => (typeof v === 'bigint' ? String(v) : v))}`),
    maxProtocolErrors: opts.maxProtocolErrors,
  });
  backend.attach({
    send: (request, flags, payload) => {
      replies.push({ request, flags, payload });
      return true;
    },
    close: (reason) => {
      closed = reason;
    },
  });
  backend.on('ready', () => events.push('ready'));
  backend.on('down', (r) => events.push(`down:${r}`));
  /** Encodes a message, decodes it back as the channel would, and hands it to the backend. */
  const send = (request: number, payload: Buffer = Buffer.alloc(0), fds: number[] = [], flags = V): VhostUserMessage => {
    const wire = P.encodeMessage(request, flags, payload);
    const h = P.decodeHeader(wire);
    const msg: VhostUserMessage = { request: h.request, flags: h.flags, payload: wire.subarray(12, 12 + h.size), fds: [...fds] };
    backend.handleMessage(msg);
    return msg;
  };
  const lastU64 = () => P.decodeU64(replies.at(-1)!.payload);
  return { sw, backend, replies, logs, events, send, lastU64, closed: () => closed };
}

function negotiate(h: ReturnType<typeof harness>, withProtocolFeatures: boolean, protocolFeatures = OFFERED_PROTOCOL_FEATURES): void {
  if (withProtocolFeatures) h.send(P.VHOST_USER_SET_PROTOCOL_FEATURES, P.encodeU64(protocolFeatures));
  h.send(P.VHOST_USER_SET_OWNER);
  const f = bit(VIRTIO_F_VERSION_1) | bit(VIRTIO_NET_F_MRG_RXBUF) | (withProtocolFeatures ? bit(VHOST_USER_F_PROTOCOL_FEATURES) : 0n);
  h.send(P.VHOST_USER_SET_FEATURES, P.encodeU64(f));
}

function startRing(h: ReturnType<typeof harness>, index: number, kickFd: number | null = 100 + index): void {
  h.send(P.VHOST_USER_SET_VRING_NUM, P.encodeVringState({ index, num: 256 }));
  h.send(P.VHOST_USER_SET_VRING_BASE, P.encodeVringState({ index, num: 0 }));
  h.send(P.VHOST_USER_SET_VRING_ADDR, P.encodeVringAddr({ index, flags: 0, desc: 0x1000n, used: 0x3000n, avail: 0x2000n, log: 0n }));
  h.send(P.VHOST_USER_SET_VRING_CALL, P.encodeVringFd({ index, noFd: false }), [200 + index]);
  h.send(P.VHOST_USER_SET_VRING_KICK, P.encodeVringFd({ index, noFd: kickFd === null }), kickFd === null ? [] : [kickFd]);
}

describe('VhostUserBackend: feature negotiation', () => {
  it('answers GET_FEATURES with the offered set, as a reply', () => {
    const h = harness();
    h.send(P.VHOST_USER_GET_FEATURES);
    expect(h.replies).toHaveLength(1);
    expect(h.replies[0]!.request).toBe(P.VHOST_USER_GET_FEATURES);
    expect(h.replies[0]!.flags).toBe(P.VHOST_USER_VERSION | P.VHOST_USER_REPLY_MASK);
    expect(h.lastU64()).toBe(offeredFeatures({ offloads: true }));
    const plain = harness({ offloads: false });
    plain.send(P.VHOST_USER_GET_FEATURES);
    expect(plain.lastU64()).toBe(offeredFeatures({ offloads: false }));
  });

  it('applies SET_FEATURES within the offered set and refuses anything else, closing the connection', () => {
    const h = harness();
    negotiate(h, false);
    expect(h.sw.callsTo('setFeatures')).toEqual([[PORT, bit(VIRTIO_F_VERSION_1) | bit(VIRTIO_NET_F_MRG_RXBUF)]]);
    expect(h.backend.features).toBe(bit(VIRTIO_F_VERSION_1) | bit(VIRTIO_NET_F_MRG_RXBUF));
    expect(h.replies).toHaveLength(0);
    expect(h.closed()).toBeNull();

    h.send(P.VHOST_USER_SET_FEATURES, P.encodeU64(bit(VIRTIO_F_VERSION_1) | bit(VIRTIO_F_NOTIFICATION_DATA)));
    expect(h.sw.callsTo('setFeatures')).toHaveLength(1);
    expect(h.backend.protocolErrors).toBe(1);
    expect(h.backend.lastError).toContain('VIRTIO_F_NOTIFICATION_DATA');
    expect(h.closed()).toContain('feature bits not offered');
  });

  it('negotiates protocol features and refuses bits it did not offer', () => {
    const h = harness();
    h.send(P.VHOST_USER_GET_PROTOCOL_FEATURES);
    expect(h.lastU64()).toBe(OFFERED_PROTOCOL_FEATURES);
    h.send(P.VHOST_USER_SET_PROTOCOL_FEATURES, P.encodeU64(bit(VHOST_USER_PROTOCOL_F_REPLY_ACK)));
    expect(h.backend.protocolFeatures).toBe(bit(VHOST_USER_PROTOCOL_F_REPLY_ACK));
    h.send(P.VHOST_USER_SET_PROTOCOL_FEATURES, P.encodeU64(bit(VHOST_USER_PROTOCOL_F_CONFIG)), [], NEED);
    expect(h.lastU64()).toBe(1n); // REPLY_ACK was on: the failure is acked before the hang-up
    expect(h.closed()).toContain('protocol feature bits not offered: CONFIG');
  });

  it('answers GET_QUEUE_NUM with the queue pairs and checks NET_SET_MTU against the port MTU', () => {
    const h = harness({ queuePairs: 4 });
    negotiate(h, true);
    h.send(P.VHOST_USER_GET_QUEUE_NUM);
    expect(h.lastU64()).toBe(4n);
    h.send(P.VHOST_USER_NET_SET_MTU, P.encodeU64(9000n), [], NEED);
    expect(h.lastU64()).toBe(1n);
    h.send(P.VHOST_USER_NET_SET_MTU, P.encodeU64(1400n), [], NEED);
    expect(h.lastU64()).toBe(0n);
    expect(h.backend.info().mtu).toBe(1400);
    expect(h.closed()).toBeNull();
  });
});

describe('VhostUserBackend: REPLY_ACK', () => {
  it('acks NEED_REPLY only once REPLY_ACK is negotiated, and never twice for messages with a reply', () => {
    const h = harness();
    h.send(P.VHOST_USER_SET_OWNER, Buffer.alloc(0), [], NEED);
    expect(h.replies).toHaveLength(0);
    negotiate(h, true);
    h.send(P.VHOST_USER_SET_OWNER, Buffer.alloc(0), [], NEED);
    expect(h.replies).toHaveLength(1);
    expect(h.replies[0]!.request).toBe(P.VHOST_USER_SET_OWNER);
    expect(h.lastU64()).toBe(0n);
    h.send(P.VHOST_USER_GET_FEATURES, Buffer.alloc(0), [], NEED);
    expect(h.replies).toHaveLength(2);
    expect(h.lastU64()).toBe(offeredFeatures({ offloads: true }));
  });

  it('acks a native refusal with a non-zero status and keeps the connection', () => {
    const h = harness();
    negotiate(h, true);
    h.sw.failNext('setVringAddr', 'descriptor table not in guest memory');
    h.send(P.VHOST_USER_SET_VRING_ADDR, P.encodeVringAddr({ index: 0, flags: 0, desc: 1n, used: 2n, avail: 3n, log: 0n }), [], NEED);
    expect(h.lastU64()).toBe(1n);
    expect(h.backend.protocolErrors).toBe(1);
    expect(h.backend.lastError).toContain('descriptor table not in guest memory');
    expect(h.closed()).toBeNull();
    expect(h.logs.some((l) => l.startsWith('warn vhost-user request failed'))).toBe(true);
  });
});

describe('VhostUserBackend: ring life cycle', () => {
  it('without VHOST_USER_F_PROTOCOL_FEATURES a ring is enabled as soon as it starts (enabled just before it starts)', () => {
    const h = harness();
    negotiate(h, false);
    startRing(h, 0);
    const kickAt = h.sw.calls.findIndex((c) => c.method === 'setVringKick');
    expect(h.sw.calls[kickAt - 1]).toEqual({ method: 'setVringEnable', args: [PORT, 0, true] });
    expect(h.events).toEqual([]);
    startRing(h, 1);
    expect(h.events).toEqual(['ready']);
    expect(h.backend.ready).toBe(true);
    expect(h.backend.rings[1]).toMatchObject({ num: 256, addrSet: true, kick: 'fd', call: 'fd', started: true, enabled: true });

    h.sw.vringBase.set(`${PORT}:0`, 77);
    h.send(P.VHOST_USER_GET_VRING_BASE, P.encodeVringState({ index: 0, num: 0 }));
    expect(P.decodeVringState(h.replies.at(-1)!.payload)).toEqual({ index: 0, num: 77 });
    expect(h.backend.rings[0]).toMatchObject({ started: false, enabled: false, base: 77 });
    expect(h.events).toEqual(['ready', 'down:ring 0 stopped']);
  });

  it('with VHOST_USER_F_PROTOCOL_FEATURES rings wait for SET_VRING_ENABLE', () => {
    const h = harness();
    negotiate(h, true);
    startRing(h, 0);
    startRing(h, 1);
    expect(h.sw.callsTo('setVringEnable')).toEqual([]);
    expect(h.events).toEqual([]);
    h.send(P.VHOST_USER_SET_VRING_ENABLE, P.encodeVringState({ index: 0, num: 1 }));
    h.send(P.VHOST_USER_SET_VRING_ENABLE, P.encodeVringState({ index: 1, num: 1 }));
    expect(h.sw.callsTo('setVringEnable')).toEqual([
      [PORT, 0, true],
      [PORT, 1, true],
    ]);
    expect(h.events).toEqual(['ready']);
    h.send(P.VHOST_USER_SET_VRING_ENABLE, P.encodeVringState({ index: 1, num: 0 }));
    expect(h.events).toEqual(['ready', 'down:ring 1 disabled']);
    h.send(P.VHOST_USER_SET_VRING_ENABLE, P.encodeVringState({ index: 1, num: 2 }), [], NEED);
    expect(h.lastU64()).toBe(1n);
  });

  it('a second queue pair alone also brings the link up', () => {
    const h = harness();
    negotiate(h, false);
    startRing(h, 2);
    startRing(h, 3);
    expect(h.events).toEqual(['ready']);
  });

  it('NOFD kicks poll the ring (fd -1); fd counts must match the NOFD flag', () => {
    const h = harness();
    negotiate(h, true);
    h.send(P.VHOST_USER_SET_VRING_KICK, P.encodeVringFd({ index: 0, noFd: true }));
    expect(h.sw.callsTo('setVringKick')).toEqual([[PORT, 0, -1]]);
    expect(h.backend.rings[0]!.kick).toBe('nofd');

    const withFd = h.send(P.VHOST_USER_SET_VRING_CALL, P.encodeVringFd({ index: 0, noFd: true }), [9], NEED);
    expect(h.lastU64()).toBe(1n);
    expect(withFd.fds).toEqual([9]); // not taken: the channel closes it
    const noFd = h.send(P.VHOST_USER_SET_VRING_CALL, P.encodeVringFd({ index: 0, noFd: false }), [], NEED);
    expect(h.lastU64()).toBe(1n);
    expect(noFd.fds).toEqual([]);
    const twoFds = h.send(P.VHOST_USER_SET_VRING_ERR, P.encodeVringFd({ index: 0, noFd: false }), [9, 10], NEED);
    expect(twoFds.fds).toEqual([9, 10]);
    const ok = h.send(P.VHOST_USER_SET_VRING_ERR, P.encodeVringFd({ index: 0, noFd: false }), [11], NEED);
    expect(h.lastU64()).toBe(0n);
    expect(ok.fds).toEqual([]); // taken by native
    expect(h.sw.owned.get(`${PORT}:err:0`)).toBe(11);
    expect(h.backend.protocolErrors).toBe(3);
    expect(h.closed()).toBeNull();
  });

  it('refuses ring indexes beyond 2*queuePairs and bad ring sizes without touching native', () => {
    const h = harness({ queuePairs: 2 });
    negotiate(h, true);
    const before = h.sw.calls.length;
    h.send(P.VHOST_USER_SET_VRING_NUM, P.encodeVringState({ index: 4, num: 256 }), [], NEED);
    expect(h.lastU64()).toBe(1n);
    const kick = h.send(P.VHOST_USER_SET_VRING_KICK, P.encodeVringFd({ index: 200, noFd: false }), [5], NEED);
    expect(kick.fds).toEqual([5]);
    h.send(P.VHOST_USER_SET_VRING_NUM, P.encodeVringState({ index: 0, num: 1000 }), [], NEED);
    h.send(P.VHOST_USER_SET_VRING_NUM, P.encodeVringState({ index: 0, num: 65536 }), [], NEED);
    h.send(P.VHOST_USER_SET_VRING_BASE, P.encodeVringState({ index: 0, num: 0x10000 }), [], NEED);
    h.send(P.VHOST_USER_GET_VRING_BASE, P.encodeVringState({ index: 9, num: 0 }));
    expect(h.replies.at(-1)!.payload.length).toBe(0); // failure for a message with a reply body
    expect(h.sw.calls.length).toBe(before);
    expect(h.backend.protocolErrors).toBe(6);
  });

  it('with RING_PACKED takes ring sizes that are not powers of 2 and 32-bit vring bases (wrap counters)', () => {
    const h = harness({ queuePairs: 1 });
    h.send(P.VHOST_USER_SET_OWNER);
    h.send(P.VHOST_USER_SET_FEATURES, P.encodeU64(bit(VIRTIO_F_VERSION_1) | bit(VIRTIO_F_RING_PACKED)));
    expect(h.backend.protocolErrors).toBe(0);
    h.send(P.VHOST_USER_SET_VRING_NUM, P.encodeVringState({ index: 0, num: 1000 }));
    // Slot 0 with wrap counter 1, for avail (bits 0-15) and used (bits 16-31), as QEMU sends a fresh ring.
    h.send(P.VHOST_USER_SET_VRING_BASE, P.encodeVringState({ index: 0, num: 0x80008000 }));
    expect(h.backend.protocolErrors).toBe(0);
    expect(h.sw.callsTo('setVringNum')).toEqual([[PORT, 0, 1000]]);
    expect(h.sw.callsTo('setVringBase')).toEqual([[PORT, 0, 0x80008000]]);
    h.send(P.VHOST_USER_SET_VRING_NUM, P.encodeVringState({ index: 0, num: 32769 }), [], NEED);
    expect(h.backend.protocolErrors).toBe(1);
  });
});

describe('VhostUserBackend: memory table', () => {
  const regions = [
    { guestPhysAddr: 0n, size: 0x10000n, userAddr: 0x7f0000000000n, mmapOffset: 0n },
    { guestPhysAddr: 0x100000n, size: 0x10000n, userAddr: 0x7f0000100000n, mmapOffset: 0x1000n },
  ];

  it('hands regions and their fds to native', () => {
    const h = harness();
    negotiate(h, true);
    const msg = h.send(P.VHOST_USER_SET_MEM_TABLE, P.encodeMemoryTable(regions), [20, 21], NEED);
    expect(h.lastU64()).toBe(0n);
    expect(msg.fds).toEqual([]);
    expect(h.sw.callsTo('setMemTable')).toEqual([[PORT, regions.map((r, i) => ({ ...r, fd: 20 + i }))]]);
    expect(h.backend.info().memRegions).toBe(2);
  });

  it('refuses a fd count that does not match nregions and leaves the fds to be closed', () => {
    const h = harness();
    negotiate(h, true);
    const fewer = h.send(P.VHOST_USER_SET_MEM_TABLE, P.encodeMemoryTable(regions), [20], NEED);
    expect(h.lastU64()).toBe(1n);
    expect(fewer.fds).toEqual([20]);
    const more = h.send(P.VHOST_USER_SET_MEM_TABLE, P.encodeMemoryTable(regions.slice(0, 1)), [20, 21, 22], NEED);
    expect(more.fds).toEqual([20, 21, 22]);
    const nine = Buffer.alloc(8 + 9 * 32);
    nine.writeUInt32LE(9, 0);
    h.send(P.VHOST_USER_SET_MEM_TABLE, nine, [], NEED);
    expect(h.lastU64()).toBe(1n);
    expect(h.sw.callsTo('setMemTable')).toEqual([]);
    expect(h.backend.lastError).toContain('9 regions');
    expect(h.closed()).toBeNull();
  });
});

describe('VhostUserBackend: live migration', () => {
  const LOG = P.encodeLog({ size: 4096n, offset: 0n });

  it('SET_LOG_BASE with LOG_SHMFD maps the log and replies a u64 status; the fd is native\'s', () => {
    const h = harness();
    negotiate(h, true);
    const m = h.send(P.VHOST_USER_SET_LOG_BASE, LOG, [40]);
    expect(m.fds).toEqual([]);
    expect(h.sw.callsTo('setLogBase')).toEqual([[PORT, { fd: 40, size: 4096n, offset: 0n }]]);
    expect(h.replies.at(-1)).toMatchObject({ request: P.VHOST_USER_SET_LOG_BASE });
    expect(h.lastU64()).toBe(0n);
    // NEED_REPLY too: still one reply, the status.
    h.send(P.VHOST_USER_SET_LOG_BASE, LOG, [41], NEED);
    expect(h.replies).toHaveLength(2);
    expect(h.lastU64()).toBe(0n);
  });

  it('a bad SET_LOG_BASE is refused with status 1, the connection stays', () => {
    const h = harness();
    negotiate(h, true);
    const short = h.send(P.VHOST_USER_SET_LOG_BASE, Buffer.alloc(8), [42]);
    expect(h.lastU64()).toBe(1n);
    expect(short.fds).toEqual([42]);  // left to the channel to close
    h.send(P.VHOST_USER_SET_LOG_BASE, LOG, [43, 44]);
    expect(h.lastU64()).toBe(1n);
    h.sw.failNext('setLogBase', 'dirty log: file is smaller than mmap_offset + size');
    h.send(P.VHOST_USER_SET_LOG_BASE, LOG, [45]);
    expect(h.lastU64()).toBe(1n);
    expect(h.backend.lastError).toContain('smaller');
    expect(h.replies).toHaveLength(3);
    expect(h.closed()).toBeNull();
  });

  it('SET_LOG_BASE without LOG_SHMFD negotiated is refused; SET_LOG_FD is accepted and its fd closed', () => {
    const h = harness();
    negotiate(h, true, bit(VHOST_USER_PROTOCOL_F_REPLY_ACK));
    const m = h.send(P.VHOST_USER_SET_LOG_BASE, LOG, [46], NEED);
    expect(h.lastU64()).toBe(1n);
    expect(m.fds).toEqual([46]);
    expect(h.backend.lastError).toContain('LOG_SHMFD');
    const fd = h.send(P.VHOST_USER_SET_LOG_FD, Buffer.alloc(0), [47], NEED);
    expect(h.lastU64()).toBe(0n);
    expect(fd.fds).toEqual([47]);
  });

  it('LOG_ALL is offered and may be set and cleared; SEND_RARP announces the MAC', () => {
    const h = harness();
    negotiate(h, true);
    const f = bit(VIRTIO_F_VERSION_1) | bit(VHOST_USER_F_PROTOCOL_FEATURES) | bit(VHOST_F_LOG_ALL);
    h.send(P.VHOST_USER_SET_FEATURES, P.encodeU64(f), [], NEED);
    expect(h.lastU64()).toBe(0n);
    h.send(P.VHOST_USER_SET_FEATURES, P.encodeU64(f & ~bit(VHOST_F_LOG_ALL)), [], NEED);
    expect(h.lastU64()).toBe(0n);
    expect(h.logs.some((l) => l.includes('dirty logging on'))).toBe(true);
    expect(h.logs.some((l) => l.includes('dirty logging off'))).toBe(true);
    h.send(P.VHOST_USER_SEND_RARP, P.encodeRarpMac('52:54:00:00:10:01'), [], NEED);
    expect(h.lastU64()).toBe(0n);
    expect(h.sw.callsTo('sendRarp')).toEqual([[PORT, '52:54:00:00:10:01']]);
    h.send(P.VHOST_USER_SEND_RARP, P.encodeRarpMac('01:00:5e:00:00:01'), [], NEED);
    expect(h.lastU64()).toBe(1n);
  });
});

describe('VhostUserBackend: memory slots', () => {
  const region = (gpa: bigint) => ({ guestPhysAddr: gpa, size: 1n << 27n, userAddr: 0x7f0000000000n + gpa, mmapOffset: 0n });

  it('GET_MAX_MEM_SLOTS, ADD_MEM_REG and REM_MEM_REG with CONFIGURE_MEM_SLOTS negotiated', () => {
    const h = harness();
    negotiate(h, true);
    h.send(P.VHOST_USER_GET_MAX_MEM_SLOTS);
    expect(h.lastU64()).toBe(32n);
    const add = h.send(P.VHOST_USER_ADD_MEM_REG, P.encodeSingleMemRegion(region(0n)), [50], NEED);
    expect(h.lastU64()).toBe(0n);
    expect(add.fds).toEqual([]);
    h.send(P.VHOST_USER_ADD_MEM_REG, P.encodeSingleMemRegion(region(1n << 32n)), [51], NEED);
    expect(h.backend.info().memRegions).toBe(2);
    expect(h.sw.callsTo('addMemReg')).toHaveLength(2);
    // REM_MEM_REG may carry an fd for old frontends: closed, not used.
    const rem = h.send(P.VHOST_USER_REM_MEM_REG, P.encodeSingleMemRegion(region(1n << 32n)), [52], NEED);
    expect(h.lastU64()).toBe(0n);
    expect(rem.fds).toEqual([52]);
    expect(h.sw.callsTo('remMemReg')).toEqual([[PORT, region(1n << 32n)]]);
    expect(h.backend.info().memRegions).toBe(1);
    expect(h.logs.some((l) => l.includes('memory region added'))).toBe(true);
  });

  it('refuses them without the feature, without an fd, and when native refuses the region', () => {
    const h = harness();
    negotiate(h, true, bit(VHOST_USER_PROTOCOL_F_REPLY_ACK));
    h.send(P.VHOST_USER_GET_MAX_MEM_SLOTS);
    expect(h.replies.at(-1)!.payload.length).toBe(0);
    const m = h.send(P.VHOST_USER_ADD_MEM_REG, P.encodeSingleMemRegion(region(0n)), [53], NEED);
    expect(h.lastU64()).toBe(1n);
    expect(m.fds).toEqual([53]);
    const h2 = harness();
    negotiate(h2, true);
    h2.send(P.VHOST_USER_ADD_MEM_REG, P.encodeSingleMemRegion(region(0n)), [], NEED);
    expect(h2.lastU64()).toBe(1n);
    h2.sw.failNext('addMemReg', 'new region: overlaps region 0');
    h2.send(P.VHOST_USER_ADD_MEM_REG, P.encodeSingleMemRegion(region(0n)), [54], NEED);
    expect(h2.lastU64()).toBe(1n);
    expect(h2.backend.info().memRegions).toBe(0);
    expect(h2.closed()).toBeNull();
  });
});

describe('VhostUserBackend: bad requests', () => {
  it('refuses unsupported requests: empty reply where one is expected, fds left to close', () => {
    const h = harness();
    negotiate(h, true);
    const reqFd = h.send(P.VHOST_USER_SET_BACKEND_REQ_FD, Buffer.alloc(0), [30]);
    expect(reqFd.fds).toEqual([30]);
    expect(h.replies).toHaveLength(0);
    h.send(P.VHOST_USER_GET_CONFIG, Buffer.alloc(12));
    expect(h.replies.at(-1)).toMatchObject({ request: P.VHOST_USER_GET_CONFIG });
    expect(h.replies.at(-1)!.payload.length).toBe(0);
    h.send(P.VHOST_USER_GET_INFLIGHT_FD, Buffer.alloc(24));
    expect(h.replies.at(-1)!.payload.length).toBe(0);
    h.send(99, Buffer.alloc(0), [], NEED);
    expect(h.lastU64()).toBe(1n);
    expect(h.backend.lastError).toBe('VHOST_USER_UNKNOWN(99): not supported');
    expect(h.backend.protocolErrors).toBe(4);
    expect(h.closed()).toBeNull();
  });

  it('refuses malformed payloads and replies flagged as requests', () => {
    const h = harness();
    h.send(P.VHOST_USER_SET_FEATURES, Buffer.alloc(4));
    h.send(P.VHOST_USER_GET_FEATURES, Buffer.alloc(8));
    expect(h.replies.at(-1)!.payload.length).toBe(0);
    h.send(P.VHOST_USER_GET_VRING_BASE, Buffer.alloc(3));
    expect(h.replies.at(-1)!.payload.length).toBe(0);
    const n = h.replies.length;
    h.send(P.VHOST_USER_GET_FEATURES, Buffer.alloc(0), [], V | P.VHOST_USER_REPLY_MASK);
    expect(h.replies).toHaveLength(n);
    expect(h.backend.protocolErrors).toBe(4);
    expect(h.sw.callsTo('setFeatures')).toEqual([]);
  });

  it('disconnects a frontend that keeps getting requests wrong', () => {
    const h = harness({ maxProtocolErrors: 5 });
    for (let i = 0; i < 4; i++) h.send(99);
    expect(h.closed()).toBeNull();
    h.send(99);
    expect(h.closed()).toContain('too many protocol errors');
  });
});

describe('VhostUserBackend: reset and disconnect', () => {
  it('RESET_OWNER resets the native port and the negotiated state but keeps the connection', () => {
    const h = harness();
    negotiate(h, false);
    startRing(h, 0);
    startRing(h, 1);
    h.send(P.VHOST_USER_RESET_OWNER);
    expect(h.sw.callsTo('resetPort')).toEqual([[PORT]]);
    expect(h.backend.features).toBe(0n);
    expect(h.backend.rings.every((r) => !r.started && !r.enabled)).toBe(true);
    expect(h.events).toEqual(['ready', 'down:RESET_OWNER']);
    expect(h.closed()).toBeNull();
  });

  it('a disconnect resets the port, reports link down and ignores anything after', () => {
    const h = harness();
    negotiate(h, false);
    startRing(h, 0);
    startRing(h, 1);
    h.backend.onDisconnect('eof');
    expect(h.sw.callsTo('resetPort')).toEqual([[PORT]]);
    expect(h.events).toEqual(['ready', 'down:disconnected: eof']);
    const n = h.sw.calls.length;
    h.send(P.VHOST_USER_GET_FEATURES);
    h.backend.onDisconnect('again');
    expect(h.sw.calls.length).toBe(n);
    expect(h.logs.some((l) => l.startsWith('info vhost-user frontend disconnected'))).toBe(true);
  });
});
