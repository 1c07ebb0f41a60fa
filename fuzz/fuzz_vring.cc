// Coverage-guided fuzzing of the descriptor-chain parser (native/core/vring.{h,cc}): everything a guest controls in
// a split virtqueue comes from the input: the descriptor table, the avail ring and index, and the contents of
// guest memory (where indirect tables live). For each available head the target walks the chain the way the
// transmit side does (device-readable pieces) and the way the receive side gathers chains (device-writable
// pieces, several chains into one scratch array), and checks:
//   - walk() (inline fast path) and walk_slow() agree exactly;
//   - the outcome matches an independent model of the rules (virtio 1.1 2.6.5: loops, next out of the table,
//     nested indirect tables, INDIRECT with NEXT, indirect length, direction, zero-length pieces skipped,
//     at most max_bufs pieces);
//   - every returned Buf lies inside one region of the mapping, nbufs <= max_bufs, total == sum of lens;
//   - the pieces can be read (and the writable ones written) whole, and the scatter-gather helpers of sg.h
//     stay inside them;
//   - avail_count() marks the ring broken exactly when the index jumps by more than the queue size;
//   - no crash, no ASan/UBSan report.
// The descriptor table, avail and used rings are heap blocks of exactly their spec size, so ASan sees any
// read past them; guest memory is a memfd mapped by GuestMemory::Map with PROT_NONE guard pages placed around
// each region where the address space allows it.
//
// Build and run: scripts/fuzz.sh (libFuzzer). Input layout (short inputs are zero-extended):
//   hdr[16] | patches (hdr.patch_bytes bytes of {region u8, offset u16, len u8, data[len]}) | avail ring | desc table
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "core/guest_memory.h"
#include "core/sg.h"
#include "core/vring.h"

