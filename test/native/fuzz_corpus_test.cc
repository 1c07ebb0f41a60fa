// The fuzz targets (fuzz/fuzz_*.cc) as plain native tests, built with g++ by scripts/native-test.sh (and so under
// ASan+UBSan with --sanitize): every corpus file in fuzz/corpus/<target>/ and fuzz/repro/<target>/, then a fixed
// number of deterministic mutations of them (fixed seed, the same inputs on every run). This keeps the fuzz
// invariants checked where clang/libFuzzer are not installed; coverage-guided runs are scripts/fuzz.sh.
// An invariant failure aborts with its message (as under libFuzzer); a sanitizer finding stops the binary.
#define VS_FUZZ_NO_ENTRY
#include "../../fuzz/fuzz_memtable.cc"
#include "../../fuzz/fuzz_vring.cc"
#include "../../fuzz/fuzz_packed.cc"

#include <dirent.h>

#include <algorithm>
#include <fstream>
#include <iterator>

#include "harness.h"

namespace {

// Line-buffered output: a finding aborts the binary, and what passed before it should still show.
const int g_line_buffered = std::setvbuf(stdout, nullptr, _IOLBF, 0);

std::vector<std::vector<uint8_t>> corpus(const std::string& target) {
  std::vector<std::vector<uint8_t>> out;
  for (std::string dir : {"fuzz/corpus/" + target, "fuzz/repro/" + target}) {
    DIR* d = opendir(dir.c_str());
    if (!d) continue;
    std::vector<std::string> names;
    while (dirent* e = readdir(d))
      if (e->d_name[0] != '.') names.push_back(dir + "/" + e->d_name);
    closedir(d);
    std::sort(names.begin(), names.end());
    for (const std::string& n : names) {
      std::ifstream f(n, std::ios::binary);
      out.emplace_back(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
    }
  }
  return out;
}

struct Rng {
  uint64_t s;
  uint64_t next() {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
  }
  uint64_t below(uint64_t n) { return n ? next() % n : 0; }
};

// Values at the edges the targets check: zero, all ones, sign bits, the fuzz_vring region bounds, sizes.
constexpr uint64_t kInteresting[] = {0,      1,          0x7f,       0x80,       0xff,      0xffff,
                                     0x1000, 0x3000,     0x10000,    0x11700,   0x8000,    0xffffffffull,
                                     1ull << 32, 1ull << 63, ~0ull,      ~0ull - 15, 0xffffffffffffe000ull};

std::vector<uint8_t> mutate(std::vector<uint8_t> in, Rng& r) {
  int n = 1 + static_cast<int>(r.below(4));
  for (int i = 0; i < n; i++) {
    if (in.empty()) in.push_back(0);
    size_t at = r.below(in.size());
    switch (r.below(6)) {
      case 0: in[at] ^= static_cast<uint8_t>(1u << r.below(8)); break;
      case 1: in[at] = static_cast<uint8_t>(r.next()); break;
      case 2: in.insert(in.begin() + at, static_cast<uint8_t>(r.next())); break;
      case 3: in.erase(in.begin() + at); break;
      case 4: {
        uint64_t v = kInteresting[r.below(sizeof kInteresting / sizeof kInteresting[0])];
        for (int k = 0; k < 8 && at + k < in.size(); k++) in[at + k] = static_cast<uint8_t>(v >> (8 * k));
        break;
      }
      default: {
        // A chunk of one more input of the same corpus would be the classic crossover; a copy within the
        // input (e.g. one descriptor over another) is the cheap version.
        size_t from = r.below(in.size()), len = 1 + r.below(16);
        for (size_t k = 0; k < len && from + k < in.size() && at + k < in.size(); k++) in[at + k] = in[from + k];
      }
    }
  }
  return in;
}

void replay(const std::string& target, int (*one)(const uint8_t*, size_t), int mutations) {
  auto inputs = corpus(target);
  VT_CHECK(!inputs.empty());  // run from the repository root, as native-test.sh does
  for (const auto& in : inputs) one(in.data(), in.size());
  Rng r{0x5eed5eed12345678ull};
  for (int i = 0; i < mutations; i++) {
    auto m = mutate(inputs[r.below(inputs.size())], r);
    one(m.data(), m.size());
  }
  std::printf("     %s: %zu corpus inputs + %d mutations\n", target.c_str(), inputs.size(), mutations);
}

}  // namespace

VT_TEST(fuzz_vring_corpus_and_mutations) { replay("vring", fuzz_vring::one_input, 50000); }

VT_TEST(fuzz_packed_corpus_and_mutations) { replay("packed", fuzz_packed::one_input, 50000); }

VT_TEST(fuzz_memtable_corpus_and_mutations) { replay("memtable", fuzz_memtable::one_input, 50000); }

int main() { return vt::run_all(); }
