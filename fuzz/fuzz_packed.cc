// Coverage-guided fuzzing of the packed-ring chain parser (native/core/packed_vring.{h,cc}): everything a guest
// controls in a packed virtqueue comes from the input: the descriptor ring with its flags and buffer ids, the
// device's position and wrap counters, the driver event suppression structure, and the contents of guest memory
// (where indirect tables live). For each available chain, up to a burst, the target walks it as the transmit side
// does (device-readable) and as the receive side does (device-writable), gives it back used, and checks:
//   - walk() (inline fast path) and walk_slow() agree exactly;
//   - the outcome matches an independent model of the rules (virtio 1.1 2.7: every descriptor of a chain
//     available, at most the queue size of them, the buffer id in the last one and below the queue size, an
//     indirect table only as a chain's sole descriptor, a whole number of descriptors, not nested; direction;
//     zero-length pieces skipped; at most max_bufs pieces); the chain's extent whenever its end is found;
//   - every returned Buf lies inside one region, the pieces can be read (and written) whole;
//   - used descriptors land in the ring block (ASan sees it, exactly 16 * num bytes), the positions stay inside the
//     ring, and GET/SET_VRING_BASE round-trip the position and wrap counters;
//   - no crash, no ASan/UBSan report.
//
// Build and run: scripts/fuzz.sh (libFuzzer). Input layout (short inputs are zero-extended):
//   hdr[16] | patches (hdr.patch_bytes bytes of {region u8, offset u16, len u8, data[len]}) | descriptor ring
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
#include "core/packed_vring.h"
#include "core/sg.h"

