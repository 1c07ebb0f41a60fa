// The dirty log of live migration (vhost-user "Migration"): a bitmap the frontend shares with SET_LOG_BASE,
// one bit per 4 KiB page of guest physical memory, which the switch sets for every page it writes so that
// the frontend sends that page again. Immutable once mapped: a new log replaces it in one pointer swap,
// with the poll threads parked.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "core/counters.h"
#include "core/guest_memory.h"

namespace vs {

constexpr uint64_t kLogPage = 4096;  // VHOST_LOG_PAGE
// A log covering the most memory one port may map (kMaxGuestMemory) is this large; a larger one is refused.
constexpr uint64_t kMaxLogSize = kMaxGuestMemory / kLogPage / 8;

class DirtyLog {
 public:
  // Maps [offset, offset+size) of fd (MAP_SHARED). Takes ownership of fd and closes it whatever happens.
  // Refuses (null, err set) no fd, a zero or oversized log, offset+size overflowing, a file that is not a
  // regular file on tmpfs/hugetlbfs, and a file shorter than offset+size.
  static std::unique_ptr<DirtyLog> Map(int fd, uint64_t size, uint64_t offset, std::string& err);
  ~DirtyLog();
  DirtyLog(const DirtyLog&) = delete;
  DirtyLog& operator=(const DirtyLog&) = delete;

  // Sets the bit of every page of [gpa, gpa+len), after the bytes were written: the frontend clears a bit
  // and then reads the page, so a bit set before the write could let it send the page without the write.
  // Pages the bitmap does not cover are counted in outside(), not written.
  void mark(uint64_t gpa, uint64_t len) const {
    if (len == 0) return;
    uint64_t last = gpa + (len - 1);
    if (last < gpa) last = ~0ull;
    for (uint64_t p = gpa / kLogPage; p <= last / kLogPage; p++) {
      uint64_t byte = p / 8;
      if (byte >= size_) {
        outside_.inc();
        return;
      }
      // SAFETY: byte < size_, the bitmap Map() mapped after check_memory_file found the file that long; a later
      // truncation faults into the poll thread's guard, which finds the owner by contains_host().
      __atomic_fetch_or(&bits_[byte], static_cast<uint8_t>(1u << (p % 8)), __ATOMIC_RELEASE);
    }
  }
  uint64_t size() const { return size_; }
  uint64_t outside() const { return outside_.get(); }
  bool contains_host(uintptr_t a) const;

 private:
  DirtyLog() = default;
  uint8_t* bits_ = nullptr;
  uint64_t size_ = 0;
  void* map_base_ = nullptr;
  size_t map_len_ = 0;
  mutable Counter outside_;
};

}  // namespace vs
