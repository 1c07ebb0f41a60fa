// One poll thread's own state: the work items it polls (datapath.h PollItem, built by Engine::rebuild() while it is
// parked), its counters, and how it sleeps when there is nothing to do: kicks asked for on every item, then one
// epoll_wait over their wake fds and its own wake eventfd. Engine (engine.h) runs the thread and its park protocol.
#pragma once
#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

#include "core/counters.h"
#include "switch/datapath.h"

namespace vs {

struct ThreadCounters {
  Counter busy_cycles;  // TSC cycles of poll passes that moved packets
  Counter idle_cycles;  // TSC cycles of poll passes that found nothing
  Counter packets;      // frames taken from guests' transmit queues
  Counter busy_passes;  // poll passes that moved packets: packets / busy_passes is the mean burst per pass
  Counter sleeps;       // times the thread slept on kick eventfds
  Counter parks;        // times the thread parked for a control change (exec)
  std::atomic<bool> sleeping{false};
};

// TSC ticks per second, measured once (20 ms against the steady clock) at the first call: turns the cycle
// counters into seconds.
uint64_t tsc_hz();

struct PollThread {
  int index;
  std::thread th;
  int wake_fd = -1;
  int epoll_fd = -1;
  uint64_t epoll_gen = ~0ull;
  std::vector<PollItem> items;  // the queues this thread polls; rebuilt in exec()
  bool nofd_ring = false;       // some ring has no kick fd: sleep with a short timeout
  ThreadCounters counters;

  // No traffic for a while: asks every item to wake the thread and sleeps on their wake fds, unless work came in
  // meanwhile or a park is requested. gen: the engine's reconfiguration count (the epoll set is rebuilt when it
  // moved since the last sleep).
  void sleep_on_kicks(uint64_t gen, const std::atomic<bool>& park_requested);
};

}  // namespace vs
