#!/usr/bin/env python3
"""Writes the hand-made seed inputs of the fuzz targets into fuzz/corpus/<target>/seed-*.

The seeds follow the input layouts described at the top of fuzz/fuzz_vring.cc, fuzz/fuzz_packed.cc and
fuzz/fuzz_memtable.cc:
one valid case of each shape plus the classic attacks, so that fuzzing starts from structure instead of
zeros. Corpus files the fuzzer found (scripts/fuzz.sh --merge) sit beside them under hash names.
Run from anywhere: python3 fuzz/seeds.py
"""
import os
import struct

ROOT = os.path.dirname(os.path.abspath(__file__))

NEXT, WRITE, INDIRECT = 1, 2, 4
R0, R1, R2 = 0x0, 0x10000, 0xFFFFFFFFFFFFE000  # region gpas in fuzz_vring.cc (sizes 0x3000, 0x1700, 0x1fff)


def desc(addr, length, flags=0, nxt=0):
    return struct.pack('<QIHH', addr & (2**64 - 1), length & 0xFFFFFFFF, flags, nxt)


def vring(lg, descs, heads, *, event_idx=False, max_bufs=0, last_avail=0, avail_idx=None, used_idx=0,
          used_event=0, patches=(), soff=0, doff=0):
    num = 1 << lg
    if avail_idx is None:
        avail_idx = (last_avail + len(heads)) & 0xFFFF
    p = b''
    for region, off, data in patches:
        p += struct.pack('<BHB', region, off, len(data)) + data
    hdr = struct.pack('<BBHHHHHHBB', lg | (0x10 if event_idx else 0), max_bufs, last_avail, avail_idx, 0,
                      used_event, used_idx, len(p), soff, doff)
    ring = [0] * num
    for i, h in enumerate(heads):
        ring[(last_avail + i) % num] = h
    table = b''.join(descs) + b'\0' * (16 * (num - len(descs)))
    # Inputs are zero-extended by the target, so trailing zeros carry nothing.
    return (hdr + p + struct.pack('<%dH' % num, *ring) + table[:16 * num]).rstrip(b'\0')


def vring_seeds():
    s = {}
    s['tx-one'] = vring(3, [desc(R0 + 0x100, 76)], [0])
    s['tx-chain'] = vring(3, [desc(R0 + 0x100, 12, NEXT, 1), desc(R1 + 0x10, 64, NEXT, 2), desc(R2, 0x1fff)], [0])
    s['rx-mergeable'] = vring(3, [desc(R0 + 0x800, 2048, WRITE), desc(R1, 0x1700, WRITE), desc(R2 + 1, 100, WRITE)],
                              [0, 1, 2])
    s['zero-length'] = vring(2, [desc(0xdead0000, 0, NEXT, 1), desc(R0, 64)], [0, 1])
    s['cross-region-end'] = vring(2, [desc(R0 + 0x3000 - 8, 64)], [0])
    s['outside'] = vring(2, [desc(0x5000, 64), desc(R1 + 0x1700, 1), desc(2**64 - 10, 64)], [0, 1, 2])
    s['len-4g'] = vring(2, [desc(R0, 0xFFFFFFFF), desc(R2, 0x2000)], [0, 1])
    s['loop'] = vring(2, [desc(R0, 64, NEXT, 1), desc(R0, 64, NEXT, 0)], [0])
    s['next-out-of-table'] = vring(2, [desc(R0, 64, NEXT, 60000)], [0])
    s['self-loop-zero-len'] = vring(4, [desc(0, 0, NEXT, 0)], [0, 0, 0])
    # An indirect table of two pieces in region 1.
    table = desc(R0 + 0x200, 12, NEXT, 1) + desc(R0 + 0x300, 64)
    s['indirect'] = vring(2, [desc(R1 + 0x40, 32, INDIRECT)], [0], patches=[(1, 0x40, table)])
    s['indirect-after-direct'] = vring(2, [desc(R0, 12, NEXT, 1), desc(R1 + 0x40, 32, INDIRECT)], [0],
                                       patches=[(1, 0x40, table)])
    nested = desc(R1 + 0x80, 16, INDIRECT)
    s['indirect-nested'] = vring(2, [desc(R1 + 0x40, 16, INDIRECT)], [0], patches=[(1, 0x40, nested)])
    s['indirect-with-next'] = vring(2, [desc(R1 + 0x40, 32, INDIRECT | NEXT, 1), desc(R0, 64)], [0],
                                    patches=[(1, 0x40, table)])
    s['indirect-bad-len'] = vring(2, [desc(R1 + 0x40, 15, INDIRECT), desc(R1 + 0x40, 0, INDIRECT)], [0, 1])
    s['indirect-outside'] = vring(2, [desc(R1 + 0x1700 - 16, 32, INDIRECT)], [0])
    loop = desc(R0, 64, NEXT, 1) + desc(R0, 64, NEXT, 0)
    s['indirect-loop'] = vring(2, [desc(R1 + 0x40, 32, INDIRECT)], [0], patches=[(1, 0x40, loop)])
    s['indirect-top'] = vring(2, [desc(R2 + 0x1fff - 32, 32, INDIRECT)], [0],
                              patches=[(2, 0x1fff - 32, desc(R2, 1, NEXT, 1) + desc(R2 + 0x1ffe, 1))])
    s['wrong-direction'] = vring(2, [desc(R0, 64, WRITE), desc(R0, 64, NEXT, 2), desc(R0, 64, WRITE)], [0, 1])
    s['too-many-bufs'] = vring(4, [desc(R0 + i, 1, NEXT, i + 1) for i in range(15)] + [desc(R0, 1)], [0],
                               max_bufs=4)
    s['avail-jump'] = vring(3, [desc(R0, 64)], [0], avail_idx=9)
    s['avail-wrap'] = vring(3, [desc(R0, 64), desc(R0, 64)], [0, 1], last_avail=0xFFFF, used_idx=0xFFFF)
    s['event-idx'] = vring(3, [desc(R0, 64)], [0, 0, 0], event_idx=True, used_event=1)
    s['head-out-of-table'] = vring(1, [desc(R0, 64)], [7, 1])
    s['big-queue'] = vring(10, [desc(R0, 64, NEXT, 1023)], [0, 1023])
    s['sg-offsets'] = vring(3, [desc(R0, 10, NEXT, 1), desc(R1, 100), desc(R0 + 0x1000, 30, WRITE | NEXT, 3),
                                desc(R2, 50, WRITE)], [0, 2], soff=7, doff=33)
    return s


