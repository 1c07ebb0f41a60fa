#include "core/fault_guard.h"

#include <signal.h>

#include <atomic>
#include <cstring>
#include <mutex>

namespace vs {

thread_local FaultGuard* tl_fault_guard = nullptr;

namespace {

// A fixed table readable from a signal handler without locks: a slot is live while its base is non-zero.
constexpr int kSlots = 4096;
struct Range {
  std::atomic<uintptr_t> base{0};
  std::atomic<uintptr_t> end{0};
};
Range g_ranges[kSlots];
std::mutex g_mu;  // writers only
struct sigaction g_previous;

bool in_guest_mapping(uintptr_t a) {
  for (Range& r : g_ranges) {
    uintptr_t b = r.base.load(std::memory_order_acquire);
    if (b && a >= b && a < r.end.load(std::memory_order_relaxed)) return true;
  }
  return false;
}

void on_sigbus(int sig, siginfo_t* info, void* uctx) {
  uintptr_t a = reinterpret_cast<uintptr_t>(info->si_addr);
  if (FaultGuard* g = tl_fault_guard) {
    if (in_guest_mapping(a)) {
      tl_fault_guard = nullptr;
      g->addr = a;
      siglongjmp(g->env, 1);
    }
  }
  // Not ours: behave as if we had never been installed.
  if (g_previous.sa_flags & SA_SIGINFO) {
    if (g_previous.sa_sigaction) return g_previous.sa_sigaction(sig, info, uctx);
  } else if (g_previous.sa_handler != SIG_DFL && g_previous.sa_handler != SIG_IGN && g_previous.sa_handler) {
    return g_previous.sa_handler(sig);
  }
  signal(sig, SIG_DFL);
  raise(sig);
}

}  // namespace

void install_fault_handler() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction sa;
    std::memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sigbus;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, &g_previous);
  });
}

void register_guest_mapping(const void* base, size_t len) {
  std::lock_guard<std::mutex> g(g_mu);
  for (Range& r : g_ranges) {
    if (r.base.load(std::memory_order_relaxed) == 0) {
      r.end.store(reinterpret_cast<uintptr_t>(base) + len, std::memory_order_relaxed);
      r.base.store(reinterpret_cast<uintptr_t>(base), std::memory_order_release);
      return;
    }
  }
  // Table full: the mapping works, it is just not recoverable after a truncation.
}

void unregister_guest_mapping(const void* base) {
  std::lock_guard<std::mutex> g(g_mu);
  for (Range& r : g_ranges) {
    if (r.base.load(std::memory_order_relaxed) == reinterpret_cast<uintptr_t>(base)) {
      r.base.store(0, std::memory_order_release);
      return;
    }
  }
}

}  // namespace vs
