import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import * as P from '../../src/vhost/protocol.js';
import {
  OFFERED_PROTOCOL_FEATURES,
  VIRTIO_NET_F_CSUM,
  VIRTIO_NET_F_GUEST_TSO6,
  VIRTIO_F_VERSION_1,
  VHOST_USER_F_PROTOCOL_FEATURES,
  featureNames,
  hasBit,
  offeredFeatures,
  protocolFeatureNames,
} from '../../src/vhost/features.js';

const u32 = fc.integer({ min: 0, max: 0xffffffff });
const u64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });
const region = fc.record({ guestPhysAddr: u64, size: u64, userAddr: u64, mmapOffset: u64 });

function expectProtocolError(fn: () => unknown, code: P.ProtocolErrorCode): void {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(P.ProtocolError);
    expect((e as P.ProtocolError).code).toBe(code);
    return;
  }
  throw new Error(`expected ProtocolError ${code}`);
}

describe('vhost-user header', () => {
  it('round-trips and is little-endian', () => {
    const b = P.encodeHeader({ request: P.VHOST_USER_GET_FEATURES, flags: P.VHOST_USER_VERSION, size: 8 });
    expect([...b]).toEqual([1, 0, 0, 0, 1, 0, 0, 0, 8, 0, 0, 0]);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), fc.constantFrom(0x1, 0x5, 0x9, 0xd), fc.integer({ min: 0, max: 4096 }), (request, flags, size) => {
        expect(P.decodeHeader(P.encodeHeader({ request, flags, size }))).toEqual({ request, flags, size });
      }),
    );
  });

  it('refuses wrong version bits, unknown flags, oversized payloads and short headers', () => {
    for (const flags of [0, 2, 3, 0x4, 0x8]) {
      expectProtocolError(() => P.decodeHeader(P.encodeHeader({ request: 1, flags, size: 0 })), 'BAD_VERSION');
    }
    expectProtocolError(() => P.decodeHeader(P.encodeHeader({ request: 1, flags: 0x11, size: 0 })), 'BAD_FLAGS');
    expectProtocolError(() => P.decodeHeader(P.encodeHeader({ request: 1, flags: 1, size: 4097 })), 'PAYLOAD_TOO_LARGE');
    expectProtocolError(() => P.decodeHeader(P.encodeHeader({ request: 1, flags: 1, size: 0xffffffff })), 'PAYLOAD_TOO_LARGE');
    expectProtocolError(() => P.decodeHeader(Buffer.alloc(11)), 'SHORT_HEADER');
  });

  it('names requests for logs and errors', () => {
    expect(P.requestName(P.VHOST_USER_SET_MEM_TABLE)).toBe('VHOST_USER_SET_MEM_TABLE');
    expect(P.requestName(P.VHOST_USER_GET_STATUS)).toBe('VHOST_USER_GET_STATUS');
    expect(P.requestName(99)).toBe('VHOST_USER_UNKNOWN(99)');
    const e = new P.ProtocolError('SHORT_PAYLOAD', 'u64 payload needs 8 bytes, got 3', P.VHOST_USER_SET_FEATURES);
    expect(e.message).toBe('VHOST_USER_SET_FEATURES: u64 payload needs 8 bytes, got 3');
  });

  it('encodes a whole message as header + payload', () => {
    const m = P.encodeMessage(P.VHOST_USER_SET_FEATURES, P.VHOST_USER_VERSION, P.encodeU64(5n));
    expect(m.length).toBe(20);
    expect(P.decodeHeader(m)).toEqual({ request: 2, flags: 1, size: 8 });
    expect(P.decodeU64(m.subarray(12))).toBe(5n);
  });
});

