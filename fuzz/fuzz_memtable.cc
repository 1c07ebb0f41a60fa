// Coverage-guided fuzzing of the memory-table mapping (native/core/guest_memory.{h,cc}) and ring translation
// (Vring::translate): a SET_MEM_TABLE as a hostile frontend may send it, after the TypeScript codec has
// checked only its shape. Each input is 0..9 regions (gpa, size, uva, mmap_offset, and an fd drawn from a set
// of real files: memfds of several sizes, an O_RDONLY reopen, an eventfd, /dev/zero, a bad fd), then address
// queries and ring addresses. Checks:
//   - GuestMemory::Map refuses exactly what an independent model says it must (no regions, more than 8,
//     zero size, wrapping ranges, gpa or uva overlaps, a file smaller than mmap_offset + size, anything but a
//     regular file, fds that cannot be mapped read/write shared) and maps everything else;
//   - it closes every fd it was given, on success and on failure;
//   - an accepted table translates each region to the bytes the file holds at mmap_offset (first, middle and
//     last byte), gpa and uva translations agree, total_size and region_count are right;
//   - gpa_to_host/uva_to_host return a pointer exactly when [addr, addr+len) lies in one region, and that
//     pointer is the model's;
//   - Vring::translate accepts ring addresses exactly when all three parts lie in one region each and are
//     aligned (16/2/4), and then points where the model says.
//
// Input layout (short inputs are zero-extended):
//   count u8 | count x {modes u8, fd u8, gpa u64, size u64, uva u64, offset u64} | queries | ring
// Each region field has a 2-bit mode (raw, small, page multiple, near the top of the address space) so the
// fuzzer reaches the interesting edges quickly; queries and ring addresses may be relative to a region.
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "core/guest_memory.h"
#include "core/vring.h"

