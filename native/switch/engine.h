// The switch's engine: the ports it owns, the forwarding database, and the poll threads that move frames between
// them, with the park protocol by which the control thread changes what they read. VhostControl (vhost_control.h)
// and Switch (switch.h) build the control operations on it.
//
// Threading: poll threads own the packet path. The control thread changes what they read only inside exec(),
// which parks every poll thread between bursts (they hold no guest pointers then), applies the change,
// rebuilds the threads' work lists and releases them: one simple epoch protocol for every control change
// (new memory table, ring stopped by GET_VRING_BASE, port added or removed), never a lock per packet.
// What they cannot see changes without a park: a stopped ring's configuration, the memory and features of a
// port with no started ring (SET_VRING_KICK's park applies them), call/err fds and `enabled` (read atomically).
// Every control call checks its request before it parks: a refused one costs the other ports nothing.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "core/counters.h"
#include "switch/datapath.h"
#include "switch/fdb.h"
#include "switch/poll_thread.h"
#include "switch/port.h"
#include "switch/status.h"

namespace vs {

struct SwitchOptions {
  int threads = 1;         // 0: no poll threads; the owner calls poll_once() (benchmarks, deterministic tests)
  std::vector<int> cpus;   // cpus[t] for poll thread t; -1 or missing: not pinned
  uint32_t aging = 300;    // seconds
  uint32_t fdb_log2 = 16;  // FDB slots = 2^fdb_log2
  uint32_t idle_us = 1000;  // busy-poll this long without traffic before sleeping on kicks (a preempted
                            // peer can pause for hundreds of microseconds under load)
};

class Engine {
 public:
  explicit Engine(SwitchOptions opts);
  ~Engine();
  void close();

  // With threads = 0: one poll pass over every transmit queue on the calling thread; returns frames taken.
  uint32_t poll_once();
  int thread_count() const { return static_cast<int>(threads_.size()); }
  int thread_cpu(int t) const { return t < static_cast<int>(opts_.cpus.size()) ? opts_.cpus[t] : -1; }
  // The queues poll thread t polls now: a guest's queue pair (its transmit ring) or a NIC queue. Call from the
  // control thread (the lists change only inside exec(), on that thread).
  struct QueueRef {
    uint32_t port;
    uint32_t queue;
    bool pinned;  // by the port's queue_threads, not placed by the switch
  };
  std::vector<QueueRef> thread_queues(int t) const;
  const ThreadCounters& thread_counters(int t) const { return threads_[t]->counters; }
  // Times the poll threads were parked: for control calls, and by the switch itself (the respread after
  // SET_VRING_ENABLE, closing retired fds). A refused control call never parks them.
  uint64_t control_parks() const { return control_parks_.get(); }
  uint64_t housekeeping_parks() const { return housekeeping_parks_.get(); }

  Fdb& fdb() { return fdb_; }
  uint32_t now() const { return now_.load(std::memory_order_relaxed); }

  // --- used by the packet path (datapath.cc) ---
  Port* port_by_id(uint32_t id) const { return id < by_id_.size() ? by_id_[id] : nullptr; }
  const std::vector<Port*>& ports() const { return list_; }
  bool shared_rx() const { return threads_.size() > 1; }

 protected:
  enum class ParkCause { kControl, kHousekeeping };
  // Parks every poll thread, runs fn, rebuilds what the threads read and releases them.
  void exec(const std::function<void()>& fn, ParkCause cause = ParkCause::kControl);
  // A change the poll threads cannot see (a stopped ring, an idle port), serialised with exec() but not parking.
  void apply_unparked(const std::function<void()>& fn);
  // Runs fn on the port inside exec(), or says the port does not exist (without parking).
  Status with_port(uint32_t id, const std::function<Status(Port&)>& fn);
  Port* find_port(uint32_t id) const;
  // Closes fd once no poll thread can be about to write it (at the next park).
  void retire_fd(int fd);
  // A guest's memory file shrank under us: stops the rings of the port that owns addr (see engine.cc).
  void recover_from_fault(PollContext& c, uintptr_t addr);

  SwitchOptions opts_;
  Fdb fdb_;
  std::atomic<uint32_t> now_{0};
  uint32_t next_id_ = 0;
  std::map<uint32_t, std::unique_ptr<Port>> ports_;  // owned here; changed only inside exec()
  // A ring was enabled or disabled without a park: the next housekeeping round reconfigures once, so that
  // frames spread again over the receive queues enabled now (until then, a disabled queue is skipped per frame).
  std::atomic<bool> respread_{false};

 private:
  void rebuild();
  PollThread* place(const Port& p, uint32_t queue, std::vector<size_t>& load);
  void run(PollThread* t);
  bool poll_loop(PollThread* t, PollContext& c);
  void park();
  void housekeeping();

  std::vector<Port*> by_id_;  // id -> port, for the packet path
  std::vector<Port*> list_;   // ports in id order, for flooding
  std::vector<std::unique_ptr<PollThread>> threads_;
  std::unique_ptr<PollThread> manual_;  // threads = 0: the work list poll_once() runs
  // (port id, queue) -> poll thread. A queue keeps its thread while its port lives, so adding or removing a port
  // moves no other port's queues.
  std::map<std::pair<uint32_t, uint32_t>, int> placement_;
  uint64_t gen_ = 0;  // bumped by every exec(): poll threads rebuild their epoll sets when it moves
  // Call and err fds replaced without a park: a poll thread may still be about to write the old one, so it is
  // closed at the next park (exec), which comes at the latest after kMaxRetiredFds of them.
  static constexpr size_t kMaxRetiredFds = 64;
  std::vector<int> retired_fds_;

  // The park protocol.
  std::mutex park_mu_;
  std::condition_variable park_cv_;  // poll threads wait here while parked
  std::condition_variable ctl_cv_;   // the control thread waits here for all to park
  std::atomic<bool> park_requested_{false};
  int parked_ = 0;
  bool stopping_ = false;
  std::mutex exec_mu_;  // one control change at a time
  Counter control_parks_, housekeeping_parks_;

  std::thread housekeeper_;
  std::mutex hk_mu_;
  std::condition_variable hk_cv_;
  bool closed_ = false;
};

}  // namespace vs
