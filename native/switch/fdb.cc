#include "switch/fdb.h"

namespace vs {

Fdb::Fdb(uint32_t capacity_log2)
    : slots_(new Slot[size_t(1) << capacity_log2]), mask_((uint64_t(1) << capacity_log2) - 1),
      shift_(64 - static_cast<int>(capacity_log2)) {}

Fdb::Slot* Fdb::find_locked(uint64_t k) {
  uint64_t i = hash(k);
  for (uint64_t n = 0; n <= mask_; n++, i = (i + 1) & mask_) {
    uint64_t s = slots_[i].key.load(std::memory_order_relaxed);
    if (s == k) return &slots_[i];
    if (s == kEmpty) break;
  }
  return nullptr;
}

void Fdb::learn(uint64_t k, uint32_t port, uint32_t now) {
  // Fast path without the lock: the entry is there and on this port.
  uint64_t i = hash(k);
  for (uint64_t n = 0; n <= mask_; n++, i = (i + 1) & mask_) {
    Slot& s = slots_[i];
    uint64_t sk = s.key.load(std::memory_order_acquire);
    if (sk == k) {
      if (s.port.load(std::memory_order_relaxed) == port) {
        if (s.seen.load(std::memory_order_relaxed) != now) s.seen.store(now, std::memory_order_relaxed);
        return;
      }
      break;  // moved: take the lock
    }
    if (sk == kEmpty) break;
  }
  lock();
  if (Slot* s = find_locked(k)) {
    // A static entry is the operator's word: learning never moves it.
    if (!s->is_static.load(std::memory_order_relaxed)) {
      s->port.store(port, std::memory_order_relaxed);
      s->seen.store(now, std::memory_order_relaxed);
      bump();
    }
    unlock();
    return;
  }
  // Keep the table under 75% full so that probes stay short and always end at an empty slot.
  if (count_.load(std::memory_order_relaxed) >= (mask_ + 1) / 4 * 3) {
    unlock();
    return;
  }
  for (uint64_t i = hash(k);; i = (i + 1) & mask_) {
    Slot& s = slots_[i];
    uint64_t sk = s.key.load(std::memory_order_relaxed);
    if (sk == kEmpty || sk == kTombstone) {
      // Value before key: a concurrent lookup that sees the key also sees its port.
      s.port.store(port, std::memory_order_relaxed);
      s.seen.store(now, std::memory_order_relaxed);
      s.is_static.store(false, std::memory_order_relaxed);
      s.key.store(k, std::memory_order_release);
      count_.fetch_add(1, std::memory_order_relaxed);
      bump();
      break;
    }
  }
  unlock();
}

bool Fdb::add_static(uint64_t k, uint32_t port) {
  lock();
  Slot* s = find_locked(k);
  if (!s) {
    if (count_.load(std::memory_order_relaxed) >= (mask_ + 1) / 4 * 3) {
      unlock();
      return false;
    }
    for (uint64_t i = hash(k);; i = (i + 1) & mask_) {
      uint64_t sk = slots_[i].key.load(std::memory_order_relaxed);
      if (sk == kEmpty || sk == kTombstone) {
        s = &slots_[i];
        count_.fetch_add(1, std::memory_order_relaxed);
        break;
      }
    }
  }
  s->port.store(port, std::memory_order_relaxed);
  s->is_static.store(true, std::memory_order_relaxed);
  s->seen.store(0, std::memory_order_relaxed);
  s->key.store(k, std::memory_order_release);
  bump();
  unlock();
  return true;
}

bool Fdb::remove(uint64_t k) {
  lock();
  Slot* s = find_locked(k);
  if (s) {
    s->key.store(kTombstone, std::memory_order_release);
    count_.fetch_sub(1, std::memory_order_relaxed);
    bump();
  }
  unlock();
  return s != nullptr;
}

void Fdb::flush(uint32_t port, bool include_static) {
  lock();
  for (uint64_t i = 0; i <= mask_; i++) {
    Slot& s = slots_[i];
    uint64_t sk = s.key.load(std::memory_order_relaxed);
    if (sk == kEmpty || sk == kTombstone) continue;
    if (port != kNoPort && s.port.load(std::memory_order_relaxed) != port) continue;
    if (!include_static && s.is_static.load(std::memory_order_relaxed)) continue;
    s.key.store(kTombstone, std::memory_order_release);
    count_.fetch_sub(1, std::memory_order_relaxed);
  }
  bump();
  unlock();
}

size_t Fdb::age(uint32_t now, uint32_t aging) {
  size_t removed = 0;
  lock();
  for (uint64_t i = 0; i <= mask_; i++) {
    Slot& s = slots_[i];
    uint64_t sk = s.key.load(std::memory_order_relaxed);
    if (sk == kEmpty || sk == kTombstone || s.is_static.load(std::memory_order_relaxed)) continue;
    if (now - s.seen.load(std::memory_order_relaxed) >= aging) {
      s.key.store(kTombstone, std::memory_order_release);
      count_.fetch_sub(1, std::memory_order_relaxed);
      removed++;
    }
  }
  if (removed) bump();
  unlock();
  return removed;
}

std::vector<Fdb::Entry> Fdb::list(uint32_t now) const {
  std::vector<Entry> out;
  lock();
  for (uint64_t i = 0; i <= mask_; i++) {
    const Slot& s = slots_[i];
    uint64_t sk = s.key.load(std::memory_order_relaxed);
    if (sk == kEmpty || sk == kTombstone) continue;
    bool st = s.is_static.load(std::memory_order_relaxed);
    out.push_back({sk, s.port.load(std::memory_order_relaxed), st ? 0 : now - s.seen.load(std::memory_order_relaxed), st});
  }
  unlock();
  return out;
}

}  // namespace vs
