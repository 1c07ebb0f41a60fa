#include "switch/switch.h"

#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <x86intrin.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#include "switch/capture.h"
#include "switch/datapath.h"
#include "core/fault_guard.h"
#include "switch/frame.h"
#include "switch/limits.h"
#include "ports/af_packet.h"
#include "ports/af_xdp.h"
#include "ports/nic.h"
#include "ports/tap.h"
#include "switch/vlan.h"

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

namespace {

bool is_rx(uint32_t index) { return index % 2 == 0; }

}  // namespace

Switch::Switch(SwitchOptions opts) : opts_(std::move(opts)), fdb_(opts_.fdb_log2) {
  if (opts_.threads < 0) opts_.threads = 0;
  tsc_hz();
  manual_ = std::make_unique<Thread>();
  manual_->index = 0;
  for (int i = 0; i < opts_.threads; i++) {
    auto t = std::make_unique<Thread>();
    t->index = i;
    t->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    threads_.push_back(std::move(t));
  }
  for (auto& t : threads_) {
    Thread* tp = t.get();
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

Switch::~Switch() { close(); }

void Switch::close() {
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

void Switch::exec(const std::function<void()>& fn, ParkCause cause) {
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

void Switch::apply_unparked(const std::function<void()>& fn) {
  std::lock_guard<std::mutex> serial(exec_mu_);  // the housekeeper's exec() reads ports in rebuild()
  fn();
}

void Switch::park() {
  std::unique_lock<std::mutex> lk(park_mu_);
  parked_++;
  ctl_cv_.notify_all();
  park_cv_.wait(lk, [this] { return !park_requested_.load(std::memory_order_acquire) || stopping_; });
  parked_--;
}

// Inside exec(): derive what the poll threads read (id map, flood list, ready receive queues, who polls
// which transmit queue) from the ports as they are now.
void Switch::rebuild() {
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
      Thread* t = place(*p, static_cast<uint32_t>(i / 2), load);
      const PollOps* ops = v->packed ? &kPackedPollOps : &kVhostPollOps;
      t->items.push_back({ops, p.get(), v, nullptr, static_cast<uint32_t>(i / 2)});
      if (v->kick_fd < 0) t->nofd_ring = true;
    }
    for (size_t q = 0; q < p->nicq.size(); q++) {
      Thread* t = place(*p, static_cast<uint32_t>(q), load);
      t->items.push_back({&kNicPollOps, p.get(), nullptr, p->nicq[q].get(), static_cast<uint32_t>(q)});
    }
  }
}

// A pinned queue goes to its thread; any other keeps the thread it had, or, new, takes the least-loaded one.
Switch::Thread* Switch::place(const Port& p, uint32_t queue, std::vector<size_t>& load) {
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

std::vector<Switch::QueueRef> Switch::thread_queues(int t) const {
  std::vector<QueueRef> out;
  const Thread* th = threads_.empty() ? manual_.get() : threads_[t].get();
  for (const PollItem& it : th->items) {
    const uint32_t q = it.queue;
    const auto& pins = it.port->cfg.queue_threads;
    out.push_back({it.port->id, q, q < pins.size() && pins[q] >= 0});
  }
  return out;
}

// --- poll threads ---

uint32_t Switch::poll_once() {
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

void Switch::run(Thread* t) {
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
void Switch::recover_from_fault(PollContext& c, uintptr_t addr) {
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
    }
    c.dirty.erase(std::remove_if(c.dirty.begin(), c.dirty.end(), [](Vring* v) { return v->broken; }), c.dirty.end());
    c.dirty_packed.erase(std::remove_if(c.dirty_packed.begin(), c.dirty_packed.end(),
                                        [](PackedVring* v) { return v->broken; }),
                         c.dirty_packed.end());
  }
}

bool Switch::poll_loop(Thread* t, PollContext& c) {
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
        sleep_on_kicks(t);
        last_busy = __rdtsc();
      }
    }
  }
}

