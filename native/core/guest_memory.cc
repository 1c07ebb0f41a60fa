#include "core/guest_memory.h"

#include "core/fault_guard.h"

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
  if (specs.empty() || specs.size() > kMaxMemRegions) {
    err = "memory table must have 1.." + std::to_string(kMaxMemRegions) + " regions, got " +
          std::to_string(specs.size());
    for (const MemRegionSpec& s : specs)
      if (s.fd >= 0) close(s.fd);
    return nullptr;
  }
  bool ok = true;
  for (size_t i = 0; i < specs.size(); i++) {
    if (ok) ok = mem->add(specs[i], "region " + std::to_string(i) + ": ", err);
    else if (specs[i].fd >= 0) close(specs[i].fd);  // add() closes the fds it is given, the rest are closed here
  }
  return ok ? std::move(mem) : nullptr;
}

std::unique_ptr<GuestMemory> GuestMemory::With(const GuestMemory* old, const MemRegionSpec& spec, std::string& err) {
  std::unique_ptr<GuestMemory> mem(new GuestMemory());
  if (old) mem->regions_ = old->regions_;
  // The same region again (same addresses, offset and file): counted, not mapped twice.
  struct stat st;
  if (spec.fd >= 0 && fstat(spec.fd, &st) == 0) {
    for (Region& r : mem->regions_) {
      if (r.gpa == spec.guest_phys_addr && r.size == spec.size && r.uva == spec.user_addr && r.offset == spec.mmap_offset &&
          r.dev == static_cast<uint64_t>(st.st_dev) && r.ino == static_cast<uint64_t>(st.st_ino)) {
        r.adds++;
        close(spec.fd);
        return mem;
      }
    }
  }
  if (mem->regions_.size() >= kMaxMemSlots) {
    err = "already " + std::to_string(kMaxMemSlots) + " memory regions (GET_MAX_MEM_SLOTS)";
    if (spec.fd >= 0) close(spec.fd);
    return nullptr;
  }
  if (!mem->add(spec, "new region: ", err)) return nullptr;
  return mem;
}

std::unique_ptr<GuestMemory> GuestMemory::Without(const GuestMemory& old, uint64_t gpa, uint64_t size, uint64_t uva,
                                                  std::string& err) {
  std::unique_ptr<GuestMemory> mem(new GuestMemory());
  bool found = false;
  for (const Region& r : old.regions_) {
    if (!found && r.gpa == gpa && r.size == size && r.uva == uva) {
      found = true;
      if (r.adds > 1) {  // added once more than removed so far: it stays
        mem->regions_.push_back(r);
        mem->regions_.back().adds--;
      }
    } else {
      mem->regions_.push_back(r);
    }
  }
  if (!found) {
    err = "no memory region at guest address " + std::to_string(gpa) + " of size " + std::to_string(size) +
          " and user address " + std::to_string(uva);
    return nullptr;
  }
  return mem;
}

bool GuestMemory::add(const MemRegionSpec& s, const std::string& where, std::string& err) {
  auto fail = [&](const std::string& why) {
    err = where + why;
    if (s.fd >= 0) close(s.fd);
    return false;
  };
  uint64_t total = total_size();
  if (s.size > kMaxGuestMemory - total)
    return fail("memory table maps more than the limit of " + std::to_string(kMaxGuestMemory >> 30) + " GiB per port");
  if (s.size == 0 || s.guest_phys_addr + s.size < s.guest_phys_addr || s.user_addr + s.size < s.user_addr ||
      s.mmap_offset + s.size < s.mmap_offset)
    return fail("zero size or address range wraps");
  // Overlapping regions would make address translation ambiguous: refuse the table.
  for (size_t j = 0; j < regions_.size(); j++) {
    const Region& o = regions_[j];
    bool gpa_overlap = s.guest_phys_addr < o.gpa + o.size && o.gpa < s.guest_phys_addr + s.size;
    bool uva_overlap = s.user_addr < o.uva + o.size && o.uva < s.user_addr + s.size;
    if (gpa_overlap || uva_overlap) return fail("overlaps region " + std::to_string(j));
  }
  if (std::string bad = check_memory_file(s.fd, s.mmap_offset + s.size); !bad.empty()) return fail(bad);
  // mmap needs a page-aligned offset; map from the page boundary and point into it.
  const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  uint64_t aligned = s.mmap_offset & ~(page - 1);
  uint64_t lead = s.mmap_offset - aligned;
  size_t len = static_cast<size_t>(s.size + lead);
  void* base = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED, s.fd, static_cast<off_t>(aligned));
  if (base == MAP_FAILED)
    return fail("mmap of " + std::to_string(s.size) + " bytes failed: " + std::strerror(errno));
  struct stat st{};
  fstat(s.fd, &st);  // checked by check_memory_file above
  close(s.fd);  // the mapping keeps the file alive
  register_guest_mapping(base, len);  // a later truncation of the file must not kill the switch
  auto m = std::make_shared<Mapping>();
  m->base = base;
  m->len = len;
  regions_.push_back({s.guest_phys_addr, s.size, s.user_addr, static_cast<uint8_t*>(base) + lead, std::move(m),
                      s.mmap_offset, static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino), 1});
  return true;
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

GuestMemory::Mapping::~Mapping() {
  unregister_guest_mapping(base);
  munmap(base, len);
}

bool GuestMemory::contains_host(uintptr_t a) const {
  for (const Region& r : regions_) {
    uintptr_t b = reinterpret_cast<uintptr_t>(r.map->base);
    if (a >= b && a < b + r.map->len) return true;
  }
  return false;
}

uint64_t GuestMemory::total_size() const {
  uint64_t t = 0;
  for (const Region& r : regions_) t += r.size;
  return t;
}

}  // namespace vs
