#include "switch/capture.h"

#include <time.h>

#include <algorithm>
#include <cstring>

#include "switch/frame.h"
#include "core/sg.h"

namespace vs {

thread_local std::atomic_flag* tl_capture_lock = nullptr;

CaptureRing::CaptureRing(size_t bytes, uint32_t snaplen, uint8_t directions)
    : buf_(new uint8_t[bytes]), size_(bytes), snaplen_(std::min(snaplen, kMaxSnaplen)), directions_(directions) {}

void CaptureRing::write_bytes(uint64_t at, const void* src, size_t n) {
  size_t off = at % size_, first = std::min(n, size_ - off);
  std::memcpy(buf_.get() + off, src, first);
  std::memcpy(buf_.get(), static_cast<const uint8_t*>(src) + first, n - first);
}

void CaptureRing::read_bytes(uint64_t at, void* dst, size_t n) const {
  size_t off = at % size_, first = std::min(n, size_ - off);
  std::memcpy(dst, buf_.get() + off, first);
  std::memcpy(static_cast<uint8_t*>(dst) + first, buf_.get(), n - first);
}

void CaptureRing::put(Direction d, const Frame& f) {
  if (!(directions_ & d)) return;
  const uint32_t caplen = static_cast<uint32_t>(std::min<uint64_t>(f.len, snaplen_));
  const size_t need = kRecordHeader + caplen;
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  while (lock_.test_and_set(std::memory_order_acquire)) __builtin_ia32_pause();
  tl_capture_lock = &lock_;
  const uint64_t head = head_.load(std::memory_order_relaxed);
  if (size_ - (head - tail_.load(std::memory_order_acquire)) < need) {
    tl_capture_lock = nullptr;
    lock_.clear(std::memory_order_release);
    dropped_.inc();
    return;
  }
  const uint32_t hdr[4] = {static_cast<uint32_t>(ts.tv_sec), static_cast<uint32_t>(ts.tv_nsec), caplen,
                           static_cast<uint32_t>(std::min<uint64_t>(f.len, UINT32_MAX))};
  write_bytes(head, hdr, sizeof hdr);
  // The checked copy of the Ethernet header (what is delivered), then the rest from the frame's pieces.
  const uint32_t eth = static_cast<uint32_t>(std::min<uint64_t>(frame_eth_len(f), caplen));
  write_bytes(head + kRecordHeader, f.eth, eth);
  uint64_t at = head + kRecordHeader + eth;
  uint8_t chunk[512];
  for (uint64_t o = eth; o < caplen;) {
    const uint64_t n = std::min<uint64_t>(sizeof chunk, caplen - o);
    // SAFETY: f's pieces were bounds-checked when the frame was taken; f.off + caplen <= their total.
    sg_read(f.bufs, f.nbufs, f.off + o, chunk, n);
    write_bytes(at, chunk, n);
    at += n;
    o += n;
  }
  head_.store(head + need, std::memory_order_release);
  tl_capture_lock = nullptr;
  lock_.clear(std::memory_order_release);
  captured_.inc();
}

size_t CaptureRing::take(uint8_t* out, size_t max_bytes, uint32_t max_records, uint32_t* records) {
  const uint64_t head = head_.load(std::memory_order_acquire);
  uint64_t tail = tail_.load(std::memory_order_relaxed);
  size_t n = 0;
  uint32_t r = 0;
  while (tail != head && r < max_records) {
    uint32_t hdr[4];
    read_bytes(tail, hdr, sizeof hdr);
    const size_t len = kRecordHeader + hdr[2];
    if (n + len > max_bytes) break;
    read_bytes(tail, out + n, len);
    n += len;
    tail += len;
    r++;
  }
  tail_.store(tail, std::memory_order_release);
  *records = r;
  return n;
}

}  // namespace vs
