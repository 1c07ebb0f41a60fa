// The forwarding database: (VLAN, MAC) -> port, learned from source addresses, aged, with static entries.
// Open addressing with linear probing in a fixed table. Lookups take no lock (one per packet); changes
// (learning a new or moved MAC, aging, flush, static entries) take a spinlock and are rare next to lookups.
#pragma once
#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

namespace vs {

constexpr uint32_t kNoPort = 0xffffffff;

class Fdb {
 public:
  // 2^capacity_log2 slots; at most 75% are filled (2^21 slots hold 1.5M MACs).
  explicit Fdb(uint32_t capacity_log2 = 16);

  static uint64_t key(const uint8_t* mac, uint16_t vlan) {
    // The MAC as a 48-bit big-endian number (mac[0] highest), from two loads instead of six.
    uint32_t hi;
    uint16_t lo;
    std::memcpy(&hi, mac, sizeof hi);
    std::memcpy(&lo, mac + 4, sizeof lo);
    const uint64_t k = (uint64_t(__builtin_bswap32(hi)) << 16) | __builtin_bswap16(lo);
    return k | (uint64_t(vlan) << 48) | kValid;
  }

  uint32_t lookup(uint64_t k) const {
    // Bounded by the table size: tombstones could otherwise leave no empty slot to stop at.
    uint64_t i = hash(k);
    for (uint64_t n = 0; n <= mask_; n++, i = (i + 1) & mask_) {
      uint64_t s = slots_[i].key.load(std::memory_order_acquire);
      if (s == k) return slots_[i].port.load(std::memory_order_relaxed);
      if (s == kEmpty) break;
    }
    return kNoPort;
  }

  // Learns k on port at time now (seconds). Cheap when nothing changed: refreshes the timestamp at most
  // once a second without the lock.
  void learn(uint64_t k, uint32_t port, uint32_t now);
  bool add_static(uint64_t k, uint32_t port);
  // Removes k (static or learned); false when it was not there.
  bool remove(uint64_t k);
  void flush(uint32_t port = kNoPort, bool include_static = false);
  // Removes dynamic entries not seen for aging seconds; returns how many.
  size_t age(uint32_t now, uint32_t aging);

  struct Entry {
    uint64_t key;
    uint32_t port;
    uint32_t age;
    bool is_static;
  };
  std::vector<Entry> list(uint32_t now) const;
  size_t size() const { return count_.load(std::memory_order_relaxed); }
  // Bumped by every change of a key's port (new, moved, removed): lets a poll thread keep its last lookup.
  uint32_t generation() const { return gen_.load(std::memory_order_acquire); }
  size_t capacity() const { return mask_ + 1; }

  static void mac_of(uint64_t k, uint8_t* mac) {
    for (int i = 0; i < 6; i++) mac[i] = uint8_t(k >> (40 - 8 * i));
  }
  static uint16_t vlan_of(uint64_t k) { return uint16_t((k >> 48) & 0xfff); }

 private:
  static constexpr uint64_t kEmpty = 0;
  static constexpr uint64_t kTombstone = 1;        // never a valid key: valid keys carry kValid
  static constexpr uint64_t kValid = 1ull << 63;

  struct Slot {
    std::atomic<uint64_t> key{kEmpty};
    std::atomic<uint32_t> port{kNoPort};
    std::atomic<uint32_t> seen{0};
    std::atomic<bool> is_static{false};
  };

  uint64_t hash(uint64_t k) const { return (k * 0x9e3779b97f4a7c15ull) >> shift_; }
  Slot* find_locked(uint64_t k);
  void lock() const {
    while (lock_.test_and_set(std::memory_order_acquire)) __builtin_ia32_pause();
  }
  void unlock() const { lock_.clear(std::memory_order_release); }

  std::unique_ptr<Slot[]> slots_;
  uint64_t mask_;
  int shift_;
  std::atomic<size_t> count_{0};
  std::atomic<uint32_t> gen_{1};
  void bump() { gen_.fetch_add(1, std::memory_order_release); }
  mutable std::atomic_flag lock_ = ATOMIC_FLAG_INIT;
};

}  // namespace vs
