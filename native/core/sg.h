// Scatter-gather helpers over the pieces of descriptor chains. Callers pass pieces that Vring::walk has
// already bounds-checked, and offsets/lengths within the pieces' total: nothing here can leave them.
#pragma once
#include <cstdint>
#include <cstring>

#include "core/vring.h"

namespace vs {

// Calls f(p, k) for each run of the len bytes from offset off of the pieces, in order: the one walk behind the
// copies and the checksum below. Returns the bytes visited (< len if the pieces end first).
template <class F>
inline uint64_t sg_each(const Buf* b, int n, uint64_t off, uint64_t len, F&& f) {
  uint64_t done = 0;
  for (int i = 0; i < n && done < len; i++) {
    if (off >= b[i].len) {
      off -= b[i].len;
      continue;
    }
    uint64_t k = b[i].len - off;
    if (k > len - done) k = len - done;
    // SAFETY: off + k <= b[i].len, and b[i] is a piece Vring::walk checked to lie inside guest memory.
    f(b[i].addr + off, k);
    done += k;
    off = 0;
  }
  return done;
}

// Copies len bytes starting at offset off of the pieces into out. Returns bytes copied (< len if short).
inline uint64_t sg_read(const Buf* b, int n, uint64_t off, void* out, uint64_t len) {
  uint8_t* o = static_cast<uint8_t*>(out);
  return sg_each(b, n, off, len, [&](const uint8_t* p, uint64_t k) {
    std::memcpy(o, p, k);
    o += k;
  });
}

// Writes len bytes from in at offset off of the pieces.
inline uint64_t sg_write(const Buf* b, int n, uint64_t off, const void* in, uint64_t len) {
  const uint8_t* s = static_cast<const uint8_t*>(in);
  // SAFETY: as in sg_each; the pieces of a receive chain were checked device-writable by Vring::walk.
  return sg_each(b, n, off, len, [&](uint8_t* p, uint64_t k) {
    std::memcpy(p, s, k);
    s += k;
  });
}

// Describes len bytes from offset off of the pieces as at most cap pieces of out (no copy). Returns their number.
inline int sg_slice(const Buf* b, int n, uint64_t off, uint64_t len, Buf* out, int cap) {
  int k = 0;
  for (int i = 0; i < n && len && k < cap; i++) {
    if (off >= b[i].len) {
      off -= b[i].len;
      continue;
    }
    uint64_t m = b[i].len - off;
    if (m > len) m = len;
    out[k++] = {b[i].addr + off, static_cast<uint32_t>(m)};
    len -= m;
    off = 0;
  }
  return k;
}

// Copies len bytes from src pieces (from soff) to dst pieces (from doff): the single copy of a frame
// from one guest's buffers into another's.
inline void sg_copy(const Buf* s, int ns, uint64_t soff, const Buf* d, int nd, uint64_t doff, uint64_t len) {
  int si = 0, di = 0;
  while (si < ns && soff >= s[si].len) soff -= s[si++].len;
  while (di < nd && doff >= d[di].len) doff -= d[di++].len;
  while (len && si < ns && di < nd) {
    uint64_t k = s[si].len - soff;
    if (d[di].len - doff < k) k = d[di].len - doff;
    if (len < k) k = len;
    // SAFETY: k fits what is left of both pieces, each checked by Vring::walk (the destination device-writable).
    std::memcpy(d[di].addr + doff, s[si].addr + soff, k);
    len -= k;
    soff += k;
    doff += k;
    if (soff == s[si].len) si++, soff = 0;
    if (doff == d[di].len) di++, doff = 0;
  }
}

// Internet checksum (RFC 1071) of len bytes at offset off of the pieces, folded but not complemented.
inline uint16_t sg_csum(const Buf* b, int n, uint64_t off, uint64_t len) {
  uint64_t sum = 0;
  bool odd = false;  // true when the previous piece ended in the middle of a 16-bit word
  sg_each(b, n, off, len, [&](const uint8_t* p, uint64_t k) {
    for (uint64_t j = 0; j < k; j++) sum += odd ^ (j & 1) ? p[j] : uint64_t(p[j]) << 8;
    odd ^= k & 1;
  });
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(sum);
}

}  // namespace vs