// No traffic for a while: ask drivers to kick again and sleep on the kick eventfds, so an idle switch
// costs no CPU. A frame that arrived while we turned kicks on is caught by the re-check.
void Switch::sleep_on_kicks(Thread* t) {
  bool pending = false;
  for (const PollItem& it : t->items) pending |= it.ops->arm(it, true);
  if (!pending && !park_requested_.load(std::memory_order_acquire)) {
    if (t->epoll_gen != gen_) {
      // The set of kick fds changed since we last slept: build the epoll set anew.
      if (t->epoll_fd >= 0) ::close(t->epoll_fd);
      t->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.u64 = (uint64_t(1) << 32) | uint32_t(t->wake_fd);
      epoll_ctl(t->epoll_fd, EPOLL_CTL_ADD, t->wake_fd, &ev);
      for (const PollItem& it : t->items) {
        int fd = it.ops->wake_fd(it);
        if (fd < 0) continue;
        ev.data.u64 = (uint64_t(it.ops->wake_is_eventfd ? 1 : 0) << 32) | uint32_t(fd);
        epoll_ctl(t->epoll_fd, EPOLL_CTL_ADD, fd, &ev);
      }
      t->epoll_gen = gen_;
    }
    t->counters.sleeping.store(true, std::memory_order_relaxed);
    t->counters.sleeps.inc();
    epoll_event evs[64];
    int n = epoll_wait(t->epoll_fd, evs, 64, t->nofd_ring ? 1 : 1000);
    for (int i = 0; i < n; i++) {
      // Drain eventfds (kicks are level-triggered in epoll); a NIC's data is taken by the next poll pass.
      bool is_eventfd = (evs[i].data.u64 >> 32) != 0;
      int fd = static_cast<int>(evs[i].data.u64 & 0xffffffff);
      if (is_eventfd) {
        eventfd_t v;
        eventfd_read(fd, &v);
      }
    }
    t->counters.sleeping.store(false, std::memory_order_relaxed);
  }
  for (const PollItem& it : t->items) it.ops->arm(it, false);
}