describe('vhost-user payloads', () => {
  it('u64 round-trips; short and long payloads are refused', () => {
    fc.assert(fc.property(u64, (v) => {
      expect(P.decodeU64(P.encodeU64(v))).toBe(v);
    }));
    expectProtocolError(() => P.decodeU64(Buffer.alloc(4)), 'SHORT_PAYLOAD');
    expectProtocolError(() => P.decodeU64(Buffer.alloc(12)), 'SIZE_MISMATCH');
    expect(() => P.encodeU64(-1n)).toThrow(RangeError);
    expect(() => P.encodeU64(1n << 64n)).toThrow(RangeError);
  });

  it('vring state round-trips', () => {
    fc.assert(fc.property(u32, u32, (index, num) => {
      expect(P.decodeVringState(P.encodeVringState({ index, num }))).toEqual({ index, num });
    }));
    expectProtocolError(() => P.decodeVringState(Buffer.alloc(7)), 'SHORT_PAYLOAD');
    expectProtocolError(() => P.decodeVringState(Buffer.alloc(16)), 'SIZE_MISMATCH');
  });

  it('vring addr round-trips with the struct vhost_vring_addr layout', () => {
    fc.assert(
      fc.property(fc.record({ index: u32, flags: u32, desc: u64, used: u64, avail: u64, log: u64 }), (a) => {
        expect(P.decodeVringAddr(P.encodeVringAddr(a))).toEqual(a);
      }),
    );
    const b = P.encodeVringAddr({ index: 1, flags: 0, desc: 0x1000n, used: 0x2000n, avail: 0x3000n, log: 0n });
    expect(b.length).toBe(40);
    expect(b.readBigUInt64LE(8)).toBe(0x1000n); // desc, then used, then avail
    expect(b.readBigUInt64LE(16)).toBe(0x2000n);
    expectProtocolError(() => P.decodeVringAddr(Buffer.alloc(39)), 'SHORT_PAYLOAD');
  });

  it('memory table round-trips for 0..8 regions and is sized to them', () => {
    fc.assert(
      fc.property(fc.array(region, { maxLength: 8 }), (regions) => {
        const b = P.encodeMemoryTable(regions);
        expect(b.length).toBe(8 + 32 * regions.length);
        expect(P.decodeMemoryTable(b)).toEqual(regions);
      }),
    );
  });

  it('memory table: too many regions, short, and inconsistent sizes are refused', () => {
    const nine = Buffer.alloc(8 + 9 * 32);
    nine.writeUInt32LE(9, 0);
    expectProtocolError(() => P.decodeMemoryTable(nine), 'TOO_MANY_REGIONS');
    const huge = Buffer.alloc(8);
    huge.writeUInt32LE(0xffffffff, 0);
    expectProtocolError(() => P.decodeMemoryTable(huge), 'TOO_MANY_REGIONS');
    expectProtocolError(() => P.decodeMemoryTable(Buffer.alloc(4)), 'SHORT_PAYLOAD');
    const two = P.encodeMemoryTable([
      { guestPhysAddr: 0n, size: 1n, userAddr: 2n, mmapOffset: 0n },
      { guestPhysAddr: 4n, size: 1n, userAddr: 8n, mmapOffset: 0n },
    ]);
    expectProtocolError(() => P.decodeMemoryTable(two.subarray(0, two.length - 1)), 'SHORT_PAYLOAD');
    expectProtocolError(() => P.decodeMemoryTable(Buffer.concat([two, Buffer.alloc(32)])), 'SIZE_MISMATCH');
    expect(() => P.encodeMemoryTable(Array(9).fill({ guestPhysAddr: 0n, size: 0n, userAddr: 0n, mmapOffset: 0n }))).toThrow(RangeError);
  });

  it('single memory region round-trips after its u64 padding', () => {
    fc.assert(fc.property(region, (r) => {
      expect(P.decodeSingleMemRegion(P.encodeSingleMemRegion(r))).toEqual(r);
    }));
    expect(P.encodeSingleMemRegion({ guestPhysAddr: 7n, size: 0n, userAddr: 0n, mmapOffset: 0n }).readBigUInt64LE(8)).toBe(7n);
    expectProtocolError(() => P.decodeSingleMemRegion(Buffer.alloc(32)), 'SHORT_PAYLOAD');
  });

  it('vring fd payload: index in bits 0-7, NOFD in bit 8, nothing else', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 255 }), fc.boolean(), (index, noFd) => {
        expect(P.decodeVringFd(P.encodeVringFd({ index, noFd }))).toEqual({ index, noFd });
      }),
    );
    expect(P.decodeU64(P.encodeVringFd({ index: 3, noFd: true }))).toBe(0x103n);
    expectProtocolError(() => P.decodeVringFd(P.encodeU64(0x200n)), 'BAD_VALUE');
    expect(() => P.encodeVringFd({ index: 256, noFd: false })).toThrow(RangeError);
  });

  it('fd counts and empty payloads are checked', () => {
    expectProtocolError(() => P.expectFdCount([3], 2, P.VHOST_USER_SET_MEM_TABLE), 'BAD_FD_COUNT');
    expect(() => P.expectFdCount([3, 4], 2, P.VHOST_USER_SET_MEM_TABLE)).not.toThrow();
    expectProtocolError(() => P.expectEmpty(Buffer.alloc(1), P.VHOST_USER_GET_FEATURES), 'SIZE_MISMATCH');
  });

  it('decoders never throw anything but ProtocolError on arbitrary bytes', () => {
    const decoders = [P.decodeU64, P.decodeVringState, P.decodeVringAddr, P.decodeMemoryTable, P.decodeSingleMemRegion, P.decodeVringFd];
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        for (const d of decoders) {
          try {
            d(Buffer.from(bytes));
          } catch (e) {
            expect(e).toBeInstanceOf(P.ProtocolError);
          }
        }
      }),
    );
  });
});

describe('feature bits', () => {
  it('offers the virtio-net set, with offloads removable', () => {
    const all = offeredFeatures({ offloads: true });
    expect(hasBit(all, VIRTIO_F_VERSION_1)).toBe(true);
    expect(hasBit(all, VHOST_USER_F_PROTOCOL_FEATURES)).toBe(true);
    expect(hasBit(all, VIRTIO_NET_F_CSUM)).toBe(true);
    expect(featureNames(all)).toEqual([
      'VIRTIO_NET_F_CSUM', 'VIRTIO_NET_F_GUEST_CSUM', 'VIRTIO_NET_F_MTU', 'VIRTIO_NET_F_GUEST_TSO4', 'VIRTIO_NET_F_GUEST_TSO6',
      'VIRTIO_NET_F_HOST_TSO4', 'VIRTIO_NET_F_HOST_TSO6', 'VIRTIO_NET_F_MRG_RXBUF', 'VIRTIO_NET_F_MQ',
      'VHOST_F_LOG_ALL', 'VIRTIO_RING_F_INDIRECT_DESC', 'VIRTIO_RING_F_EVENT_IDX', 'VHOST_USER_F_PROTOCOL_FEATURES', 'VIRTIO_F_VERSION_1',
      'VIRTIO_F_RING_PACKED', 'VIRTIO_F_IN_ORDER',
    ]);
    const plain = offeredFeatures({ offloads: false });
    expect(hasBit(plain, VIRTIO_NET_F_CSUM) || hasBit(plain, VIRTIO_NET_F_GUEST_TSO6)).toBe(false);
    expect(featureNames(plain)).toHaveLength(10);
    expect(protocolFeatureNames(OFFERED_PROTOCOL_FEATURES)).toEqual(['MQ', 'LOG_SHMFD', 'RARP', 'REPLY_ACK', 'NET_MTU', 'CONFIGURE_MEM_SLOTS']);
    expect(featureNames(1n << 50n)).toEqual(['bit50']);
  });
});
