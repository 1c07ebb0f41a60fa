#include "switch/poll_thread.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <x86intrin.h>

#include <chrono>

namespace vs {

uint64_t tsc_hz() {
  static uint64_t hz = [] {
    auto t0 = std::chrono::steady_clock::now();
    uint64_t c0 = __rdtsc();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    uint64_t c1 = __rdtsc();
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return static_cast<uint64_t>((c1 - c0) / s);
  }();
  return hz;
}

// Drivers are asked to kick again and the thread sleeps on the kick eventfds, so an idle switch costs no CPU. A
// frame that arrived while we turned kicks on is caught by the re-check.
void PollThread::sleep_on_kicks(uint64_t gen, const std::atomic<bool>& park_requested) {
  bool pending = false;
  for (const PollItem& it : items) pending |= it.ops->arm(it, true);
  if (!pending && !park_requested.load(std::memory_order_acquire)) {
    if (epoll_gen != gen) {
      // The set of kick fds changed since we last slept: build the epoll set anew.
      if (epoll_fd >= 0) ::close(epoll_fd);
      epoll_fd = epoll_create1(EPOLL_CLOEXEC);
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.u64 = (uint64_t(1) << 32) | uint32_t(wake_fd);
      epoll_ctl(epoll_fd, EPOLL_CTL_ADD, wake_fd, &ev);
      for (const PollItem& it : items) {
        int fd = it.ops->wake_fd(it);
        if (fd < 0) continue;
        ev.data.u64 = (uint64_t(it.ops->wake_is_eventfd ? 1 : 0) << 32) | uint32_t(fd);
        epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &ev);
      }
      epoll_gen = gen;
    }
    counters.sleeping.store(true, std::memory_order_relaxed);
    counters.sleeps.inc();
    epoll_event evs[64];
    int n = epoll_wait(epoll_fd, evs, 64, nofd_ring ? 1 : 1000);
    for (int i = 0; i < n; i++) {
      // Drain eventfds (kicks are level-triggered in epoll); a NIC's data is taken by the next poll pass.
      bool is_eventfd = (evs[i].data.u64 >> 32) != 0;
      int fd = static_cast<int>(evs[i].data.u64 & 0xffffffff);
      if (is_eventfd) {
        eventfd_t v;
        eventfd_read(fd, &v);
      }
    }
    counters.sleeping.store(false, std::memory_order_relaxed);
  }
  for (const PollItem& it : items) it.ops->arm(it, false);
}

}  // namespace vs
