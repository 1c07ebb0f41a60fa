// What the vhost-user messages do to a port (src/vhost/handlers.ts decodes them): features, the memory table and
// its regions, the dirty log, and each ring's configuration, start, stop and enabling. Each operation checks its
// request before it parks the poll threads (Engine::exec), and one that changes only what they cannot see (a
// stopped ring, a port with no started ring) does not park them at all.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "core/guest_memory.h"
#include "switch/engine.h"
#include "switch/status.h"

namespace vs {

class VhostControl : public Engine {
 public:
  using Engine::Engine;

  // Frontend gone or RESET_OWNER: the port back to the state of a fresh connection.
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
  // The port's log: its size (0: none), pages written outside it, whether any ring logs now. False: no such port.
  bool log_info(uint32_t id, uint64_t* size, uint64_t* outside, bool* logging) const;
  Status set_vring_base(uint32_t id, uint32_t index, uint32_t base);
  Status get_vring_base(uint32_t id, uint32_t index, uint32_t* base);
  Status set_vring_fd(uint32_t id, uint32_t index, int which, int fd);  // which: 0 kick, 1 call, 2 err; owns fd
  Status set_vring_enable(uint32_t id, uint32_t index, bool enable);

 private:
  // Swaps in the map ADD_MEM_REG / REM_MEM_REG built, re-translating every ring with addresses.
  Status swap_slot_map(uint32_t id, std::unique_ptr<GuestMemory> fresh);
  Vring* find_vring(uint32_t id, uint32_t index, Status* err);
  Status with_vring(uint32_t id, uint32_t index, const std::function<Status(Port&, Vring&)>& fn);
};

}  // namespace vs
