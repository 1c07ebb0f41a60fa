#include "core/dirty_log.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/fault_guard.h"

namespace vs {

std::unique_ptr<DirtyLog> DirtyLog::Map(int fd, uint64_t size, uint64_t offset, std::string& err) {
  auto fail = [&](std::string why) {
    err = "dirty log: " + why;
    if (fd >= 0) close(fd);
    return nullptr;
  };
  if (fd < 0) return fail("no fd came with the message (the log must be shared memory, LOG_SHMFD)");
  if (size == 0) return fail("size is 0");
  if (size > kMaxLogSize)
    return fail("size " + std::to_string(size) + " is over the limit of " + std::to_string(kMaxLogSize) + " bytes");
  if (offset + size < offset) return fail("offset + size overflows");
  if (std::string bad = check_memory_file(fd, offset + size); !bad.empty()) return fail(bad);
  const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  uint64_t aligned = offset & ~(page - 1);
  uint64_t lead = offset - aligned;
  size_t len = static_cast<size_t>(size + lead);
  void* base = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, static_cast<off_t>(aligned));
  if (base == MAP_FAILED) return fail("mmap of " + std::to_string(size) + " bytes failed: " + std::strerror(errno));
  close(fd);
  std::unique_ptr<DirtyLog> log(new DirtyLog());
  log->bits_ = static_cast<uint8_t*>(base) + lead;
  log->size_ = size;
  log->map_base_ = base;
  log->map_len_ = len;
  register_guest_mapping(base, len);  // the frontend may truncate the file: a fault stops the port, not us
  return log;
}

DirtyLog::~DirtyLog() {
  unregister_guest_mapping(map_base_);
  munmap(map_base_, map_len_);
}

bool DirtyLog::contains_host(uintptr_t a) const {
  uintptr_t b = reinterpret_cast<uintptr_t>(map_base_);
  return a >= b && a < b + map_len_;
}

}  // namespace vs