# fuzz_packed: hdr[16] | patches | descriptor ring; regions at gpa 0 (0x4000) and 0xffffffffffffd000 (0x2fff).
P0, P1 = 0x0, 0xFFFFFFFFFFFFD000
AVAIL, USED = 1 << 7, 1 << 15


def pdesc(addr, length, buf_id, flags=0, wrap=1):
    """A packed descriptor made available for the given wrap counter."""
    flags |= AVAIL if wrap else USED
    return struct.pack('<QIHH', addr & (2**64 - 1), length & 0xFFFFFFFF, buf_id, flags)


def packed(num, descs, *, start=0, wrap=1, event_idx=False, max_bufs=0, ev_flags=0, ev_off_wrap=0, patches=()):
    p = b''
    for region, off, data in patches:
        p += struct.pack('<BHB', region, off, len(data)) + data
    hdr = struct.pack('<HBBHBBHHH2x', num - 1, max_bufs, wrap | (2 if event_idx else 0), start, ev_flags, 0,
                      ev_off_wrap, 0, len(p))
    ring = b''.join(descs) + b'\0' * (16 * (num - len(descs)))
    return (hdr + p + ring[:16 * num]).rstrip(b'\0')


def packed_seeds():
    s = {}
    s['tx-one'] = packed(8, [pdesc(P0 + 0x100, 76, 3)])
    s['tx-burst'] = packed(8, [pdesc(P0 + 0x100 * i, 76, i) for i in range(8)])
    s['chain'] = packed(8, [pdesc(P0 + 0x100, 12, 0, NEXT), pdesc(P1 + 0x10, 64, 0, NEXT), pdesc(P0, 0x3fff, 5)])
    s['rx-writable'] = packed(5, [pdesc(P0 + 0x800, 2048, 1, WRITE), pdesc(P1, 0x2fff, 2, WRITE)])
    s['odd-size-wrap'] = packed(7, [pdesc(P0, 64, i, wrap=0 if i < 5 else 1) for i in range(7)], start=5)
    s['wrap-mid-chain'] = packed(4, [pdesc(P0, 64, 0, 0, wrap=0)] + [pdesc(P0, 1, 0)] * 2 + [pdesc(P0, 2, 1, NEXT)],
                                 start=3)
    s['id-out-of-range'] = packed(8, [pdesc(P0, 64, 8), pdesc(P0, 64, 0xffff)])
    s['never-ends'] = packed(4, [pdesc(P0, 16, 0, NEXT)] * 4)
    s['tail-not-available'] = packed(8, [pdesc(P0, 12, 0, NEXT), pdesc(P0, 64, 0, wrap=0)])
    s['zero-length'] = packed(4, [pdesc(0xdead0000, 0, 0, NEXT), pdesc(P0, 64, 1)])
    s['outside'] = packed(4, [pdesc(0x5000, 64, 0), pdesc(P0 + 0x3fff, 2, 1), pdesc(2**64 - 10, 64, 2)])
    table = struct.pack('<QIHH', P0 + 0x200, 12, 0, 0) + struct.pack('<QIHH', P0 + 0x300, 64, 0, 0)
    s['indirect'] = packed(4, [pdesc(P0 + 0x40, 32, 2, INDIRECT)], patches=[(0, 0x40, table)])
    s['indirect-in-chain'] = packed(4, [pdesc(P0, 12, 0, NEXT), pdesc(P0 + 0x40, 32, 1, INDIRECT)],
                                    patches=[(0, 0x40, table)])
    s['indirect-with-next'] = packed(4, [pdesc(P0 + 0x40, 32, 0, INDIRECT | NEXT), pdesc(P0, 64, 1)],
                                     patches=[(0, 0x40, table)])
    nested = struct.pack('<QIHH', P0 + 0x80, 16, 0, INDIRECT)
    s['indirect-nested'] = packed(4, [pdesc(P0 + 0x40, 16, 0, INDIRECT)], patches=[(0, 0x40, nested)])
    s['indirect-bad-len'] = packed(4, [pdesc(P0 + 0x40, 15, 0, INDIRECT), pdesc(P0, 0, 1, INDIRECT)])
    s['indirect-top'] = packed(4, [pdesc(P1 + 0x2fff - 32, 32, 0, INDIRECT)],
                               patches=[(1, 0x2fff - 32, table)])
    s['wrong-direction'] = packed(4, [pdesc(P0, 64, 0, WRITE | NEXT), pdesc(P0, 64, 0)])
    s['too-many-bufs'] = packed(16, [pdesc(P0 + i, 1, 0, NEXT) for i in range(15)] + [pdesc(P0, 1, 3)], max_bufs=4)
    s['event-desc'] = packed(8, [pdesc(P0, 64, i) for i in range(4)], event_idx=True, ev_flags=2,
                             ev_off_wrap=2 | 0x8000)
    s['event-disable'] = packed(8, [pdesc(P0, 64, 0)], ev_flags=1)
    s['big-queue'] = packed(300, [pdesc(P0, 64, 299, NEXT), pdesc(P0, 64, 299)], start=299)
    return s