namespace fuzz_packed {

#define FUZZ_CHECK(cond)                                                                               \
  do {                                                                                                 \
    if (!(cond)) {                                                                                     \
      std::fprintf(stderr, "fuzz_packed: invariant failed at %s:%d: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                                    \
    }                                                                                                  \
  } while (0)

// Two regions of one memfd: low memory, and one at the top of the guest address space.
struct RegionDef {
  uint64_t gpa, size, uva, file_off;
};
constexpr RegionDef kRegions[] = {
    {0x0, 0x4000, 0x7e0000000000ull, 0x0},
    {0xffffffffffffd000ull, 0x2fff, 0x7e0000100000ull, 0x4000},
};
constexpr int kNumRegions = 2;
constexpr uint64_t kFileSize = 0x8000;
constexpr int kMaxWalks = 32;

struct Env {
  std::unique_ptr<vs::GuestMemory> mem;
  uint8_t* host[kNumRegions];
};

Env& env() {
  static Env* e = [] {
    Env* x = new Env();
    int fd = memfd_create("fuzz-packed", MFD_CLOEXEC);
    FUZZ_CHECK(fd >= 0 && ftruncate(fd, kFileSize) == 0);
    std::vector<vs::MemRegionSpec> specs;
    for (const RegionDef& r : kRegions) specs.push_back({r.gpa, r.size, r.uva, r.file_off, dup(fd)});
    close(fd);
    std::string err;
    x->mem = vs::GuestMemory::Map(specs, err);
    FUZZ_CHECK(x->mem && x->mem->region_count() == kNumRegions);
    for (int i = 0; i < kNumRegions; i++) {
      x->host[i] = x->mem->gpa_to_host(kRegions[i].gpa, kRegions[i].size);
      FUZZ_CHECK(x->host[i] != nullptr);
    }
    return x;
  }();
  return *e;
}

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

enum class Outcome { kOk, kBad, kFatal };  // kBad: given back; kFatal: the chain's end is unknown
struct Model {
  Outcome out = Outcome::kFatal;
  std::vector<vs::Buf> bufs;
  uint64_t total = 0;
  uint16_t id = 0, ndesc = 0;
};

// The rules, written independently of PackedVring::walk_slow: the chain runs from slot idx over consecutive slots
// (wrapping, the wrap counter flipping) while NEXT is set; every descriptor must be available for the wrap
// counter of its slot, and there are at most num of them. Any other fault makes the chain bad but still ends it.
Model model_walk(const Env& e, const vs::VringPackedDesc* ring, uint32_t num, uint32_t idx, bool wrap,
                 bool want_write, int max_bufs) {
  Model m;
  bool bad = false;
  auto piece = [&](uint64_t addr, uint32_t len, bool writable) {
    if (bad || len == 0) return;
    if (writable != want_write) { bad = true; return; }
    uint8_t* p = model_translate(e, addr, len);
    if (!p || static_cast<int>(m.bufs.size()) >= max_bufs) { bad = true; return; }
    m.bufs.push_back({p, len});
    m.total += len;
  };
  for (uint32_t count = 1;; count++) {
    if (count > num) return m;
    vs::VringPackedDesc d = ring[idx];
    const bool avail = d.flags & vs::VRING_PACKED_DESC_F_AVAIL, used = d.flags & vs::VRING_PACKED_DESC_F_USED;
    if (avail != wrap || used == wrap) return m;
    const bool last = !(d.flags & vs::VRING_DESC_F_NEXT);
    if (d.flags & vs::VRING_DESC_F_INDIRECT) {
      if (count != 1 || !last || d.len == 0 || d.len % 16 || d.len / 16 > num) {
        bad = true;
      } else if (const uint8_t* t = model_translate(e, d.addr, d.len)) {
        for (uint32_t i = 0; i < d.len / 16 && !bad; i++) {
          vs::VringPackedDesc x;
          std::memcpy(&x, t + 16 * i, 16);
          if (x.flags & vs::VRING_DESC_F_INDIRECT) bad = true;
          else piece(x.addr, x.len, x.flags & vs::VRING_DESC_F_WRITE);
        }
      } else {
        bad = true;
      }
    } else {
      piece(d.addr, d.len, d.flags & vs::VRING_DESC_F_WRITE);
    }
    if (++idx == num) idx = 0, wrap = !wrap;
    if (last) {
      m.id = d.id;
      m.ndesc = static_cast<uint16_t>(count);
      m.out = bad || d.id >= num ? Outcome::kBad : Outcome::kOk;
      return m;
    }
  }
}

Outcome outcome(vs::ChainStatus st) {
  if (st == vs::ChainStatus::kOk) return Outcome::kOk;
  if (st == vs::ChainStatus::kLoop || st == vs::ChainStatus::kNotAvailable) return Outcome::kFatal;
  return Outcome::kBad;
}

void touch(const Env& e, const vs::Buf* b, int n, uint64_t total, bool writable) {
  uint64_t sum = 0;
  for (int i = 0; i < n; i++) {
    FUZZ_CHECK(b[i].len > 0 && inside_one_region(e, b[i].addr, b[i].len));
    sum += b[i].len;
  }
  FUZZ_CHECK(sum == total);
  const uint64_t cap = total < 65536 ? total : 65536;
  std::vector<uint8_t> flat(cap + 1, 0xee);
  FUZZ_CHECK(vs::sg_read(b, n, 0, flat.data(), cap) == cap && flat[cap] == 0xee);
  if (writable) FUZZ_CHECK(vs::sg_write(b, n, 0, flat.data(), cap) == cap);
}

int one_input(const uint8_t* data, size_t size) {
  Env& e = env();
  auto byte = [&](size_t i) -> uint8_t { return i < size ? data[i] : 0; };
  auto u16 = [&](size_t i) -> uint16_t { return static_cast<uint16_t>(byte(i) | byte(i + 1) << 8); };

  // Sizes that are not powers of two are legal for packed rings; small ones make laps and wraps likely.
  const uint32_t num = 1 + u16(0) % 300;
  const int max_bufs = byte(2) == 0 ? vs::kMaxChainBufs : byte(2);
  const uint16_t start = u16(4) % num;
  const bool start_wrap = byte(3) & 1;
  const bool event_idx = byte(3) & 2;
  const uint16_t ev_flags = byte(6) % 4;
  const uint16_t ev_off_wrap = u16(8);
  const size_t patch_bytes = u16(12) % 4096;
  size_t pos = 16;

  for (int i = 0; i < kNumRegions; i++) std::memset(e.host[i], 0, kRegions[i].size);
  const size_t patch_end = pos + patch_bytes;
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

  // The ring and the two event structures, heap blocks of exactly their size.
  std::unique_ptr<vs::VringPackedDesc[]> ring(new vs::VringPackedDesc[num]);
  const size_t have = pos < size ? size - pos : 0;
  const size_t ring_bytes = 16ull * num;
  std::memset(ring.get(), 0, ring_bytes);
  if (have) std::memcpy(ring.get(), data + pos, have < ring_bytes ? have : ring_bytes);
  std::unique_ptr<vs::VringPackedEvent> driver(new vs::VringPackedEvent{ev_off_wrap, ev_flags});
  std::unique_ptr<vs::VringPackedEvent> device(new vs::VringPackedEvent{0, 0});

  vs::PackedVring v;
  v.packed = true;
  v.num = static_cast<uint16_t>(num);
  v.desc = reinterpret_cast<vs::VringDesc*>(ring.get());
  v.avail = reinterpret_cast<vs::VringAvail*>(driver.get());
  v.used = reinterpret_cast<vs::VringUsed*>(device.get());
  v.addr_set = v.started = v.enabled = true;
  v.event_idx = event_idx;
  FUZZ_CHECK(v.set_base(start | (start_wrap ? vs::kPackedWrapBit : 0)));
  FUZZ_CHECK(!v.set_base(num));  // a slot outside the ring
  FUZZ_CHECK(v.last_avail_idx == start && v.used_idx == start && v.avail_wrap == start_wrap);
  // A snapshot of the ring as the guest wrote it: used descriptors are written over it as we go.
  std::vector<vs::VringPackedDesc> orig(ring.get(), ring.get() + num);

  vs::Buf bufs[vs::kMaxChainBufs], slow[vs::kMaxChainBufs];
  uint32_t taken_slots = 0;
  for (int i = 0; i < kMaxWalks && v.head_avail(); i++) {
    const uint16_t at = v.last_avail_idx;
    const bool wrap = v.avail_wrap;
    for (bool want_write : {false, true}) {
      int nb = -1, ns = -1;
      uint64_t total = ~0ull, total_s = ~0ull;
      vs::PackedChain ch{0xdead, 0}, cs{0xbeef, 0};
      vs::ChainStatus st = v.walk(*e.mem, at, wrap, want_write, bufs, &nb, &total, max_bufs, &ch);
      vs::ChainStatus ss = v.walk_slow(*e.mem, at, wrap, want_write, slow, &ns, &total_s, max_bufs, &cs);
      Model m = model_walk(e, orig.data(), num, at, wrap, want_write, max_bufs);
      FUZZ_CHECK(st == ss);
      FUZZ_CHECK(outcome(st) == m.out);
      FUZZ_CHECK(std::strcmp(vs::chain_status_name(st), "?") != 0);
      if (m.out == Outcome::kFatal) {
        v.mark_broken();
        FUZZ_CHECK(v.broken);
        return 0;
      }
      FUZZ_CHECK(ch.id == m.id && ch.ndesc == m.ndesc && cs.id == ch.id && cs.ndesc == ch.ndesc);
      FUZZ_CHECK(ch.ndesc >= 1 && ch.ndesc <= num);
      if (st == vs::ChainStatus::kOk) {
        FUZZ_CHECK(nb == ns && total == total_s && nb <= max_bufs && nb == static_cast<int>(m.bufs.size()));
        FUZZ_CHECK(total == m.total);
        for (int k = 0; k < nb; k++) {
          FUZZ_CHECK(bufs[k].addr == slow[k].addr && bufs[k].len == slow[k].len);
          FUZZ_CHECK(bufs[k].addr == m.bufs[k].addr && bufs[k].len == m.bufs[k].len);
        }
        touch(e, bufs, nb, total, want_write);
      }
      if (want_write) {
        const uint16_t used_at = v.used_idx;
        const bool used_wrap = v.used_wrap;
        v.put_used(ch.id, static_cast<uint32_t>(st == vs::ChainStatus::kOk ? total : 0), ch.ndesc, true);
        v.write_used();  // a burst of one: the shadow reaches the ring, as at publish()
        v.take(ch);
        taken_slots += ch.ndesc;
        // The used descriptor is where the chain began, and says so with the used wrap counter.
        FUZZ_CHECK(used_at == at && used_wrap == wrap);
        const uint16_t f = ring[at].flags;
        FUZZ_CHECK(static_cast<bool>(f & vs::VRING_PACKED_DESC_F_AVAIL) == wrap &&
                   static_cast<bool>(f & vs::VRING_PACKED_DESC_F_USED) == wrap && ring[at].id == ch.id);
        FUZZ_CHECK(v.last_avail_idx < num && v.used_idx == v.last_avail_idx && v.used_wrap == v.avail_wrap);
        // What the driver wrote past the used slot is the guest's again for the next chain's walk.
        orig[at] = ring[at];
      }
    }
  }
  FUZZ_CHECK(v.unsignalled == taken_slots);
  v.publish();
  FUZZ_CHECK(v.unsignalled == 0 && v.published_used == v.used_idx && v.published_wrap == v.used_wrap);
  v.enable_kicks();
  FUZZ_CHECK(device->flags == vs::RING_EVENT_FLAGS_ENABLE);
  v.disable_kicks();
  FUZZ_CHECK(device->flags == vs::RING_EVENT_FLAGS_DISABLE);
  // GET_VRING_BASE and back.
  const uint32_t base = v.get_base();
  FUZZ_CHECK((base & 0x7fff) == v.last_avail_idx && static_cast<bool>(base & 0x8000) == v.avail_wrap);
  FUZZ_CHECK((base >> 16) == (base & 0xffff));
  vs::PackedVring w;
  w.num = v.num;
  FUZZ_CHECK(w.set_base(base) && w.last_avail_idx == v.last_avail_idx && w.avail_wrap == v.avail_wrap);
  return 0;
}

}  // namespace fuzz_packed

#undef FUZZ_CHECK

#ifndef VS_FUZZ_NO_ENTRY
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) { return fuzz_packed::one_input(data, size); }
#endif