namespace fuzz_vring {

#define FUZZ_CHECK(cond)                                                                             \
  do {                                                                                               \
    if (!(cond)) {                                                                                   \
      std::fprintf(stderr, "fuzz_vring: invariant failed at %s:%d: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                                  \
    }                                                                                                \
  } while (0)

// Three regions of one memfd: low memory, one with a file offset that is not page-aligned and a size that is
// not a page multiple, and one that ends at the last byte of the 64-bit guest address space.
struct RegionDef {
  uint64_t gpa, size, uva, file_off;
};
constexpr RegionDef kRegions[] = {
    {0x0, 0x3000, 0x7f0000000000ull, 0x0},
    {0x10000, 0x1700, 0x7f0000100000ull, 0x3100},
    {0xffffffffffffe000ull, 0x1fff, 0x7f0000200000ull, 0x5000},
};
constexpr int kNumRegions = 3;
constexpr uint64_t kFileSize = 0x8000;
constexpr int kMaxWalks = 32;  // heads walked per input, as one burst of the data plane (kBurst)

inline uint8_t pattern(uint64_t file_off) { return static_cast<uint8_t>(file_off * 131 + (file_off >> 8) + 7); }

struct Env {
  std::unique_ptr<vs::GuestMemory> mem;
  uint8_t* host[kNumRegions];
  // The same file mapped a second time, as two ports whose frontends share memory would have it: the copy
  // from one port's pieces into another's goes between different mappings, never within one.
  std::unique_ptr<vs::GuestMemory> other;
  uint8_t* other_host[kNumRegions];
};

// Best-effort guard pages: a PROT_NONE page right before and right after a region's mapping, if nothing is
// mapped there, so that a stray access just outside a region faults instead of hitting a neighbour.
void guard(uint8_t* host, uint64_t size) {
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  uintptr_t lo = reinterpret_cast<uintptr_t>(host) & ~(page - 1);
  uintptr_t hi = (reinterpret_cast<uintptr_t>(host) + size + page - 1) & ~(page - 1);
  for (uintptr_t at : {lo - page, hi}) {
    void* p = mmap(reinterpret_cast<void*>(at), page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
                   -1, 0);
    if (p != MAP_FAILED && p != reinterpret_cast<void*>(at)) munmap(p, page);  // old kernel: hint only
  }
}

Env& env() {
  static Env* e = [] {
    Env* x = new Env();
    int fd = memfd_create("fuzz-vring", MFD_CLOEXEC);
    FUZZ_CHECK(fd >= 0 && ftruncate(fd, kFileSize) == 0);
    std::vector<uint8_t> content(kFileSize);
    for (uint64_t i = 0; i < kFileSize; i++) content[i] = pattern(i);
    FUZZ_CHECK(pwrite(fd, content.data(), content.size(), 0) == static_cast<ssize_t>(content.size()));
    std::vector<vs::MemRegionSpec> specs, specs2;
    for (const RegionDef& r : kRegions) {
      specs.push_back({r.gpa, r.size, r.uva, r.file_off, dup(fd)});
      specs2.push_back({r.gpa, r.size, r.uva, r.file_off, dup(fd)});
    }
    close(fd);
    std::string err;
    x->other = vs::GuestMemory::Map(specs2, err);
    FUZZ_CHECK(x->other != nullptr);
    x->mem = vs::GuestMemory::Map(specs, err);
    if (!x->mem) std::fprintf(stderr, "fuzz_vring: GuestMemory::Map: %s\n", err.c_str());
    FUZZ_CHECK(x->mem && x->mem->region_count() == kNumRegions);
    for (int i = 0; i < kNumRegions; i++) {
      const RegionDef& r = kRegions[i];
      uint8_t* h = x->mem->gpa_to_host(r.gpa, r.size);
      FUZZ_CHECK(h != nullptr);
      // The translation is what the file holds at the region's offset, and the region's edges are exact.
      FUZZ_CHECK(h[0] == pattern(r.file_off) && h[r.size - 1] == pattern(r.file_off + r.size - 1));
      FUZZ_CHECK(x->mem->uva_to_host(r.uva, r.size) == h);
      FUZZ_CHECK(x->mem->gpa_to_host(r.gpa, r.size + 1) == nullptr);
      FUZZ_CHECK(x->mem->gpa_to_host(r.gpa + r.size - 1, 1) == h + r.size - 1);
      if (r.gpa) FUZZ_CHECK(x->mem->gpa_to_host(r.gpa - 1, 1) == nullptr);
      x->host[i] = h;
      x->other_host[i] = x->other->gpa_to_host(r.gpa, r.size);
      FUZZ_CHECK(x->other_host[i] != nullptr && x->other_host[i] != h);
      guard(h, r.size);
    }
    return x;
  }();
  return *e;
}

// The model's own translation: [gpa, gpa+len) within one region, in 128-bit arithmetic.
uint8_t* model_translate(const Env& e, uint64_t gpa, uint64_t len) {
  for (int i = 0; i < kNumRegions; i++) {
    const RegionDef& r = kRegions[i];
    unsigned __int128 end = static_cast<unsigned __int128>(gpa) + len;
    unsigned __int128 rend = static_cast<unsigned __int128>(r.gpa) + r.size;
    if (gpa >= r.gpa && gpa < rend && end <= rend) return e.host[i] + (gpa - r.gpa);
  }
  return nullptr;
}

bool inside_one_region(const Env& e, const uint8_t* p, uint64_t len) {
  for (int i = 0; i < kNumRegions; i++) {
    const uint8_t* lo = e.host[i];
    if (p >= lo && p < lo + kRegions[i].size && len <= static_cast<uint64_t>(lo + kRegions[i].size - p)) return true;
  }
  return false;
}

struct ModelResult {
  bool ok = false;
  std::vector<vs::Buf> bufs;
  uint64_t total = 0;
};

// The chain rules, written independently of Vring::walk_slow: a chain may visit at most num descriptors in all
// (ring and indirect table, zero-length ones included: virtio 1.1 2.7.5.2), so a loop fails; an INDIRECT
// descriptor ends the main chain and must not carry NEXT; an indirect table is a whole number of descriptors
// (1..num) inside one region, and no indirect table may point to another. Zero-length pieces are skipped
// without looking at their address or direction.
ModelResult model_walk(const Env& e, const vs::VringDesc* desc, uint32_t num, uint16_t head, bool want_write,
                       int max_bufs) {
  ModelResult m;
  const vs::VringDesc* table = desc;
  uint32_t size = num;
  uint32_t i = head;
  bool indirect = false;
  uint32_t visited = 0;
  if (i >= size) return m;
  for (;;) {
    if (++visited > num) return m;
    vs::VringDesc d;
    std::memcpy(&d, reinterpret_cast<const uint8_t*>(table) + 16ull * i, sizeof d);
    if (d.flags & vs::VRING_DESC_F_INDIRECT) {
      if (indirect || (d.flags & vs::VRING_DESC_F_NEXT)) return m;
      if (d.len == 0 || d.len % 16 != 0 || d.len / 16 > num) return m;
      const uint8_t* t = model_translate(e, d.addr, d.len);
      if (!t) return m;
      table = reinterpret_cast<const vs::VringDesc*>(t);
      size = d.len / 16;
      i = 0;
      indirect = true;
      continue;
    }
    if (d.len != 0) {
      if (((d.flags & vs::VRING_DESC_F_WRITE) != 0) != want_write) return m;
      uint8_t* p = model_translate(e, d.addr, d.len);
      if (!p) return m;
      if (static_cast<int>(m.bufs.size()) >= max_bufs) return m;
      m.bufs.push_back({p, d.len});
      m.total += d.len;
    }
    if (!(d.flags & vs::VRING_DESC_F_NEXT)) break;
    i = d.next;
    if (i >= size) return m;
  }
  m.ok = true;
  return m;
}

// Reads (and for writable chains writes) every byte of every piece, and checks the sg helpers against a plain
// concatenation of the pieces.
void touch(const Env& e, const vs::Buf* b, int n, uint64_t total, bool writable, uint8_t seed) {
  uint64_t sum = 0;
  for (int i = 0; i < n; i++) {
    FUZZ_CHECK(b[i].len > 0);
    FUZZ_CHECK(inside_one_region(e, b[i].addr, b[i].len));
    sum += b[i].len;
  }
  FUZZ_CHECK(sum == total);
  // Bounded work per input: pieces can add up to 256 times a region.
  const uint64_t cap = total < 65536 ? total : 65536;
  std::vector<uint8_t> flat;
  flat.reserve(cap);
  for (int i = 0; i < n && flat.size() < cap; i++) {
    uint64_t k = b[i].len;
    if (k > cap - flat.size()) k = cap - flat.size();
    flat.insert(flat.end(), b[i].addr, b[i].addr + k);
  }
  std::vector<uint8_t> via_sg(cap + 1, 0xee);
  FUZZ_CHECK(vs::sg_read(b, n, 0, via_sg.data(), cap) == cap);
  FUZZ_CHECK((cap == 0 || std::memcmp(flat.data(), via_sg.data(), cap) == 0) && via_sg[cap] == 0xee);
  // Reading past the end is cut short, never out of bounds.
  if (total < 65536) {
    std::vector<uint8_t> tail(64);
    uint64_t off = total > 10 ? total - 10 : 0;
    FUZZ_CHECK(vs::sg_read(b, n, off, tail.data(), 64) == total - off);
  }
  uint16_t c1 = vs::sg_csum(b, n, 0, cap);
  (void)c1;
  if (writable) {
    std::vector<uint8_t> data(cap);
    for (uint64_t i = 0; i < cap; i++) data[i] = static_cast<uint8_t>(seed + i);
    FUZZ_CHECK(vs::sg_write(b, n, 0, data.data(), cap) == cap);
  }
}

int one_input(const uint8_t* data, size_t size) {
  Env& e = env();
  // Zero-extend short inputs: the header and tables read from here.
  auto byte = [&](size_t i) -> uint8_t { return i < size ? data[i] : 0; };
  auto u16 = [&](size_t i) -> uint16_t { return static_cast<uint16_t>(byte(i) | byte(i + 1) << 8); };

  const uint32_t num = 1u << (byte(0) & 15);
  const bool event_idx = byte(0) & 0x10;
  const int max_read_bufs = byte(1) == 0 ? vs::kMaxChainBufs : byte(1);  // 1..256
  const uint16_t last_avail = u16(2);
  const uint16_t avail_idx = u16(4);
  const uint16_t avail_flags = u16(6);
  const uint16_t used_event = u16(8);
  const uint16_t used_idx = u16(10);
  const size_t patch_bytes = u16(12) % 4096;
  size_t pos = 16;

  // Guest memory: cleared, then patched from the input.
  for (int i = 0; i < kNumRegions; i++) std::memset(e.host[i], 0, kRegions[i].size);
  size_t patch_end = pos + patch_bytes;
  while (pos + 4 <= patch_end && pos + 4 <= size) {
    int r = byte(pos) % kNumRegions;
    uint64_t off = u16(pos + 1) % kRegions[r].size;
    size_t len = byte(pos + 3);
    pos += 4;
    if (len > size - pos) len = size - pos;
    if (len > kRegions[r].size - off) len = kRegions[r].size - off;
    std::memcpy(e.host[r] + off, data + pos, len);
    pos += len;
  }
  pos = patch_end;

  // The rings, each a heap block of exactly its size (virtio 1.1 2.6: with the event-index words).
  std::vector<uint8_t> avail_mem(6 + 2ull * num);
  std::vector<uint8_t> used_mem(6 + 8ull * num);  // operator new: aligned for the 4-byte used elements
  std::unique_ptr<vs::VringDesc[]> desc(new vs::VringDesc[num]);
  // Copies [pos, pos+len) of the input to out, zero-filling what the input does not have.
  auto take = [&](void* out, size_t at, size_t len) {
    size_t have = at < size ? size - at : 0;
    if (have > len) have = len;
    if (have) std::memcpy(out, data + at, have);
    std::memset(static_cast<uint8_t*>(out) + have, 0, len - have);
  };
  take(avail_mem.data() + 4, pos, 2ull * num + 2);  // ring[] and used_event
  pos += 2ull * num;
  take(desc.get(), pos, 16ull * num);
  auto* avail = reinterpret_cast<vs::VringAvail*>(avail_mem.data());
  auto* used = reinterpret_cast<vs::VringUsed*>(used_mem.data());
  avail->flags = avail_flags;
  avail->idx = avail_idx;
  avail->ring[num] = used_event;
  std::vector<uint16_t> ring_copy(num);
  std::memcpy(ring_copy.data(), avail->ring, 2ull * num);

  vs::Vring v;
  v.num = static_cast<uint16_t>(num);  // 32768 fits; 65536 is never built (SET_VRING_NUM refuses it)
  v.desc = desc.get();
  v.avail = avail;
  v.used = used;
  v.addr_set = v.started = v.enabled = true;
  v.event_idx = event_idx;
  v.last_avail_idx = last_avail;
  v.used_idx = v.published_used = used_idx;
  used->idx = used_idx;

  // avail_count: a jump by more than the queue size breaks the ring (and is counted), else it is the distance.
  const uint16_t dist = static_cast<uint16_t>(avail_idx - last_avail);
  uint16_t n = v.avail_count();
  if (dist > num) {
    FUZZ_CHECK(n == 0 && v.broken && v.counters.drops[vs::kDropRingBroken].get() == 1);
    FUZZ_CHECK(!v.ready());
    v.avail_count();  // counted once, however often it is seen
    FUZZ_CHECK(v.counters.drops[vs::kDropRingBroken].get() == 1);
    return 0;
  }
  FUZZ_CHECK(n == dist && !v.broken && v.cached_avail == avail_idx);
  FUZZ_CHECK(v.avail_cached(1) == n);
  if (n > kMaxWalks) n = kMaxWalks;

  vs::Buf bufs[vs::kMaxChainBufs], slow[vs::kMaxChainBufs], gather[vs::kMaxChainBufs];
  int gathered = 0;
  uint64_t gathered_total = 0;
  for (uint16_t i = 0; i < n; i++) {
    const uint16_t head = v.avail_head(i);
    FUZZ_CHECK(head == ring_copy[static_cast<uint16_t>(last_avail + i) & (num - 1)]);

    // Transmit side: device-readable pieces.
    int nb = -1, ns = -1;
    uint64_t total = ~0ull, total_s = ~0ull;
    vs::ChainStatus st = v.walk(*e.mem, head, false, bufs, &nb, &total, max_read_bufs);
    vs::ChainStatus ss = v.walk_slow(*e.mem, head, false, slow, &ns, &total_s, max_read_bufs);
    ModelResult m = model_walk(e, desc.get(), num, head, false, max_read_bufs);
    FUZZ_CHECK(st == ss);
    FUZZ_CHECK((st == vs::ChainStatus::kOk) == m.ok);
    if (st == vs::ChainStatus::kOk) {
      FUZZ_CHECK(nb == ns && total == total_s && nb <= max_read_bufs);
      FUZZ_CHECK(nb == static_cast<int>(m.bufs.size()) && total == m.total);
      for (int k = 0; k < nb; k++) {
        FUZZ_CHECK(bufs[k].addr == slow[k].addr && bufs[k].len == slow[k].len);
        FUZZ_CHECK(bufs[k].addr == m.bufs[k].addr && bufs[k].len == m.bufs[k].len);
      }
      touch(e, bufs, nb, total, false, 0);
    }
    FUZZ_CHECK(std::strcmp(vs::chain_status_name(st), "?") != 0);

    // Receive side: device-writable pieces of several chains gathered into one scratch array, as the
    // mergeable-buffer enqueue does, with the room left as max_bufs (0 once full).
    int cnt = -1;
    uint64_t len = ~0ull;
    const int room = vs::kMaxChainBufs - gathered;
    vs::ChainStatus wt = v.walk(*e.mem, head, true, gather + gathered, &cnt, &len, room);
    ModelResult mw = model_walk(e, desc.get(), num, head, true, room);
    FUZZ_CHECK((wt == vs::ChainStatus::kOk) == mw.ok);
    if (wt == vs::ChainStatus::kOk) {
      FUZZ_CHECK(cnt >= 0 && cnt <= room && cnt == static_cast<int>(mw.bufs.size()) && len == mw.total);
      for (int k = 0; k < cnt; k++)
        FUZZ_CHECK(gather[gathered + k].addr == mw.bufs[k].addr && gather[gathered + k].len == mw.bufs[k].len);
      touch(e, gather + gathered, cnt, len, true, static_cast<uint8_t>(i));
      gathered += cnt;
      gathered_total += len;
    }
    v.put_used(head, static_cast<uint32_t>(total == ~0ull ? 0 : total));
  }

  // The single copy of a frame from one chain's pieces into the gathered ones never leaves either. The
  // gathered pieces are moved to the second mapping: another port's view of (here) the same memory.
  for (int k = 0; k < gathered; k++) {
    for (int r = 0; r < kNumRegions; r++) {
      if (gather[k].addr >= e.host[r] && gather[k].addr < e.host[r] + kRegions[r].size) {
        gather[k].addr = e.other_host[r] + (gather[k].addr - e.host[r]);
        break;
      }
    }
  }
  if (n > 0 && gathered > 0) {
    int nb;
    uint64_t total;
    if (v.walk(*e.mem, v.avail_head(0), false, bufs, &nb, &total, vs::kMaxChainBufs) == vs::ChainStatus::kOk &&
        nb > 0) {
      uint64_t k = total < gathered_total ? total : gathered_total;
      if (k > 65536) k = 65536;
      vs::sg_copy(bufs, nb, 0, gather, gathered, 0, k);
      uint64_t soff = byte(14) % (total + 1), doff = byte(15) % (gathered_total + 1);
      uint64_t k2 = total - soff < gathered_total - doff ? total - soff : gathered_total - doff;
      if (k2 > 65536) k2 = 65536;
      vs::sg_copy(bufs, nb, soff, gather, gathered, doff, k2);
    }
  }

  // Used ring: the entries and index land in the used block (ASan checks its size), notification logic runs.
  v.last_avail_idx = static_cast<uint16_t>(v.last_avail_idx + n);
  v.publish();
  FUZZ_CHECK(used->idx == static_cast<uint16_t>(used_idx + n) && v.published_used == used->idx);
  for (uint16_t i = 0; i < n; i++)
    FUZZ_CHECK(used->ring[static_cast<uint16_t>(used_idx + i) & (num - 1)].id ==
               ring_copy[static_cast<uint16_t>(last_avail + i) & (num - 1)]);
  v.enable_kicks();
  v.disable_kicks();
  if (event_idx) {
    uint16_t avail_event;
    std::memcpy(&avail_event, reinterpret_cast<uint8_t*>(&used->ring[num]), 2);
    FUZZ_CHECK(avail_event == v.last_avail_idx);
  }
  v.mark_broken();
  FUZZ_CHECK(v.broken && !v.ready());
  v.stop_and_reset_state();
  FUZZ_CHECK(!v.broken && !v.started);
  return 0;
}

}  // namespace fuzz_vring

#undef FUZZ_CHECK

#ifndef VS_FUZZ_NO_ENTRY
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) { return fuzz_vring::one_input(data, size); }
#endif
