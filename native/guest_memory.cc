#include "guest_memory.h"

#include "fault_guard.h"

#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace vs {

std::unique_ptr<GuestMemory> GuestMemory::Map(const std::vector<MemRegionSpec>& specs, std::string& err) {
  std::unique_ptr<GuestMemory> mem(new GuestMemory());
  auto close_all = [&]() {
    for (const MemRegionSpec& s : specs)
      if (s.fd >= 0) close(s.fd);
  };
  if (specs.empty() || specs.size() > kMaxMemRegions) {
    err = "memory table must have 1.." + std::to_string(kMaxMemRegions) + " regions, got " +
          std::to_string(specs.size());
    close_all();
    return nullptr;
  }
  uint64_t total = 0;
  for (const MemRegionSpec& s : specs) {
    if (s.size > kMaxGuestMemory - total) {
      err = "memory table maps more than the limit of " + std::to_string(kMaxGuestMemory >> 30) + " GiB per port";
      close_all();
      return nullptr;
    }
    total += s.size;
  }
  const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  for (size_t i = 0; i < specs.size(); i++) {
    const MemRegionSpec& s = specs[i];
    std::string where = "region " + std::to_string(i) + ": ";
    if (s.size == 0 || s.guest_phys_addr + s.size < s.guest_phys_addr || s.user_addr + s.size < s.user_addr ||
        s.mmap_offset + s.size < s.mmap_offset) {
      err = where + "zero size or address range wraps";
      close_all();
      return nullptr;
    }
    // Overlapping regions would make address translation ambiguous: refuse the table.
    for (size_t j = 0; j < i; j++) {
      const MemRegionSpec& o = specs[j];
      bool gpa_overlap = s.guest_phys_addr < o.guest_phys_addr + o.size && o.guest_phys_addr < s.guest_phys_addr + s.size;
      bool uva_overlap = s.user_addr < o.user_addr + o.size && o.user_addr < s.user_addr + s.size;
      if (gpa_overlap || uva_overlap) {
        err = where + "overlaps region " + std::to_string(j);
        close_all();
        return nullptr;
      }
    }
    if (std::string bad = check_memory_file(s.fd, s.mmap_offset + s.size); !bad.empty()) {
      err = where + bad;
      close_all();
      return nullptr;
    }
    // mmap needs a page-aligned offset; map from the page boundary and point into it.
    uint64_t aligned = s.mmap_offset & ~(page - 1);
    uint64_t lead = s.mmap_offset - aligned;
    size_t len = static_cast<size_t>(s.size + lead);
    void* base = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED, s.fd, static_cast<off_t>(aligned));
    if (base == MAP_FAILED) {
      err = where + "mmap of " + std::to_string(s.size) + " bytes failed: " + std::strerror(errno);
      close_all();
      return nullptr;
    }
    mem->regions_.push_back(
        {s.guest_phys_addr, s.size, s.user_addr, static_cast<uint8_t*>(base) + lead, base, len});
    register_guest_mapping(base, len);  // a later truncation of the file must not kill the switch
  }
  close_all();
  return mem;
}

std::string check_memory_file(int fd, uint64_t need) {
  // The file must really be that large: touching a page past its end would SIGBUS the switch.
  struct stat st;
  if (fstat(fd, &st) < 0) return std::string("fstat: ") + std::strerror(errno);
  // Only regular files (memfd, tmpfs, hugetlbfs): a device such as /dev/zero maps, then faults on touch.
  if (!S_ISREG(st.st_mode)) return "not a regular file (guest memory must be a memfd, tmpfs or hugetlbfs file)";
  // And on a file system whose pages are memory: a file elsewhere (FUSE, NFS, a disk) can hold the poll thread
  // in a page fault that no signal ends, and with it every port the thread serves.
  struct statfs fs;
  if (fstatfs(fd, &fs) < 0) return std::string("fstatfs: ") + std::strerror(errno);
  if (fs.f_type != TMPFS_MAGIC && fs.f_type != HUGETLBFS_MAGIC) {
    char magic[24];
    std::snprintf(magic, sizeof magic, "0x%llx", static_cast<unsigned long long>(fs.f_type));
    return std::string("the file is on a file system of type ") + magic +
           ", not tmpfs or hugetlbfs (guest memory must be a memfd, tmpfs or hugetlbfs file)";
  }
  if (static_cast<uint64_t>(st.st_size) < need) return "file is smaller than mmap_offset + size";
  return "";
}

GuestMemory::~GuestMemory() {
  for (const Region& r : regions_) {
    unregister_guest_mapping(r.map_base);
    munmap(r.map_base, r.map_len);
  }
}

bool GuestMemory::contains_host(uintptr_t a) const {
  for (const Region& r : regions_) {
    uintptr_t b = reinterpret_cast<uintptr_t>(r.map_base);
    if (a >= b && a < b + r.map_len) return true;
  }
  return false;
}

uint64_t GuestMemory::total_size() const {
  uint64_t t = 0;
  for (const Region& r : regions_) t += r.size;
  return t;
}

}  // namespace vs
