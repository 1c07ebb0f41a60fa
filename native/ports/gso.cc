#include "ports/gso.h"

#include <cstring>

#include "core/csum.h"
#include "core/sg.h"

namespace vs {

namespace {

void put16(uint8_t* p, uint16_t v) {
  p[0] = uint8_t(v >> 8);
  p[1] = uint8_t(v);
}
uint32_t get32(const uint8_t* p) { return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3]; }
void put32(uint8_t* p, uint32_t v) {
  put16(p, uint16_t(v >> 16));
  put16(p + 2, uint16_t(v));
}

}  // namespace

bool gso_segment_tcp(const Frame& f, GsoState& st, void (*emit)(const Frame& seg, void* ctx), void* ctx) {
  uint8_t gso = f.hdr.gso_type & ~VIRTIO_NET_HDR_GSO_ECN;
  if ((gso != VIRTIO_NET_HDR_GSO_TCPV4 && gso != VIRTIO_NET_HDR_GSO_TCPV6) || f.hdr.gso_size == 0) return false;
  const uint32_t mss = f.hdr.gso_size;
  uint32_t want = f.len < kMaxGsoHeader ? static_cast<uint32_t>(f.len) : kMaxGsoHeader;
  uint8_t* h = st.hdr;
  // SAFETY: f's pieces were bounds-checked when the frame was taken; want <= f.len.
  if (sg_read(f.bufs, f.nbufs, f.off, h, want) != want) return false;
  // The Ethernet header as forward() checked it, not as the source's memory holds it now.
  std::memcpy(h, f.eth, frame_eth_len(f));

  uint32_t l2 = kEthHdr;
  uint16_t type = get16be(h + 12);
  if (type == kEthTypeVlan) {
    l2 += kVlanTag;
    type = get16be(h + 16);
  }
  bool v4 = type == 0x0800;
  if (!(v4 && gso == VIRTIO_NET_HDR_GSO_TCPV4) && !(type == 0x86dd && gso == VIRTIO_NET_HDR_GSO_TCPV6)) return false;
  uint32_t l3 = v4 ? uint32_t(h[l2] & 15) * 4 : 40;
  if (l2 + l3 + 20 > want) return false;
  if (v4 ? (l3 < 20 || h[l2 + 9] != 6) : h[l2 + 6] != 6) return false;  // TCP, no IPv6 extension headers
  const uint32_t tcp = l2 + l3;
  const uint32_t l4 = uint32_t(h[tcp + 12] >> 4) * 4;
  const uint32_t hlen = tcp + l4;
  if (l4 < 20 || hlen > want || hlen >= f.len) return false;

  const uint64_t payload = f.len - hlen;
  const uint32_t seq0 = get32(h + tcp + 4);
  const uint16_t id0 = v4 ? get16be(h + l2 + 4) : 0;
  const uint8_t flags0 = h[tcp + 13];
  // Pseudo-header addresses: fixed for every segment.
  uint64_t addr_sum = v4 ? csum_add(0, h + l2 + 12, 8) : csum_add(0, h + l2 + 8, 32);

  Frame seg = f;
  seg.hdr = {};
  seg.off = 0;
  for (uint64_t done = 0, i = 0; done < payload; done += mss, i++) {
    uint32_t len = static_cast<uint32_t>(payload - done < mss ? payload - done : mss);
    bool last = done + len == payload;
    if (v4) {
      put16(h + l2 + 2, uint16_t(l3 + l4 + len));
      put16(h + l2 + 4, uint16_t(id0 + i));
      put16(h + l2 + 10, 0);
      put16(h + l2 + 10, static_cast<uint16_t>(~csum_fold(csum_add(0, h + l2, l3))));
    } else {
      put16(h + l2 + 4, uint16_t(l4 + len));
    }
    put32(h + tcp + 4, seq0 + static_cast<uint32_t>(done));
    uint8_t fl = flags0;
    if (!last) fl &= ~(0x01 | 0x08);  // FIN and PSH only on the last segment
    if (i > 0) fl &= ~0x80;           // CWR only on the first
    h[tcp + 13] = fl;
    put16(h + tcp + 16, 0);
    // The payload slice, still in the source's buffers.
    // SAFETY: slices of f's pieces (checked when the frame was taken), each within its piece; what does not fit
    // st.bufs stops the cut below.
    st.bufs[0] = {h, hlen};
    int n = 1;
    uint64_t skip = f.off + hlen + done, left = len;
    for (int b = 0; b < f.nbufs && left && n < kMaxChainBufs + 1; b++) {
      if (skip >= f.bufs[b].len) {
        skip -= f.bufs[b].len;
        continue;
      }
      uint64_t k = f.bufs[b].len - skip;
      if (k > left) k = left;
      st.bufs[n++] = {f.bufs[b].addr + skip, static_cast<uint32_t>(k)};
      left -= k;
      skip = 0;
    }
    if (left) return done > 0;  // the pieces ran out: a bug upstream; stop here
    uint64_t sum = addr_sum + 6 + l4 + len;  // protocol and TCP length of the pseudo-header
    sum += csum_add(0, h + tcp, l4);
    // SAFETY: sg_csum reads only the slices just built, under the poll thread's fault guard.
    sum += sg_csum(st.bufs + 1, n - 1, 0, len);  // l4 is a multiple of 4: the payload starts on an even byte
    put16(h + tcp + 16, static_cast<uint16_t>(~csum_fold(sum)));
    seg.bufs = st.bufs;
    seg.nbufs = n;
    seg.len = hlen + len;
    std::memcpy(seg.eth, h, sizeof seg.eth);  // what is delivered first: this segment's headers (hlen > that)
    emit(seg, ctx);
  }
  return true;
}

}  // namespace vs
