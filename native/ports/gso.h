// Software segmentation of TCP GSO frames, for a destination guest that did not negotiate receiving them
// (no GUEST_TSO4/6): the frame is cut into MSS-sized frames, each with its own IP and TCP headers and full
// checksums, whose payload still points into the source's buffers (they are copied once, by the caller).
#pragma once
#include <cstdint>

#include "switch/frame.h"

namespace vs {

constexpr uint32_t kMaxGsoHeader = 256;

struct GsoState {
  uint8_t hdr[kMaxGsoHeader];
  Buf bufs[kMaxChainBufs + 1];
};

// Calls emit(seg, ctx) for each segment; returns false, emitting nothing, when f is not a TCP over IPv4 or
// IPv6 (no extension headers) GSO frame we can cut.
bool gso_segment_tcp(const Frame& f, GsoState& st, void (*emit)(const Frame& seg, void* ctx), void* ctx);

}  // namespace vs
