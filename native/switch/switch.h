// The switch: ports, the forwarding database and the poll threads that move frames between them.
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
#include <string>
#include <thread>
#include <vector>

#include "core/counters.h"
#include "switch/fdb.h"
#include "switch/datapath.h"
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

struct ThreadCounters {
  Counter busy_cycles;  // TSC cycles of poll passes that moved packets
  Counter idle_cycles;  // TSC cycles of poll passes that found nothing
  Counter packets;      // frames taken from guests' transmit queues
  Counter busy_passes;  // poll passes that moved packets: packets / busy_passes is the mean burst per pass
  Counter sleeps;       // times the thread slept on kick eventfds
  Counter parks;        // times the thread parked for a control change (exec)
  std::atomic<bool> sleeping{false};
};

struct VringStatsSnapshot {
  int index;
  bool started, enabled, broken;
  uint64_t packets, bytes;
  uint64_t drops[kDropReasonCount];
};
struct PortStatsSnapshot {
  uint32_t id;
  std::string name;
  uint64_t rx_packets = 0, rx_bytes = 0, tx_packets = 0, tx_bytes = 0;
  uint64_t drops[kDropReasonCount] = {};
  bool broken = false;
  std::string backend, xdp_mode, backend_note;  // NIC ports: af_packet / af_xdp (native|generic) / tap
  std::vector<VringStatsSnapshot> queues;
};

// TSC ticks per second, measured once (20 ms against the steady clock) at the first call: turns the cycle
// counters into seconds.
uint64_t tsc_hz();

class Switch {
 public:
  explicit Switch(SwitchOptions opts);
  ~Switch();
  void close();

  uint32_t add_port(const PortConfig& cfg);
  // A port on a kernel interface: `queues` AF_XDP or AF_PACKET queues on iface (as backend chooses), or a tap
  // device named iface that we create (kUnavailable if the interface cannot be opened).
  Status add_nic_port(const PortConfig& cfg, PortKind kind, const std::string& iface, int queues, uint32_t* id,
                      NicBackendChoice backend = NicBackendChoice::kAfPacket);
  // Every control call returns a Status (status.h): ok, or the code and reason it was refused. The lookups
  // below (log_info, port_stats, read_capture) return whether the port (or its capture) exists.
  Status remove_port(uint32_t id);
  // Swaps in what a running port can change without its frontend renegotiating: VLAN membership, port security,
  // queue placement. Learned FDB entries of the port go when its VLANs change (they were learned in the old ones).
  Status update_port(uint32_t id, const PortConfig& cfg);
  Status reset_port(uint32_t id);
  Status set_features(uint32_t id, uint64_t features);
  Status set_mem_table(uint32_t id, const std::vector<MemRegionSpec>& regions);  // owns the fds
  // ADD_MEM_REG (owns region.fd) / REM_MEM_REG: one region more or less; rings the map no longer covers pause.
  Status add_mem_region(uint32_t id, const MemRegionSpec& region);
  Status remove_mem_region(uint32_t id, uint64_t gpa, uint64_t size, uint64_t uva);
  Status set_vring_num(uint32_t id, uint32_t index, uint32_t num);
  // flags: VHOST_VRING_F_LOG (log the used ring at log_addr, a guest physical address) or 0.
  Status set_vring_addr(uint32_t id, uint32_t index, uint64_t desc, uint64_t used, uint64_t avail,
                             uint32_t flags = 0, uint64_t log_addr = 0);
  // SET_LOG_BASE: maps the dirty log (owns fd; -1: none came) and replaces the port's old one.
  Status set_log_base(uint32_t id, int fd, uint64_t size, uint64_t offset);
  // The port's log: its size (0: none), pages written outside it, whether any ring logs now.
  bool log_info(uint32_t id, uint64_t* size, uint64_t* outside, bool* logging) const;
  Status set_vring_base(uint32_t id, uint32_t index, uint32_t base);
  Status get_vring_base(uint32_t id, uint32_t index, uint32_t* base);
  Status set_vring_fd(uint32_t id, uint32_t index, int which, int fd);  // which: 0 kick, 1 call, 2 err; owns fd
  Status set_vring_enable(uint32_t id, uint32_t index, bool enable);

