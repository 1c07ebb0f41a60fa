// A frontend's memory as described by SET_MEM_TABLE (or built region by region with ADD_MEM_REG / REM_MEM_REG),
// mapped into this process. Immutable once built: a change builds a new GuestMemory, handed to the poll threads in
// one pointer swap; the regions it keeps share their mappings with the old one.
//
// Security model. The guest owns every byte of these mappings and may rewrite any of them at any moment, from
// another CPU, while we read them; the frontend process may truncate the file under them. So:
//  - a guest address becomes a host pointer only through gpa_to_host / uva_to_host, which return null unless the
//    whole range [addr, addr + len) lies inside one mapped region: no access is ever built from a guest address
//    by arithmetic alone;
//  - values read from guest memory (descriptors, indices, headers) are copied once into our own memory and
//    checked there, never re-read after the check (the guest may change them in between);
//  - a truncated file raises SIGBUS on access: the poll threads run under a fault guard (core/fault_guard.h)
//    that stops the owning port's rings instead of the process;
//  - nothing the guest writes can make us write outside the buffers it posted as device-writable.
// Every access in the packet path carries a `SAFETY:` comment naming which of these makes it sound.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace vs {

struct MemRegionSpec {
  uint64_t guest_phys_addr;
  uint64_t size;
  uint64_t user_addr;    // the frontend's virtual address of the region (used for ring addresses)
  uint64_t mmap_offset;  // offset of the region in fd
  int fd;
};

constexpr size_t kMaxMemRegions = 8;  // VHOST_MEMORY_BASELINE_NREGIONS: the most one SET_MEM_TABLE carries
// The most regions ADD_MEM_REG may build up (GET_MAX_MEM_SLOTS): room for a guest's base memory and its hot-plugged
// DIMMs; every translation scans the regions, so not many more.
constexpr size_t kMaxMemSlots = 32;
// The most guest memory one port's table may map (all regions together): more than any guest we expect, and
// small enough that 128 TiB of user address space holds a hundred ports at the limit.
constexpr uint64_t kMaxGuestMemory = 1ull << 40;

// Whether fd may be mapped as shared memory the poll threads touch: a regular file on tmpfs or hugetlbfs, at
// least `need` bytes long. Empty, or why not.
std::string check_memory_file(int fd, uint64_t need);

class GuestMemory {
 public:
  // Maps every region (MAP_SHARED, read/write). Takes ownership of the fds and closes them whatever happens
  // (a mapping keeps the file alive). On failure returns null and sets err.
  static std::unique_ptr<GuestMemory> Map(const std::vector<MemRegionSpec>& specs, std::string& err);
  // ADD_MEM_REG: old's regions (old may be null) plus spec, checked as Map checks a table, at most kMaxMemSlots
  // regions. Takes ownership of spec.fd.
  static std::unique_ptr<GuestMemory> With(const GuestMemory* old, const MemRegionSpec& spec, std::string& err);
  // REM_MEM_REG: old's regions without the one of this guest address, size and user address (the mmap offset is
  // not part of the match, as the spec says); null and err when there is no such region.
  static std::unique_ptr<GuestMemory> Without(const GuestMemory& old, uint64_t gpa, uint64_t size, uint64_t uva,
                                              std::string& err);
  ~GuestMemory() = default;
  GuestMemory(const GuestMemory&) = delete;
  GuestMemory& operator=(const GuestMemory&) = delete;

  // Host pointer for [gpa, gpa+len) if the whole range lies in one region, else null. All guest-memory
  // accesses of the data plane go through here or uva_to_host: this is the bounds check.
  uint8_t* gpa_to_host(uint64_t gpa, uint64_t len) const {
    for (const Region& r : regions_) {
      // gpa - r.gpa underflows (and so fails the test) when gpa < r.gpa; len <= size - off avoids overflow.
      uint64_t off = gpa - r.gpa;
      if (gpa >= r.gpa && off < r.size && len <= r.size - off) return r.host + off;
    }
    return nullptr;
  }
  uint8_t* uva_to_host(uint64_t uva, uint64_t len) const {
    for (const Region& r : regions_) {
      uint64_t off = uva - r.uva;
      if (uva >= r.uva && off < r.size && len <= r.size - off) return r.host + off;
    }
    return nullptr;
  }
  // The guest physical address of a host address inside one of our mappings (the dirty log is kept in
  // guest physical addresses); false if it lies in none.
  bool host_to_gpa(const uint8_t* p, uint64_t* gpa) const {
    for (const Region& r : regions_) {
      if (p >= r.host && static_cast<uint64_t>(p - r.host) < r.size) {
        *gpa = r.gpa + static_cast<uint64_t>(p - r.host);
        return true;
      }
    }
    return false;
  }
  size_t region_count() const { return regions_.size(); }
  // Whether a host address lies in one of our mappings (to find who owns a faulting address).
  bool contains_host(uintptr_t a) const;
  uint64_t total_size() const;

 private:
  struct Mapping {  // one mmap of a region's file, unmapped when the last GuestMemory using it goes
    void* base;     // what mmap returned (page-aligned, may start before the region)
    size_t len;
    ~Mapping();
  };
  struct Region {
    uint64_t gpa, size, uva;
    uint8_t* host;  // host address of the region's first byte
    std::shared_ptr<Mapping> map;
    uint64_t offset = 0;        // mmap_offset into the file
    uint64_t dev = 0, ino = 0;  // the file, to recognise the same region added again
    // ADD_MEM_REG of this very region, not yet matched by a REM_MEM_REG: QEMU sends the memory messages once per
    // vhost device, so a multiqueue NIC adds (and removes) each region once per queue pair.
    uint32_t adds = 1;
  };
  GuestMemory() = default;
  // Checks spec (size, wrap, overlap with the regions so far, the file) and maps it; takes ownership of its fd.
  bool add(const MemRegionSpec& spec, const std::string& where, std::string& err);
  std::vector<Region> regions_;
};

}  // namespace vs