void Switch::housekeeping() {
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

// --- control operations ---

uint32_t Switch::add_port(const PortConfig& cfg) {
  uint32_t id;
  exec([&] {
    id = next_id_++;
    ports_[id] = std::make_unique<Port>(id, cfg);
  });
  return id;
}

Status Switch::add_nic_port(const PortConfig& cfg, PortKind kind, const std::string& iface, int queues, uint32_t* id,
                            NicBackendChoice backend) {
  if (kind == PortKind::kTap && queues != 1) return InvalidArgument("a tap port has one queue");
  if (Status s = check_range("queues", queues < 0 ? 0 : queues, 1, kMaxQueuePairs); !s.ok()) return s;
  // Sockets and rings are set up outside exec(): slow, and nothing the poll threads read yet.
  std::vector<std::unique_ptr<NicQueue>> qs;
  static std::atomic<uint16_t> fanout_ids{1};
  uint16_t fanout = static_cast<uint16_t>(fanout_ids.fetch_add(1) ^ (getpid() & 0x7fff));
  std::string why_not_xdp;
  if (kind == PortKind::kNic && backend != NicBackendChoice::kAfPacket) {
    // AF_XDP first; on any failure everything it opened is closed (the program detached) before AF_PACKET.
    if (!open_af_xdp(iface, queues, cfg.mtu, qs, why_not_xdp)) {
      qs.clear();
      if (backend == NicBackendChoice::kAfXdp) return Unavailable("AF_XDP: " + why_not_xdp);
    }
  }
  if (qs.empty()) {
    for (int i = 0; i < queues; i++) {
      std::string err;
      auto q = kind == PortKind::kTap ? open_tap(iface, err) : open_af_packet(iface, queues, fanout, err);
      if (!q) return Unavailable(err);
      qs.push_back(std::move(q));
    }
    if (!why_not_xdp.empty()) qs[0]->note = "AF_XDP: " + why_not_xdp;
  }
  exec([&] {
    *id = next_id_++;
    auto p = std::make_unique<Port>(*id, cfg, kind);
    p->nicq = std::move(qs);
    ports_[*id] = std::move(p);
  });
  return Ok();
}

Status Switch::remove_port(uint32_t id) {
  if (!find_port(id)) return NotFound("no such port");
  std::unique_ptr<Port> gone;
  exec([&] {
    auto it = ports_.find(id);
    gone = std::move(it->second);
    ports_.erase(it);
    fdb_.flush(id, true);
  });
  return Ok();  // gone unmaps memory and closes fds here, after the poll threads were released
}

// The port, looked up on the control thread without parking (ports_ changes only on this thread, in exec()).
Port* Switch::find_port(uint32_t id) const {
  auto it = ports_.find(id);
  return it == ports_.end() ? nullptr : it->second.get();
}

// No ring of the port runs: the poll threads read nothing of it (a port is only polled through its started
// rings, and frames are delivered only to started receive rings), so its memory, features and ring
// configuration change without parking them. The next park (SET_VRING_KICK's) derives what they read.
static bool idle(const Port& p) {
  if (p.kind != PortKind::kVhost) return false;
  for (const auto& v : p.vrings)
    if (v->started) return false;
  return true;
}

// Runs fn on the port inside exec(), or says the port does not exist (without parking).
Status Switch::with_port(uint32_t id, const std::function<Status(Port&)>& fn) {
  Port* p = find_port(id);
  if (!p) return NotFound("no such port");
  Status err;
  exec([&] { err = fn(*p); });
  return err;
}

Status Switch::update_port(uint32_t id, const PortConfig& cfg) {
  std::shared_ptr<const PortSecurity> old;  // freed on return, after the poll threads were released
  return with_port(id, [&](Port& p) -> Status {
    const bool vlans = p.cfg.vlan != cfg.vlan || p.cfg.trunk != cfg.trunk || p.cfg.allowed_vlans != cfg.allowed_vlans;
    p.cfg.vlan = cfg.vlan;
    p.cfg.trunk = cfg.trunk;
    p.cfg.allowed_vlans = cfg.allowed_vlans;
    old = std::move(p.cfg.security);
    p.cfg.security = cfg.security;
    p.cfg.queue_threads = cfg.queue_threads;
    if (vlans) fdb_.flush(id, false);
    return Ok();
  });
}

Status Switch::start_capture(uint32_t id, size_t bytes, uint32_t snaplen, uint8_t directions) {
  if (bytes < 64 * 1024 || bytes > (256u << 20)) return InvalidArgument("capture buffer must be 64 KiB..256 MiB");
  if (snaplen < 64) return InvalidArgument("snaplen must be at least 64");
  if (!directions || (directions & ~(CaptureRing::kIn | CaptureRing::kOut)))
    return InvalidArgument("direction must be in, out or both");
  // Only this thread starts and stops captures: looked at before the park.
  if (Port* p = find_port(id); p && p->capture) return Busy("a capture is already running on this port");
  auto ring = std::make_unique<CaptureRing>(bytes, snaplen, directions);  // allocated before the park
  return with_port(id, [&](Port& p) -> Status {
    p.capture = std::move(ring);
    return Ok();
  });
}

Status Switch::stop_capture(uint32_t id) {
  if (Port* p = find_port(id); p && !p->capture) return NotFound("no capture is running on this port");
  std::unique_ptr<CaptureRing> old;  // freed on return, after the poll threads were released
  return with_port(id, [&](Port& p) -> Status {
    old = std::move(p.capture);
    return Ok();
  });
}

bool Switch::read_capture(uint32_t id, uint8_t* out, size_t max_bytes, uint32_t max_records, size_t* bytes,
                          uint32_t* records, uint64_t* captured, uint64_t* dropped) {
  // The control thread is the only one that starts, stops and reads captures: no park needed to look.
  auto it = ports_.find(id);
  if (it == ports_.end() || !it->second->capture) return false;
  CaptureRing& r = *it->second->capture;
  *bytes = r.take(out, max_bytes, max_records, records);
  *captured = r.captured();
  *dropped = r.dropped();
  return true;
}

Status Switch::reset_port(uint32_t id) {
  std::unique_ptr<GuestMemory> old;  // unmapped on return, once the poll threads were released
  return with_port(id, [&](Port& p) -> Status {
    old = std::move(p.mem);
    p.reset();
    fdb_.flush(id, false);  // the guest behind it may be another one next time
    return Ok();
  });
}

Status Switch::set_features(uint32_t id, uint64_t features) {
  Port* port = find_port(id);
  if (!port) return NotFound("no such port");
  const bool packed = has_feature(features, VIRTIO_F_RING_PACKED);
  const bool relayout = packed != port->packed();
  if (relayout)
    for (auto& v : port->vrings)
      if (v->started) return Busy("the ring layout (VIRTIO_F_RING_PACKED) cannot change while a ring runs");
  auto apply = [&](Port& p) {
    p.set_features(features);
    if (!relayout) return;
    for (auto& v : p.vrings) {
      // Split rings need a power-of-two size; a packed one set before may not be.
      if (!packed && (v->num & (v->num - 1))) v->num = 0;
      if (v->addr_set && !v->translate(p.mem.get())) v->forget_translation();
    }
  };
  if (idle(*port)) {
    apply_unparked([&] { apply(*port); });
    return Ok();
  }
  if (port->features == features) return Ok();  // QEMU sends them again when it starts and stops dirty logging
  return with_port(id, [&](Port& p) -> Status {
    apply(p);
    return Ok();
  });
}

Status Switch::set_mem_table(uint32_t id, const std::vector<MemRegionSpec>& regions) {
  std::string why;
  // mmap outside exec(): mapping is slow and touches no state the poll threads read.
  std::unique_ptr<GuestMemory> mem = GuestMemory::Map(regions, why);
  if (!mem) return InvalidArgument(why);
  std::unique_ptr<GuestMemory> old;
  Status err;
  auto swap = [&](Port& p) -> Status {
    old = std::move(p.mem);
    p.mem = std::move(mem);
    // Rings keep their frontend addresses; their host pointers move with the new mapping.
    for (auto& v : p.vrings)
      if (v->addr_set && !v->translate(p.mem.get()) && v->started) v->mark_broken();
    return Ok();
  };
  Port* p = find_port(id);
  if (!p) return NotFound("no such port");
  if (idle(*p))
    apply_unparked([&] { err = swap(*p); });
  else
    err = with_port(id, swap);
  return err;  // old is unmapped here, once no poll thread can hold a pointer into it
}

// ADD_MEM_REG / REM_MEM_REG change the map one region at a time, and QEMU removes before it adds when it moves a
// region: a started ring that the new map no longer covers is paused (untranslated: not polled, nothing delivered
// to it), not broken, and resumes when a region covering it comes (again). The switch holds no buffer across a
// burst, so after the park nothing points into a removed region.
static void retranslate_for_slots(Port& p) {
  for (auto& v : p.vrings) {
    if (!v->addr_set) continue;
    if (!v->translate(p.mem.get())) v->forget_translation();
  }
}

// The new map is built before the park, from the current one (only this thread changes p.mem): a region that
// overlaps, or a removal of one that is not there, is refused without stopping anyone.
Status Switch::add_mem_region(uint32_t id, const MemRegionSpec& region) {
  Port* port = find_port(id);
  if (!port) {
    if (region.fd >= 0) ::close(region.fd);  // never handed over
    return NotFound("no such port");
  }
  std::string why;
  std::unique_ptr<GuestMemory> fresh = GuestMemory::With(port->mem.get(), region, why);  // owns region.fd now
  if (!fresh) return InvalidArgument(why);
  std::unique_ptr<GuestMemory> old;
  return with_port(id, [&](Port& p) -> Status {
    old = std::move(p.mem);
    p.mem = std::move(fresh);
    retranslate_for_slots(p);
    return Ok();
  });  // old is released here; the regions the new map kept stay mapped
}

Status Switch::remove_mem_region(uint32_t id, uint64_t gpa, uint64_t size, uint64_t uva) {
  Port* port = find_port(id);
  if (!port) return NotFound("no such port");
  if (!port->mem) return NotFound("no memory regions");
  std::string why;
  std::unique_ptr<GuestMemory> fresh = GuestMemory::Without(*port->mem, gpa, size, uva, why);
  if (!fresh) return NotFound(why);
  std::unique_ptr<GuestMemory> old;
  return with_port(id, [&](Port& p) -> Status {
    old = std::move(p.mem);
    p.mem = std::move(fresh);
    retranslate_for_slots(p);
    return Ok();
  });  // the removed region is unmapped when old goes, after the poll threads were released
}

static Status vring_range_error(uint32_t index, size_t count) {
  return InvalidArgument("vring index " + std::to_string(index) + " out of range (port has " + std::to_string(count) +
                         " vrings)");
}

// The ring, looked up on the control thread without parking (ports_ changes only on this thread, in exec()).
Vring* Switch::find_vring(uint32_t id, uint32_t index, Status* err) {
  Port* p = find_port(id);
  if (!p) {
    *err = NotFound("no such port");
    return nullptr;
  }
  if (index >= p->vrings.size()) {
    *err = vring_range_error(index, p->vrings.size());
    return nullptr;
  }
  return p->vrings[index].get();
}

// Runs fn on the ring: at once while it is stopped (no poll thread reads a stopped ring; the park that starts it
// derives what they read), else inside exec(). An unknown port or ring is refused without parking.
Status Switch::with_vring(uint32_t id, uint32_t index,
                               const std::function<Status(Port&, Vring&)>& fn) {
  Status err;
  Vring* v = find_vring(id, index, &err);
  if (!v) return err;
  Port& p = *find_port(id);
  if (v->started)
    exec([&] { err = fn(p, *v); });
  else
    apply_unparked([&] { err = fn(p, *v); });
  return err;
}

// Would the ring's parts, at these addresses, lie inside the port's memory? Checked on a scratch ring, so that a
// running ring keeps its translation until the change is applied.
static bool ring_fits(const Port& p, uint32_t num, uint64_t desc, uint64_t used, uint64_t avail) {
  auto scratch = std::make_unique<Vring>();
  scratch->num = static_cast<uint16_t>(num);
  scratch->desc_uva = desc;
  scratch->used_uva = used;
  scratch->avail_uva = avail;
  scratch->addr_set = true;
  return scratch->translate(p.mem.get());
}

void Switch::retire_fd(int fd) {
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

// SET_VRING_NUM and SET_VRING_BASE only change a stopped ring, which no poll thread reads: never a park.
Status Switch::set_vring_num(uint32_t id, uint32_t index, uint32_t num) {
  if (num == 0 || num > kMaxQueueSize) return InvalidArgument("queue size must be 1 to 32768");
  Status err;
  Vring* v = find_vring(id, index, &err);
  if (!v) return err;
  // Split rings need a power of two so that free-running 16-bit indices wrap onto ring slots; packed rings
  // count slots and wrap explicitly, so any size up to the maximum will do (2.7.10.1).
  if (!v->packed && (num & (num - 1))) return InvalidArgument("queue size must be a power of 2 up to 32768");
  if (v->started) return Busy("ring is running");
  apply_unparked([&] { v->num = static_cast<uint16_t>(num); });
  return Ok();
}

Status Switch::set_log_base(uint32_t id, int fd, uint64_t size, uint64_t offset) {
  std::string why;
  // mmap outside exec(), as for a memory table.
  std::unique_ptr<DirtyLog> log = DirtyLog::Map(fd, size, offset, why);
  if (!log) return InvalidArgument(why);
  std::unique_ptr<DirtyLog> old;
  Status err = with_port(id, [&](Port& p) -> Status {
    old = std::move(p.dirty_log);
    p.dirty_log = std::move(log);
    return Ok();  // rebuild() points the rings at it
  });
  return err;  // the old log is unmapped here, once no poll thread can be writing it
}

bool Switch::log_info(uint32_t id, uint64_t* size, uint64_t* outside, bool* logging) const {
  auto it = ports_.find(id);
  if (it == ports_.end()) return false;
  const Port& p = *it->second;
  *size = p.dirty_log ? p.dirty_log->size() : 0;
  *outside = p.dirty_log ? p.dirty_log->outside() : 0;
  *logging = false;
  for (const auto& v : p.vrings) *logging |= v->log.log != nullptr;
  return true;
}

Status Switch::set_vring_addr(uint32_t id, uint32_t index, uint64_t desc, uint64_t used, uint64_t avail,
                                   uint32_t flags, uint64_t log_addr) {
  if (flags & ~VHOST_VRING_F_LOG) return InvalidArgument("unknown vring address flags " + std::to_string(flags));
  Status err;
  Vring* ring = find_vring(id, index, &err);
  if (!ring) return err;
  const Port& port = *find_port(id);
  // Without memory the ring is translated when the memory table arrives.
  if (port.mem && !ring_fits(port, ring->num, desc, used, avail))
    return InvalidArgument("ring addresses are outside guest memory, misaligned, or the size is unset");
  return with_vring(id, index, [&](Port& p, Vring& v) -> Status {
    v.addr_flags = flags;
    v.log_guest_addr = log_addr;
    v.desc_uva = desc;
    v.used_uva = used;
    v.avail_uva = avail;
    v.addr_set = true;
    if (p.mem) v.translate(p.mem.get());
    return Ok();
  });
}

Status Switch::set_vring_base(uint32_t id, uint32_t index, uint32_t base) {
  Status err;
  Vring* v = find_vring(id, index, &err);
  if (!v) return err;
  if (v->started) return Busy("ring is running");
  if (v->packed) {
    bool ok = false;
    apply_unparked([&] { ok = as_packed(*v).set_base(base); });
    return ok ? Ok() : InvalidArgument("vring base slot beyond the queue size");
  }
  apply_unparked([&] { v->last_avail_idx = v->cached_avail = static_cast<uint16_t>(base); });
  return Ok();
}

Status Switch::get_vring_base(uint32_t id, uint32_t index, uint32_t* base) {
  return with_vring(id, index, [base](Port&, Vring& v) -> Status {
    // Every used entry is published at the end of each burst, so last_avail_idx is the whole state.
    v.stop_and_reset_state();
    *base = v.packed ? as_packed(v).get_base() : v.last_avail_idx;
    return Ok();
  });
}

// Kick, call and err fds must be eventfds: the poll thread writes call/err and reads kick without blocking,
// and another kind of fd (a full pipe, a FIFO) could stall it and with it every port.
static Status check_eventfd(int fd) {
  if (fd < 0) return Ok();
  char link[64];
  std::string path = "/proc/self/fd/" + std::to_string(fd);
  ssize_t n = readlink(path.c_str(), link, sizeof link - 1);
  if (n < 0) return InvalidArgument("not an open file descriptor");
  link[n] = 0;
  if (std::string(link) != "anon_inode:[eventfd]") return InvalidArgument(std::string("must be an eventfd, got ") + link);
  int flags = fcntl(fd, F_GETFL);
  if (flags >= 0 && !(flags & O_NONBLOCK)) fcntl(fd, F_SETFL, flags | O_NONBLOCK);
  return Ok();
}

Status Switch::set_vring_fd(uint32_t id, uint32_t index, int which, int fd) {
  if (Status bad = check_eventfd(fd); !bad.ok()) {
    ::close(fd);
    return InvalidArgument((which == 0 ? "kick fd " : which == 1 ? "call fd " : "err fd ") + bad.message());
  }
  if (which != 0) {
    // Call and err fds: the poll threads read them once per signal, so the new one goes in by one atomic store,
    // without parking them; the old one is closed once no thread can be about to write it.
    Status err;
    Vring* v = find_vring(id, index, &err);
    if (!v) {
      if (fd >= 0) ::close(fd);
      return err;
    }
    retire_fd(__atomic_exchange_n(which == 1 ? &v->call_fd : &v->err_fd, fd, __ATOMIC_ACQ_REL));
    return Ok();
  }
  // vhost-user: SET_VRING_KICK starts the ring. Its one park applies what SET_VRING_NUM/ADDR/BASE staged.
  Status err;
  Vring* ring = find_vring(id, index, &err);
  const Port* port = ring ? find_port(id) : nullptr;
  if (ring && (!port->mem || !ring->addr_set ||
               !ring_fits(*port, ring->num, ring->desc_uva, ring->used_uva, ring->avail_uva)))
    err = InvalidArgument("ring started before its memory table and addresses");
  if (!err.ok()) {
    if (fd >= 0) ::close(fd);
    return err;
  }
  err = with_port(id, [&](Port& p) -> Status {
    Vring& v = *p.vrings[index];
    if (v.kick_fd >= 0) ::close(v.kick_fd);
    v.kick_fd = fd;
    fd = -1;  // owned by the ring now
    if (!v.translate(p.mem.get())) return InvalidArgument("ring started before its memory table and addresses");
    install_fault_handler();
    FaultGuard g;
    const bool was_broken = v.broken;
    if (sigsetjmp(g.env, 1) != 0) {
      v.broken = was_broken;
      return InvalidArgument("the ring's memory is not accessible (memory file truncated?)");
    }
    tl_fault_guard = &g;
    // SAFETY: translate accepted the used ring (packed: the device event structure) and the guard turns a truncated
    // memory file into an error, for the read of used->idx and for the kick suppression writes alike.
    if (!v.packed) v.used_idx = v.published_used = __atomic_load_n(&v.used->idx, __ATOMIC_ACQUIRE);
    v.broken = false;  // before disable_kicks, which leaves a broken ring's memory alone
    // We poll; receive queues never need kicks, transmit queues only when we sleep.
    if (v.packed) as_packed(v).disable_kicks();
    else v.disable_kicks();
    tl_fault_guard = nullptr;
    if (v.packed) as_packed(v).start();
    v.cached_avail = v.last_avail_idx;  // nothing is known to be available until we read avail->idx
    v.started = true;
    return Ok();
  });
  if (fd >= 0) ::close(fd);  // refused before the ring took it
  return err;
}

Status Switch::set_vring_enable(uint32_t id, uint32_t index, bool enable) {
  // No park: the data path checks `enabled` per frame (a disabled transmit ring is drained, a disabled receive
  // ring skipped), so a flood of these costs the other ports nothing.
  Status err;
  Vring* v = find_vring(id, index, &err);
  if (!v) return err;
  if (v->enabled == enable) return Ok();
  __atomic_store_n(&v->enabled, enable, __ATOMIC_RELEASE);
  if (threads_.empty())
    exec([] {});  // poll_once() runs on this thread: reconfigure now, nothing to park
  else
    respread_.store(true, std::memory_order_relaxed);
  return Ok();
}

Status Switch::send_rarp(uint32_t id, const uint8_t mac[6]) {
  if (mac[0] & 1) return InvalidArgument("not a unicast MAC");
  Port* port = find_port(id);
  if (!port) return NotFound("no such port");
  if (port->kind != PortKind::kVhost) return InvalidArgument("not a vhost-user port");
  // RFC 903 reverse request from the guest's MAC, as QEMU's own announcement looks: broadcast, sender and target
  // hardware address the guest's, no protocol addresses. Padded to the 60-byte minimum.
  uint8_t rarp[60] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  std::memcpy(rarp + 6, mac, 6);
  const uint8_t body[] = {0x80, 0x35, 0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x03};
  std::memcpy(rarp + 12, body, sizeof body);
  std::memcpy(rarp + 22, mac, 6);
  std::memcpy(rarp + 32, mac, 6);
  auto c = std::make_unique<PollContext>();  // big scratch: not on the control thread's stack
  c->sw = this;
  c->thread = -1;
  VringCounters counters;
  // Forwarded as if the guest had sent it on its port: the FDB learns the MAC there, and every port of the VLAN
  // (NICs included) sees it. With the poll threads parked, this thread may write the receive queues.
  return with_port(id, [&](Port& p) -> Status {
    c->now = now();
    Buf pieces[2] = {{rarp, sizeof rarp}, {}};  // vlan_classify may cut a tag out into two
    Frame f;
    f.bufs = pieces;
    f.nbufs = 1;
    f.off = 0;
    f.len = sizeof rarp;
    f.hdr = {};
    std::memcpy(f.eth, rarp, sizeof f.eth);
    int reason = vlan_classify(p.cfg, f, pieces, 2, -1);
    if (reason >= 0) return Unavailable(std::string("dropped: ") + kDropReasonNames[reason]);
    FwdCache cache;
    install_fault_handler();
    FaultGuard g;
    if (sigsetjmp(g.env, 1) == 0) {
      tl_fault_guard = &g;
      forward(*c, p, counters, cache, f);
      flush_rx(*c);
    } else {
      recover_from_fault(*c, g.addr);
    }
    tl_fault_guard = nullptr;
    for (int r = 0; r < kDropReasonCount; r++)
      if (counters.drops[r].get()) return Unavailable(std::string("dropped: ") + kDropReasonNames[r]);
    return Ok();
  });
}

Status Switch::fdb_add(uint64_t key, uint32_t port) {
  if (ports_.find(port) == ports_.end()) return NotFound("no such port");  // ports_ changes on this thread only
  return fdb_.add_static(key, port) ? Ok() : Unavailable("forwarding table is full");
}

bool Switch::port_stats(uint32_t id, PortStatsSnapshot* out) const {
  // Reads live counters without stopping the poll threads; the port map itself only changes in exec(),
  // which runs on this (the control) thread.
  auto it = ports_.find(id);
  if (it == ports_.end()) return false;
  const Port& p = *it->second;
  out->id = id;
  out->name = p.cfg.name;
  out->queues.clear();
  for (size_t i = 0; i < p.vrings.size(); i++) {
    const Vring& v = *p.vrings[i];
    VringStatsSnapshot q{static_cast<int>(i), v.started, v.enabled, v.broken, v.counters.packets.get(),
                         v.counters.bytes.get(), {}};
    for (int r = 0; r < kDropReasonCount; r++) {
      q.drops[r] = v.counters.drops[r].get();
      out->drops[r] += q.drops[r];
    }
    if (is_rx(static_cast<uint32_t>(i))) {
      out->tx_packets += q.packets;  // to the guest
      out->tx_bytes += q.bytes;
    } else {
      out->rx_packets += q.packets;  // from the guest
      out->rx_bytes += q.bytes;
    }
    out->broken |= v.broken;
    out->queues.push_back(q);
  }
  if (!p.nicq.empty()) {
    out->backend = p.nicq[0]->ops->name;
    out->xdp_mode = nic_xdp_mode(*p.nicq[0]);
    out->backend_note = p.nicq[0]->note;
  }
  // NIC queues: what came in from the wire is the port's rx, what went out its tx.
  for (size_t i = 0; i < p.nicq.size(); i++) {
    const NicQueue& nq = *p.nicq[i];
    VringStatsSnapshot q{static_cast<int>(i), true, true, false, nq.rx.packets.get() + nq.tx.packets.get(),
                         nq.rx.bytes.get() + nq.tx.bytes.get(), {}};
    for (int r = 0; r < kDropReasonCount; r++) {
      q.drops[r] = nq.rx.drops[r].get() + nq.tx.drops[r].get();
      if (r == kDropNoRxBuffer) q.drops[r] += xdp_kernel_rx_drops(nq);  // dropped by the kernel before our ring
      out->drops[r] += q.drops[r];
    }
    out->rx_packets += nq.rx.packets.get();
    out->rx_bytes += nq.rx.bytes.get();
    out->tx_packets += nq.tx.packets.get();
    out->tx_bytes += nq.tx.bytes.get();
    out->queues.push_back(q);
  }
  return true;
}

}  // namespace vs