  // SEND_RARP (after a live migration): a RARP from mac enters the switch on port id, so that the FDB and every
  // other switch on the VLAN learn where the guest is now.
  Status send_rarp(uint32_t id, const uint8_t mac[6]);

  bool port_stats(uint32_t id, PortStatsSnapshot* out) const;

  // Packet capture (capture.h): one at a time per port. bytes: the ring's size; directions: CaptureRing::kIn|kOut.
  Status start_capture(uint32_t id, size_t bytes, uint32_t snaplen, uint8_t directions);
  Status stop_capture(uint32_t id);
  // Moves captured pcap records into out (whole records); false if the port has no capture running.
  bool read_capture(uint32_t id, uint8_t* out, size_t max_bytes, uint32_t max_records, size_t* bytes,
                    uint32_t* records, uint64_t* captured, uint64_t* dropped);
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
  Status fdb_add(uint64_t key, uint32_t port);

  // --- used by the packet path (datapath.cc) ---
  Port* port_by_id(uint32_t id) const { return id < by_id_.size() ? by_id_[id] : nullptr; }
  const std::vector<Port*>& ports() const { return list_; }
  bool shared_rx() const { return threads_.size() > 1; }

 private:
  struct Thread {
    int index;
    std::thread th;
    int wake_fd = -1;
    int epoll_fd = -1;
    uint64_t epoll_gen = ~0ull;
    std::vector<PollItem> items;  // transmit queues this thread polls; rebuilt in exec()
    bool nofd_ring = false;   // some ring has no kick fd: sleep with a short timeout
    ThreadCounters counters;
  };

  enum class ParkCause { kControl, kHousekeeping };
  void exec(const std::function<void()>& fn, ParkCause cause = ParkCause::kControl);
  // A change the poll threads cannot see (a stopped ring, an idle port), serialised with exec() but not parking.
  void apply_unparked(const std::function<void()>& fn);
  Port* find_port(uint32_t id) const;
  Vring* find_vring(uint32_t id, uint32_t index, Status* err);
  void retire_fd(int fd);
  void rebuild();
  void run(Thread* t);
  bool poll_loop(Thread* t, PollContext& c);
  void recover_from_fault(PollContext& c, uintptr_t addr);
  void park();
  void sleep_on_kicks(Thread* t);
  void housekeeping();
  Status with_port(uint32_t id, const std::function<Status(Port&)>& fn);
  Status with_vring(uint32_t id, uint32_t index, const std::function<Status(Port&, Vring&)>& fn);

  SwitchOptions opts_;
  Fdb fdb_;
  std::atomic<uint32_t> now_{0};
  uint32_t next_id_ = 0;
  std::map<uint32_t, std::unique_ptr<Port>> ports_;  // owned here; changed only inside exec()
  std::vector<Port*> by_id_;                          // id -> port, for the packet path
  std::vector<Port*> list_;                           // ports in id order, for flooding
  std::vector<std::unique_ptr<Thread>> threads_;
  std::unique_ptr<Thread> manual_;  // threads = 0: the work list poll_once() runs
  // (port id, queue) -> poll thread. A queue keeps its thread while its port lives, so adding or removing a port
  // moves no other port's queues.
  std::map<std::pair<uint32_t, uint32_t>, int> placement_;
  Thread* place(const Port& p, uint32_t queue, std::vector<size_t>& load);
  uint64_t gen_ = 0;  // bumped by every exec(): poll threads rebuild their epoll sets when it moves
  // Call and err fds replaced without a park: a poll thread may still be about to write the old one, so it is
  // closed at the next park (exec), which comes at the latest after kMaxRetiredFds of them.
  static constexpr size_t kMaxRetiredFds = 64;
  std::vector<int> retired_fds_;
  // A ring was enabled or disabled without a park: the next housekeeping round reconfigures once, so that
  // frames spread again over the receive queues enabled now (until then, a disabled queue is skipped per frame).
  std::atomic<bool> respread_{false};

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
