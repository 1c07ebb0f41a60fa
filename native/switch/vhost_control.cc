#include "switch/vhost_control.h"

#include <fcntl.h>
#include <unistd.h>

#include <memory>
#include <string>

#include "core/dirty_log.h"
#include "core/fault_guard.h"
#include "core/packed_vring.h"

namespace vs {

// No ring of the port runs: the poll threads read nothing of it (a port is only polled through its started
// rings, and frames are delivered only to started receive rings), so its memory, features and ring
// configuration change without parking them. The next park (SET_VRING_KICK's) derives what they read.
static bool idle(const Port& p) {
  if (p.kind != PortKind::kVhost) return false;
  for (const auto& v : p.vrings)
    if (v->started) return false;
  return true;
}

Status VhostControl::reset_port(uint32_t id) {
  std::unique_ptr<GuestMemory> old;  // unmapped on return, once the poll threads were released
  return with_port(id, [&](Port& p) -> Status {
    old = std::move(p.mem);
    p.reset();
    fdb_.flush(id, false);  // the guest behind it may be another one next time
    return Ok();
  });
}

Status VhostControl::set_features(uint32_t id, uint64_t features) {
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

Status VhostControl::set_mem_table(uint32_t id, const std::vector<MemRegionSpec>& regions) {
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
Status VhostControl::swap_slot_map(uint32_t id, std::unique_ptr<GuestMemory> fresh) {
  std::unique_ptr<GuestMemory> old;
  Status err = with_port(id, [&](Port& p) -> Status {
    old = std::move(p.mem);
    p.mem = std::move(fresh);
    for (auto& v : p.vrings) {
      if (!v->addr_set) continue;
      if (!v->translate(p.mem.get())) v->forget_translation();
    }
    return Ok();
  });
  return err;  // old is released here, after the poll threads were: a removed region is unmapped, kept ones stay
}

// The new map is built before the park, from the current one (only this thread changes p.mem): a region that
// overlaps, or a removal of one that is not there, is refused without stopping anyone.
Status VhostControl::add_mem_region(uint32_t id, const MemRegionSpec& region) {
  Port* port = find_port(id);
  if (!port) {
    if (region.fd >= 0) ::close(region.fd);  // never handed over
    return NotFound("no such port");
  }
  std::string why;
  std::unique_ptr<GuestMemory> fresh = GuestMemory::With(port->mem.get(), region, why);  // owns region.fd now
  if (!fresh) return InvalidArgument(why);
  return swap_slot_map(id, std::move(fresh));
}

Status VhostControl::remove_mem_region(uint32_t id, uint64_t gpa, uint64_t size, uint64_t uva) {
  Port* port = find_port(id);
  if (!port) return NotFound("no such port");
  if (!port->mem) return NotFound("no memory regions");
  std::string why;
  std::unique_ptr<GuestMemory> fresh = GuestMemory::Without(*port->mem, gpa, size, uva, why);
  if (!fresh) return NotFound(why);
  return swap_slot_map(id, std::move(fresh));
}

static Status vring_range_error(uint32_t index, size_t count) {
  return InvalidArgument("vring index " + std::to_string(index) + " out of range (port has " + std::to_string(count) +
                         " vrings)");
}

// The ring, looked up on the control thread without parking (ports_ changes only on this thread, in exec()).
Vring* VhostControl::find_vring(uint32_t id, uint32_t index, Status* err) {
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
Status VhostControl::with_vring(uint32_t id, uint32_t index, const std::function<Status(Port&, Vring&)>& fn) {
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

// SET_VRING_NUM and SET_VRING_BASE only change a stopped ring, which no poll thread reads: never a park.
Status VhostControl::set_vring_num(uint32_t id, uint32_t index, uint32_t num) {
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

Status VhostControl::set_log_base(uint32_t id, int fd, uint64_t size, uint64_t offset) {
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

bool VhostControl::log_info(uint32_t id, uint64_t* size, uint64_t* outside, bool* logging) const {
  auto it = ports_.find(id);
  if (it == ports_.end()) return false;
  const Port& p = *it->second;
  *size = p.dirty_log ? p.dirty_log->size() : 0;
  *outside = p.dirty_log ? p.dirty_log->outside() : 0;
  *logging = false;
  for (const auto& v : p.vrings) *logging |= v->log.log != nullptr;
  return true;
}

Status VhostControl::set_vring_addr(uint32_t id, uint32_t index, uint64_t desc, uint64_t used, uint64_t avail,
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

Status VhostControl::set_vring_base(uint32_t id, uint32_t index, uint32_t base) {
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

Status VhostControl::get_vring_base(uint32_t id, uint32_t index, uint32_t* base) {
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

Status VhostControl::set_vring_fd(uint32_t id, uint32_t index, int which, int fd) {
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

Status VhostControl::set_vring_enable(uint32_t id, uint32_t index, bool enable) {
  // No park: the data path checks `enabled` per frame (a disabled transmit ring is drained, a disabled receive
  // ring skipped), so a flood of these costs the other ports nothing.
  Status err;
  Vring* v = find_vring(id, index, &err);
  if (!v) return err;
  if (v->enabled == enable) return Ok();
  __atomic_store_n(&v->enabled, enable, __ATOMIC_RELEASE);
  if (thread_count() == 0)
    exec([] {});  // poll_once() runs on this thread: reconfigure now, nothing to park
  else
    respread_.store(true, std::memory_order_relaxed);
  return Ok();
}

}  // namespace vs