namespace fuzz_memtable {

#define FUZZ_CHECK(cond)                                                                                \
  do {                                                                                                  \
    if (!(cond)) {                                                                                      \
      std::fprintf(stderr, "fuzz_memtable: invariant failed at %s:%d: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                                     \
    }                                                                                                   \
  } while (0)

using u128 = unsigned __int128;

inline uint8_t pattern(int file, uint64_t off) { return static_cast<uint8_t>(off * 131 + (off >> 8) + file * 29 + 1); }

enum FdKind { kMemfd16K, kMemfdOdd, kMemfdEmpty, kMemfdReadOnly, kEventfd, kDevZero, kBadFd, kFdKinds };
struct FdInfo {
  int fd = -1;
  bool regular = false;
  uint64_t size = 0;
  bool writable = false;
  bool mappable = false;  // mmap(PROT_READ|PROT_WRITE, MAP_SHARED) can work
  int content = -1;       // pattern id, or -1: reads as zeros
};

FdInfo* fds() {
  static FdInfo* f = [] {
    FdInfo* x = new FdInfo[kFdKinds];
    auto memfd = [](uint64_t size, int content) {
      int fd = memfd_create("fuzz-memtable", MFD_CLOEXEC);
      FUZZ_CHECK(fd >= 0 && ftruncate(fd, static_cast<off_t>(size)) == 0);
      std::vector<uint8_t> b(size);
      for (uint64_t i = 0; i < size; i++) b[i] = pattern(content, i);
      FUZZ_CHECK(size == 0 || pwrite(fd, b.data(), size, 0) == static_cast<ssize_t>(size));
      return fd;
    };
    x[kMemfd16K] = {memfd(16384, 0), true, 16384, true, true, 0};
    x[kMemfdOdd] = {memfd(12345, 1), true, 12345, true, true, 1};  // not a page multiple
    x[kMemfdEmpty] = {memfd(0, 2), true, 0, true, true, 2};
    // The same memory, reopened read-only: MAP_SHARED with PROT_WRITE must fail (EACCES).
    std::string path = "/proc/self/fd/" + std::to_string(x[kMemfd16K].fd);
    x[kMemfdReadOnly] = {open(path.c_str(), O_RDONLY | O_CLOEXEC), true, 16384, false, false, 0};
    FUZZ_CHECK(x[kMemfdReadOnly].fd >= 0);
    x[kEventfd] = {eventfd(0, EFD_CLOEXEC), false, 0, true, false, -1};  // not mappable (ENODEV)
    x[kDevZero] = {open("/dev/zero", O_RDWR | O_CLOEXEC), false, 0, true, true, -1};  // no size to check
    FUZZ_CHECK(x[kEventfd].fd >= 0 && x[kDevZero].fd >= 0);
    x[kBadFd] = {-1, false, 0, false, false, -1};
    return x;
  }();
  return f;
}

struct Reader {
  const uint8_t* data;
  size_t size;
  size_t pos = 0;
  uint8_t u8() { return pos < size ? data[pos++] : (pos++, 0); }
  uint64_t u64() {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= static_cast<uint64_t>(u8()) << (8 * i);
    return v;
  }
};

// 0: raw; 1: small (< 64 KiB); 2: a page multiple up to 64 KiB; 3: within 64 KiB of 2^64.
uint64_t shaped(uint64_t raw, int mode) {
  switch (mode & 3) {
    case 1: return raw & 0xffff;
    case 2: return (raw & 15) << 12;
    case 3: return ~0ull - (raw & 0xffff);
  }
  return raw;
}

struct Spec {
  uint64_t gpa, size, uva, off;
  int kind;
};

bool fits(uint64_t a, uint64_t len) { return static_cast<u128>(a) + len <= ~0ull; }  // last byte <= 2^64 - 1, end not 2^64
bool overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen) {
  return static_cast<u128>(a) < static_cast<u128>(b) + blen && static_cast<u128>(b) < static_cast<u128>(a) + alen;
}

// -1: must refuse; 1: must map; 0: may go either way (unused today: kept for fds whose mapping only mmap can judge).
int model_accepts(const std::vector<Spec>& s) {
  if (s.empty() || s.size() > vs::kMaxMemRegions) return -1;
  bool maybe = false;
  for (size_t i = 0; i < s.size(); i++) {
    const Spec& r = s[i];
    const FdInfo& f = fds()[r.kind];
    // A range may not end at 2^64 (the end would wrap to 0): the implementation's conservative choice.
    if (r.size == 0 || !fits(r.gpa, r.size) || !fits(r.uva, r.size) || !fits(r.off, r.size)) return -1;
    for (size_t j = 0; j < i; j++)
      if (overlap(r.gpa, r.size, s[j].gpa, s[j].size) || overlap(r.uva, r.size, s[j].uva, s[j].size)) return -1;
    if (!f.mappable) return -1;
    if (f.regular && r.off + r.size > f.size) return -1;
    // Not a regular file (/dev/zero, a device): there is no size to check the region against, and a shared
    // /dev/zero mapping faults (SIGBUS) at any offset past its own length. Guest memory is always a regular
    // file (memfd, tmpfs, hugetlbfs): anything else must be refused (SECURITY.md, F1).
    if (!f.regular) return -1;
  }
  return maybe ? 0 : 1;
}

const Spec* model_region(const std::vector<Spec>& s, uint64_t a, uint64_t len, bool uva) {
  for (const Spec& r : s) {
    uint64_t base = uva ? r.uva : r.gpa;
    u128 end = static_cast<u128>(a) + len, rend = static_cast<u128>(base) + r.size;
    if (a >= base && a < rend && end <= rend) return &r;
  }
  return nullptr;
}

uint8_t expected_byte(const Spec& r, uint64_t k) {
  const FdInfo& f = fds()[r.kind];
  return f.content < 0 ? 0 : pattern(f.content, r.off + k);
}

int one_input(const uint8_t* data, size_t size) {
  FdInfo* fd = fds();
  Reader in{data, size};
  const int count = in.u8() % 10;
  std::vector<Spec> specs;
  std::vector<vs::MemRegionSpec> native_specs;
  std::vector<int> given;
  for (int i = 0; i < count; i++) {
    uint8_t modes = in.u8();
    int kind = in.u8() % kFdKinds;
    Spec s;
    s.gpa = shaped(in.u64(), modes);
    s.size = shaped(in.u64(), modes >> 2);
    s.uva = shaped(in.u64(), modes >> 4);
    s.off = shaped(in.u64(), modes >> 6);
    s.kind = kind;
    int d = fd[kind].fd >= 0 ? fcntl(fd[kind].fd, F_DUPFD_CLOEXEC, 0) : -1;
    FUZZ_CHECK(fd[kind].fd < 0 || d >= 0);
    specs.push_back(s);
    native_specs.push_back({s.gpa, s.size, s.uva, s.off, d});
    if (d >= 0) given.push_back(d);
  }
  const int want = model_accepts(specs);
  std::string err;
  std::unique_ptr<vs::GuestMemory> mem = vs::GuestMemory::Map(native_specs, err);

  // Every fd handed over is closed, whatever the outcome (a mapping keeps the file alive by itself).
  for (int d : given) FUZZ_CHECK(fcntl(d, F_GETFD) == -1 && errno == EBADF);

  if (want < 0 && mem) {
    std::fprintf(stderr, "fuzz_memtable: mapped a table that must be refused:\n");
    for (const Spec& r : specs)
      std::fprintf(stderr, "  gpa 0x%llx size 0x%llx uva 0x%llx offset 0x%llx fd kind %d%s\n",
                   (unsigned long long)r.gpa, (unsigned long long)r.size, (unsigned long long)r.uva,
                   (unsigned long long)r.off, r.kind, fds()[r.kind].regular ? "" : " (not a regular file)");
  }
  if (want < 0) FUZZ_CHECK(!mem && !err.empty());
  if (want > 0) {
    if (!mem) std::fprintf(stderr, "fuzz_memtable: refused a valid table: %s\n", err.c_str());
    FUZZ_CHECK(mem != nullptr);
  }
  if (!mem) return 0;

  FUZZ_CHECK(mem->region_count() == specs.size());
  uint64_t total = 0;
  for (const Spec& r : specs) {
    total += r.size;
    uint8_t* h = mem->gpa_to_host(r.gpa, r.size);
    FUZZ_CHECK(h != nullptr);
    FUZZ_CHECK(mem->uva_to_host(r.uva, r.size) == h);
    FUZZ_CHECK(mem->gpa_to_host(r.gpa + r.size - 1, 1) == h + r.size - 1);
    FUZZ_CHECK(mem->uva_to_host(r.uva + r.size / 2, 1) == h + r.size / 2);
    // The bytes are the file's at mmap_offset (read, never written: the memfds are shared by all inputs).
    for (uint64_t k : {uint64_t(0), r.size / 2, r.size - 1}) FUZZ_CHECK(h[k] == expected_byte(r, k));
  }
  FUZZ_CHECK(mem->total_size() == total);

  // Address queries: 16 at most, each {flags u8, addr u64, len u64}.
  for (int q = 0; q < 16 && in.pos < in.size; q++) {
    uint8_t f = in.u8();
    bool uva = f & 1;
    const Spec& base = specs[(f >> 1) % specs.size()];
    uint64_t a = in.u64(), len = in.u64();
    if (f & 0x10) a = (uva ? base.uva : base.gpa) + static_cast<uint64_t>(static_cast<int64_t>(static_cast<int16_t>(a)));
    if (f & 0x20) len &= 0xffff;
    if (f & 0x40) len = base.size - (a - (uva ? base.uva : base.gpa)) + static_cast<int8_t>(len & 0xff) % 3;
    uint8_t* p = uva ? mem->uva_to_host(a, len) : mem->gpa_to_host(a, len);
    const Spec* r = model_region(specs, a, len, uva);
    if (!r) {
      FUZZ_CHECK(p == nullptr);
      continue;
    }
    uint8_t* h = mem->gpa_to_host(r->gpa, r->size);
    FUZZ_CHECK(p == h + (a - (uva ? r->uva : r->gpa)));
    if (len) {
      uint64_t k = a - (uva ? r->uva : r->gpa);
      FUZZ_CHECK(p[0] == expected_byte(*r, k) && p[len - 1] == expected_byte(*r, k + len - 1));
    }
  }

  // Ring addresses: {log2 num u8, flags u8, desc u64, avail u64, used u64} with optional region-relative parts.
  uint8_t lg = in.u8() % 16, f = in.u8();
  uint64_t addr[3];
  for (int k = 0; k < 3; k++) {
    addr[k] = in.u64();
    if (f & (1 << k)) {
      const Spec& base = specs[(addr[k] >> 32) % specs.size()];
      addr[k] = base.uva + (addr[k] & 0xffff);
    }
  }
  vs::Vring v;
  v.num = static_cast<uint16_t>(1u << lg);
  v.desc_uva = addr[0];
  v.avail_uva = addr[1];
  v.used_uva = addr[2];
  v.addr_set = true;
  const uint64_t num = v.num;
  const uint64_t lens[3] = {16 * num, 6 + 2 * num, 6 + 8 * num};
  const uint64_t align[3] = {16, 2, 4};
  bool model_ok = true;
  uint8_t* where[3] = {};
  for (int k = 0; k < 3; k++) {
    const Spec* r = model_region(specs, addr[k], lens[k], true);
    if (!r) {
      model_ok = false;
      continue;
    }
    where[k] = mem->gpa_to_host(r->gpa, r->size) + (addr[k] - r->uva);
    if (reinterpret_cast<uintptr_t>(where[k]) % align[k]) model_ok = false;
  }
  bool ok = v.translate(mem.get());
  FUZZ_CHECK(ok == model_ok);
  if (ok) {
    FUZZ_CHECK(reinterpret_cast<uint8_t*>(v.desc) == where[0] && reinterpret_cast<uint8_t*>(v.avail) == where[1] &&
               reinterpret_cast<uint8_t*>(v.used) == where[2]);
  } else {
    FUZZ_CHECK(!v.desc && !v.avail && !v.used);
  }
  // No memory table, or no size: never translated.
  vs::Vring none;
  none.addr_set = true;
  none.desc_uva = addr[0];
  FUZZ_CHECK(!none.translate(mem.get()) && !none.translate(nullptr));
  return 0;
}

}  // namespace fuzz_memtable

#undef FUZZ_CHECK

#ifndef VS_FUZZ_NO_ENTRY
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return fuzz_memtable::one_input(data, size);
}
#endif
