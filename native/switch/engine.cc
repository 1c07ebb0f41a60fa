// The engine (engine.h): construction and shutdown, the park protocol, the work lists rebuilt at every park, the
// poll threads' loop and their recovery from guest-memory faults, and the housekeeping thread.
#include "switch/engine.h"

#include <pthread.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <x86intrin.h>

#include <algorithm>
#include <chrono>

#include "core/fault_guard.h"
#include "ports/af_xdp.h"
#include "ports/nic.h"
#include "switch/capture.h"

namespace vs {

Engine::Engine(SwitchOptions opts) : opts_(std::move(opts)), fdb_(opts_.fdb_log2) {
  if (opts_.threads < 0) opts_.threads = 0;
  tsc_hz();
  manual_ = std::make_unique<PollThread>();
  manual_->index = 0;
  for (int i = 0; i < opts_.threads; i++) {
    auto t = std::make_unique<PollThread>();
    t->index = i;
    t->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    threads_.push_back(std::move(t));
  }
  for (auto& t : threads_) {
    PollThread* tp = t.get();
    t->th = std::thread([this, tp] { run(tp); });
    int cpu = tp->index < static_cast<int>(opts_.cpus.size()) ? opts_.cpus[tp->index] : -1;
    if (cpu >= 0) {
      cpu_set_t set;
      CPU_ZERO(&set);
      CPU_SET(cpu, &set);
      pthread_setaffinity_np(t->th.native_handle(), sizeof set, &set);
    }
    pthread_setname_np(t->th.native_handle(), ("vs-poll" + std::to_string(tp->index)).c_str());
  }
  housekeeper_ = std::thread([this] { housekeeping(); });
}

Engine::~Engine() { close(); }

void Engine::close() {
  {
    std::lock_guard<std::mutex> g(hk_mu_);
    if (closed_) return;
    closed_ = true;
  }
  hk_cv_.notify_all();
  housekeeper_.join();
  {
    std::lock_guard<std::mutex> g(park_mu_);
    stopping_ = true;
  }
  park_requested_.store(true, std::memory_order_release);
  for (auto& t : threads_) eventfd_write(t->wake_fd, 1);
  park_cv_.notify_all();
  for (auto& t : threads_) {
    t->th.join();
    ::close(t->wake_fd);
    if (t->epoll_fd >= 0) ::close(t->epoll_fd);
  }
  ports_.clear();
  by_id_.clear();
  list_.clear();
  for (int fd : retired_fds_) ::close(fd);
  retired_fds_.clear();
}

// --- the park protocol ---

void Engine::exec(const std::function<void()>& fn, ParkCause cause) {
  std::lock_guard<std::mutex> serial(exec_mu_);
  std::unique_lock<std::mutex> lk(park_mu_);
  if (stopping_) {
    fn();
    return;
  }
  if (!threads_.empty()) (cause == ParkCause::kControl ? control_parks_ : housekeeping_parks_).inc();
  park_requested_.store(true, std::memory_order_release);
  for (auto& t : threads_) eventfd_write(t->wake_fd, 1);  // a sleeping thread parks too
  ctl_cv_.wait(lk, [this] { return parked_ == static_cast<int>(threads_.size()); });
  fn();
  rebuild();
  for (int fd : retired_fds_) ::close(fd);  // no poll thread can hold them now
  retired_fds_.clear();
  park_requested_.store(false, std::memory_order_release);
  lk.unlock();
  park_cv_.notify_all();
}

void Engine::apply_unparked(const std::function<void()>& fn) {
  std::lock_guard<std::mutex> serial(exec_mu_);  // the housekeeper's exec() reads ports in rebuild()
  fn();
}

void Engine::park() {
  std::unique_lock<std::mutex> lk(park_mu_);
  parked_++;
  ctl_cv_.notify_all();
  park_cv_.wait(lk, [this] { return !park_requested_.load(std::memory_order_acquire) || stopping_; });
  parked_--;
}

// Inside exec(): derive what the poll threads read (id map, flood list, ready receive queues, who polls
// which transmit queue) from the ports as they are now.
void Engine::rebuild() {
  gen_++;
  by_id_.assign(next_id_, nullptr);
  list_.clear();
  manual_->items.clear();
  for (auto& t : threads_) {
    t->items.clear();
    t->nofd_ring = false;
  }
  // Placements of removed ports go; the others count toward their thread's load.
  std::vector<size_t> load(threads_.size(), 0);
  for (auto it = placement_.begin(); it != placement_.end();) {
    if (!ports_.count(it->first.first) || it->second >= static_cast<int>(threads_.size())) {
      it = placement_.erase(it);
    } else {
      load[it->second]++;
      ++it;
    }
  }
  for (auto& [id, p] : ports_) {
    by_id_[id] = p.get();
    list_.push_back(p.get());
    p->refresh_rx_ready();
    p->refresh_log();
    for (size_t i = 1; i < p->vrings.size(); i += 2) {
      Vring* v = p->vrings[i].get();
      if (!v->polled()) continue;
      PollThread* t = place(*p, static_cast<uint32_t>(i / 2), load);
      const PollOps* ops = v->packed ? &kPackedPollOps : &kVhostPollOps;
      t->items.push_back({ops, p.get(), v, nullptr, static_cast<uint32_t>(i / 2)});
      if (v->kick_fd < 0) t->nofd_ring = true;
    }
    for (size_t q = 0; q < p->nicq.size(); q++) {
      PollThread* t = place(*p, static_cast<uint32_t>(q), load);
      t->items.push_back({&kNicPollOps, p.get(), nullptr, p->nicq[q].get(), static_cast<uint32_t>(q)});
    }
  }
}

// A pinned queue goes to its thread; any other keeps the thread it had, or, new, takes the least-loaded one.
PollThread* Engine::place(const Port& p, uint32_t queue, std::vector<size_t>& load) {
  if (threads_.empty()) return manual_.get();
  const int n = static_cast<int>(threads_.size());
  const auto key = std::make_pair(p.id, queue);
  const int pin = queue < p.cfg.queue_threads.size() ? p.cfg.queue_threads[queue] : -1;
  auto found = placement_.find(key);
  int t;
  if (pin >= 0 && pin < n) {
    t = pin;
  } else if (found != placement_.end()) {
    t = found->second;
  } else {
    t = static_cast<int>(std::min_element(load.begin(), load.end()) - load.begin());
  }
  if (found == placement_.end()) {
    placement_[key] = t;
    load[t]++;
  } else if (found->second != t) {
    load[found->second]--;
    load[t]++;
    found->second = t;
  }
  return threads_[t].get();
}

std::vector<Engine::QueueRef> Engine::thread_queues(int t) const {
  std::vector<QueueRef> out;
  const PollThread* th = threads_.empty() ? manual_.get() : threads_[t].get();
  for (const PollItem& it : th->items) {
    const uint32_t q = it.queue;
    const auto& pins = it.port->cfg.queue_threads;
    out.push_back({it.port->id, q, q < pins.size() && pins[q] >= 0});
  }
  return out;
}

// --- poll threads ---

uint32_t Engine::poll_once() {
  static thread_local PollContext c;
  c.sw = this;
  c.thread = 0;
  c.now = now_.load(std::memory_order_relaxed);
  // A fault in guest memory is recovered from as on a poll thread (run()); the pass ends there. No signal
  // mask is saved: the handler runs with SA_NODEFER, so none needs restoring, and a pass costs no syscall.
  install_fault_handler();
  volatile uint32_t n = 0;  // kept across the jump
  FaultGuard g;
  if (sigsetjmp(g.env, 0) == 0) {
    tl_fault_guard = &g;
    for (const PollItem& it : manual_->items) n += it.ops->poll(c, it);
    flush_rx(c);
  } else {
    recover_from_fault(c, g.addr);
  }
  tl_fault_guard = nullptr;
  manual_->counters.packets.add(n);
  return n;
}

void Engine::run(PollThread* t) {
  PollContext c;
  c.sw = this;
  c.thread = t->index;
  c.dirty.reserve(64);
  c.dirty_packed.reserve(64);
  c.xdp_kicks.reserve(64);
  install_fault_handler();
  for (;;) {
    FaultGuard g;
    if (sigsetjmp(g.env, 1) == 0) {
      tl_fault_guard = &g;
      bool stop = poll_loop(t, c);
      tl_fault_guard = nullptr;
      if (stop) return;
    } else {
      recover_from_fault(c, g.addr);
    }
  }
}

// A guest's memory file shrank under us (SIGBUS, see fault_guard.h): stop every ring of the port that owns
// the address until its frontend resets it, and forget what this thread had pending for it.
void Engine::recover_from_fault(PollContext& c, uintptr_t addr) {
  // Frames already on AF_XDP queues go out now: the queues are valid (this thread is not parked), and the list
  // must be empty before it parks, when ports may be removed.
  if (!c.xdp_kicks.empty()) xdp_flush(c);
  xdp_return_chunk(c);
  if (tl_capture_lock) {
    tl_capture_lock->clear(std::memory_order_release);
    tl_capture_lock = nullptr;
  }
  if (tl_rx_lock) {
    tl_rx_lock->clear(std::memory_order_release);
    tl_rx_lock = nullptr;
  }
  // The sender's ring keeps what it had: the frames before the interrupted one are used (in the shadow index,
  // published with the next pass), the interrupted one is returned then (touching guest memory here, with no
  // guard armed, could fault again), and none is taken twice.
  if (Vring* v = c.tx_ring) {
    c.tx_ring = nullptr;
    v->fault_skip = true;
  }
  for (auto& [id, p] : ports_) {
    bool owner = (p->mem && p->mem->contains_host(addr)) || (p->dirty_log && p->dirty_log->contains_host(addr));
    if (!owner) continue;
    for (auto& v : p->vrings) {
      if (!v->broken) v->counters.drops[kDropBadDescriptor].inc();
      v->mark_broken();
      v->dirty = false;
      if (v->packed) as_packed(*v).forget_used();
    }
    c.dirty.erase(std::remove_if(c.dirty.begin(), c.dirty.end(), [](Vring* v) { return v->broken; }), c.dirty.end());
    c.dirty_packed.erase(std::remove_if(c.dirty_packed.begin(), c.dirty_packed.end(),
                                        [](PackedVring* v) { return v->broken; }),
                         c.dirty_packed.end());
  }
}

bool Engine::poll_loop(PollThread* t, PollContext& c) {
  const uint64_t idle_limit = tsc_hz() / 1000000 * opts_.idle_us;
  uint64_t last_busy = __rdtsc();
  for (;;) {
    if (park_requested_.load(std::memory_order_acquire)) {
      tl_fault_guard = nullptr;  // parked, the control thread may unmap: no guest memory is touched here
      t->counters.parks.inc();
      park();
      if (stopping_) return true;
      return false;  // re-arm the guard and start over
    }
    uint64_t t0 = __rdtsc();
    c.now = now_.load(std::memory_order_relaxed);
    uint32_t n = 0;
    for (const PollItem& it : t->items) n += it.ops->poll(c, it);
    flush_rx(c);
    uint64_t t1 = __rdtsc();
    if (n) {
      t->counters.busy_cycles.add(t1 - t0);
      t->counters.packets.add(n);
      t->counters.busy_passes.inc();
      last_busy = t1;
    } else {
      t->counters.idle_cycles.add(t1 - t0);
      if (t1 - last_busy > idle_limit) {
        t->sleep_on_kicks(gen_, park_requested_);
        last_busy = __rdtsc();
      }
    }
  }
}

void Engine::housekeeping() {
  auto start = std::chrono::steady_clock::now();
  std::unique_lock<std::mutex> lk(hk_mu_);
  while (!closed_) {
    hk_cv_.wait_for(lk, std::chrono::seconds(1));
    uint32_t now = static_cast<uint32_t>(
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - start).count());
    now_.store(now, std::memory_order_relaxed);
    // Aging scans the table off the packet path; lookups stay lock-free meanwhile.
    fdb_.age(now, opts_.aging);
    if (respread_.exchange(false)) {
      lk.unlock();
      exec([] {}, ParkCause::kHousekeeping);  // at most once a round, however many enable messages came
      lk.lock();
    }
  }
}

// --- what the control operations share ---

// The port, looked up on the control thread without parking (ports_ changes only on this thread, in exec()).
Port* Engine::find_port(uint32_t id) const {
  auto it = ports_.find(id);
  return it == ports_.end() ? nullptr : it->second.get();
}

// Runs fn on the port inside exec(), or says the port does not exist (without parking).
Status Engine::with_port(uint32_t id, const std::function<Status(Port&)>& fn) {
  Port* p = find_port(id);
  if (!p) return NotFound("no such port");
  Status err;
  exec([&] { err = fn(*p); });
  return err;
}

void Engine::retire_fd(int fd) {
  if (fd < 0) return;
  if (threads_.empty()) {
    ::close(fd);  // poll_once() runs on this thread: nothing can be using it
    return;
  }
  size_t n;
  {
    std::lock_guard<std::mutex> g(exec_mu_);  // exec() (the housekeeper's too) closes the list
    retired_fds_.push_back(fd);
    n = retired_fds_.size();
  }
  if (n >= kMaxRetiredFds) exec([] {}, ParkCause::kHousekeeping);
}

}  // namespace vs
