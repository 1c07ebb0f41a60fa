// Packet capture of one port (`vhost-switch capture`): while a capture runs, the poll threads copy the port's
// frames into a byte ring as ready-made pcap records (nanosecond timestamps), and the control thread drains
// them. Writers take a spin lock; one that finds no room drops the frame and counts it, so a slow reader loses
// frames and never slows the port. With no capture the packet path pays one predictable branch per frame.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "core/counters.h"

namespace vs {

struct Frame;

// The capture lock this thread holds while it copies from guest memory, if any: a guest-memory fault there jumps
// out of put() (fault_guard.h), and Engine::recover_from_fault releases it (the half-written record is dropped:
// the head did not move).
extern thread_local std::atomic_flag* tl_capture_lock;

class CaptureRing {
 public:
  enum Direction : uint8_t { kIn = 1, kOut = 2 };  // in: from the port into the switch; out: to the port
  static constexpr size_t kRecordHeader = 16;      // pcap record header: ts_sec, ts_nsec, incl_len, orig_len
  static constexpr uint32_t kMaxSnaplen = 65535 + 18;

  // bytes: the ring's size; snaplen: bytes kept of each frame; directions: kIn | kOut.
  CaptureRing(size_t bytes, uint32_t snaplen, uint8_t directions);

  // Poll threads: copies the frame (its checked Ethernet header, then the rest of its pieces) if the direction
  // is captured and there is room; else counts a drop.
  void put(Direction d, const Frame& f);
  // Control thread: moves whole records, at most max_bytes and max_records of them, into out; returns bytes.
  size_t take(uint8_t* out, size_t max_bytes, uint32_t max_records, uint32_t* records);

  uint64_t captured() const { return captured_.get(); }
  uint64_t dropped() const { return dropped_.get(); }

 private:
  void write_bytes(uint64_t at, const void* src, size_t n);
  void read_bytes(uint64_t at, void* dst, size_t n) const;

  std::unique_ptr<uint8_t[]> buf_;
  const size_t size_;
  const uint32_t snaplen_;
  const uint8_t directions_;
  std::atomic_flag lock_ = ATOMIC_FLAG_INIT;
  std::atomic<uint64_t> head_{0};  // written up to here (whole records)
  std::atomic<uint64_t> tail_{0};  // read up to here
  Counter captured_, dropped_;
};

}  // namespace vs
