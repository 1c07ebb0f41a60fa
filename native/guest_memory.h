// A frontend's memory as described by SET_MEM_TABLE, mapped into this process. Immutable once built:
// a new table builds a new GuestMemory, handed to the poll thread in one pointer swap.
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

constexpr size_t kMaxMemRegions = 8;  // VHOST_MEMORY_BASELINE_NREGIONS
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
  ~GuestMemory();
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
  struct Region {
    uint64_t gpa, size, uva;
    uint8_t* host;    // host address of the region's first byte
    void* map_base;   // what mmap returned (page-aligned, may start before host)
    size_t map_len;
  };
  GuestMemory() = default;
  std::vector<Region> regions_;
};

}  // namespace vs
