// Survives a frontend that shrinks its memory file after SET_MEM_TABLE: touching a page past the new end
// of a MAP_SHARED mapping raises SIGBUS. A thread that touches guest memory arms a guard; the handler, if
// the faulting address is inside a registered guest mapping, jumps back to the guard, which stops the
// port that owns the mapping. Any other SIGBUS keeps its default meaning (the process dies).
#pragma once
#include <csetjmp>
#include <cstddef>
#include <cstdint>

namespace vs {

struct FaultGuard {
  sigjmp_buf env;
  uintptr_t addr = 0;  // the faulting address, once the guard has fired
};

// The guard of the calling thread (null: none armed).
extern thread_local FaultGuard* tl_fault_guard;

void install_fault_handler();                           // idempotent
void register_guest_mapping(const void* base, size_t len);
void unregister_guest_mapping(const void* base);

// Usage: FaultGuard g; if (sigsetjmp(g.env, 1) == 0) { tl_fault_guard = &g; ...; } else { recover(g.addr); }
//        tl_fault_guard = nullptr;

}  // namespace vs