# fuzz_memtable: count u8 | count x {modes u8, fd u8, gpa, size, uva, off (u64 each)} | queries | ring
MEMFD16K, MEMFD_ODD, MEMFD_EMPTY, MEMFD_RO, EVENTFD, DEVZERO, BADFD = range(7)


def region(gpa, size, uva, off, fd, modes=0):
    return struct.pack('<BBQQQQ', modes, fd, gpa & (2**64 - 1), size & (2**64 - 1), uva & (2**64 - 1),
                       off & (2**64 - 1))


def query(flags, addr, length):
    return struct.pack('<BQQ', flags, addr & (2**64 - 1), length & (2**64 - 1))


def table(regions, queries=(), ring=None):
    out = bytes([len(regions)]) + b''.join(regions) + b''.join(queries)
    if ring:
        lg, flags, d, a, u = ring
        out += struct.pack('<BBQQQ', lg, flags, d, a, u)
    return out


def memtable_seeds():
    s = {}
    uva = 0x7F0000000000
    q = [query(0, 0x100, 64), query(1, uva + 0x3FFF, 1), query(0, 0x3FF0, 32), query(0x10, 0xFFFF, 2)]
    s['one-region'] = table([region(0, 16384, uva, 0, MEMFD16K)], q, (8, 7, 0x0, 0x1000, 0x2000))
    s['two-regions'] = table([region(0, 8192, uva, 0, MEMFD16K), region(0x100000, 12345 - 100, uva + 0x100000, 100,
                                                                        MEMFD_ODD)],
                             [query(0, 0x100000 + 12244, 1), query(0, 0x100000 + 12245, 1)],
                             (4, 0, uva, uva + 0x100000, uva + 0x1000))
    s['unaligned-offset'] = table([region(0x1000, 0x1000, uva, 0x123, MEMFD16K)], [query(0, 0x1000, 0x1000)],
                                  (4, 0, uva, uva + 0x100, uva + 0x200))
    s['overlap-gpa'] = table([region(0, 8192, uva, 0, MEMFD16K), region(4096, 4096, uva + 0x10000, 0, MEMFD16K)])
    s['overlap-uva'] = table([region(0, 8192, uva, 0, MEMFD16K), region(0x10000, 4096, uva + 4096, 0, MEMFD16K)])
    s['huge'] = table([region(0, 1 << 50, uva, 0, MEMFD16K)])
    s['size-4g'] = table([region(0, 1 << 32, uva, 0, MEMFD16K)])
    s['past-file-end'] = table([region(0, 16384, uva, 4096, MEMFD16K)])
    s['odd-file-exact'] = table([region(0, 12345, uva, 0, MEMFD_ODD)], [query(0, 12344, 1), query(0, 12344, 2)])
    s['empty-file'] = table([region(0, 4096, uva, 0, MEMFD_EMPTY)])
    s['read-only-fd'] = table([region(0, 4096, uva, 0, MEMFD_RO)])
    s['eventfd'] = table([region(0, 4096, uva, 0, EVENTFD)])
    s['bad-fd'] = table([region(0, 4096, uva, 0, BADFD)])
    s['zero-size'] = table([region(0, 0, uva, 0, MEMFD16K)])
    s['gpa-wraps'] = table([region(2**64 - 4096, 8192, uva, 0, MEMFD16K)])
    s['gpa-ends-at-top'] = table([region(2**64 - 4096, 4096, uva, 0, MEMFD16K)])
    s['gpa-last-byte'] = table([region(2**64 - 4097, 4096, uva, 0, MEMFD16K)], [query(0, 2**64 - 2, 1)])
    s['uva-wraps'] = table([region(0, 8192, 2**64 - 4096, 0, MEMFD16K)])
    s['offset-wraps'] = table([region(0, 8192, uva, 2**64 - 4096, MEMFD16K)])
    s['no-regions'] = table([])
    s['nine-regions'] = table([region(i << 20, 4096, uva + (i << 20), 0, MEMFD16K) for i in range(9)])
    s['eight-regions'] = table([region(i << 20, 2048, uva + (i << 20), 2048 * i, MEMFD16K) for i in range(8)],
                               [query(0, 7 << 20, 2048), query(1, uva + (3 << 20) + 2047, 2)],
                               (0, 0, uva, uva + (1 << 20), uva + (2 << 20)))
    s['ring-misaligned'] = table([region(0, 16384, uva, 0, MEMFD16K)], [], (8, 0, uva + 8, uva + 0x1001, uva + 0x2002))
    s['ring-outside'] = table([region(0, 16384, uva, 0, MEMFD16K)], [], (8, 0, uva, uva + 0x1000, uva + 16384 - 8))
    s['ring-max'] = table([region(0, 16384, uva, 0, MEMFD16K)], [], (15, 0, uva, uva, uva))
    s['shaped'] = bytes([1, 0b10100110, MEMFD16K]) + struct.pack('<QQQQ', 1, 3, 5, 0) + bytes([0x12]) + struct.pack(
        '<QQ', 5, 0x20)
    return s


def memtable_repros():
    # Known findings (SECURITY.md): inputs that fail today, kept out of the corpus so that the corpus replays
    # clean; test/native/fuzz_corpus_test.cc replays them too.
    uva = 0x7F0000000000
    return {
        # F1: /dev/zero is not a regular file: must be refused. At mmap_offset 1 GiB every touch raises SIGBUS.
        'devzero-offset': table([region(0, 1 << 20, uva, 1 << 30, DEVZERO)], [query(0, 0, 1)]),
        'devzero': table([region(0, 1 << 20, uva, 0, DEVZERO)], [query(0, (1 << 20) - 1, 1)]),
    }


def write(target, seeds, where='corpus', prefix='seed-'):
    d = os.path.join(ROOT, where, target)
    os.makedirs(d, exist_ok=True)
    for name, data in seeds.items():
        with open(os.path.join(d, prefix + name), 'wb') as f:
            f.write(data)
    print(f'{target}: {len(seeds)} seeds in {d}')


if __name__ == '__main__':
    write('vring', vring_seeds())
    write('packed', packed_seeds())
    write('memtable', memtable_seeds())
    write('memtable', memtable_repros(), 'repro', '')
