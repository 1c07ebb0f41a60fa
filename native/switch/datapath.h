// The packet path: take a burst from one guest transmit queue, look each frame up in the FDB, and copy it
// once, straight from the source guest's buffers into each destination guest's receive buffers.
#pragma once
#include <atomic>
#include <cstdint>
#include <vector>

#include "ports/gso.h"
#include "switch/port.h"
#include "switch/port_security.h"
#include "switch/vlan.h"
#include "core/packed_vring.h"
#include "core/vring.h"

namespace vs {

struct NicQueue;
struct XdpSocket;

class Engine;

// The receive-queue lock this thread holds, if any: released if a guest memory fault interrupts it.
extern thread_local std::atomic_flag* tl_rx_lock;

constexpr uint16_t kBurst = 32;
constexpr int kMaxRxChains = 64;  // receive chains one frame may span with MRG_RXBUF

// Work accounting, so that one transmit queue cannot hold its poll thread, and every queue the thread polls,
// behind frames that cost far more than they look (a 64 KB GSO frame cut into hundreds of segments for each
// port of a flood). A unit is about one small frame delivered: each delivery costs work_units() of its length,
// each segment cut in software kSegmentWork more (headers rebuilt, payload checksummed). A queue stops taking
// frames once a pass cost it kQueueWork, and sits out passes until what it spent beyond that is paid (deficit
// round robin): the thread's other queues get their turn whatever one guest sends.
constexpr uint32_t kWorkBytes = 1024;
constexpr uint32_t kSegmentWork = 1;
constexpr uint32_t kQueueWork = kBurst;
inline uint32_t work_units(uint64_t len) { return 1 + static_cast<uint32_t>(len / kWorkBytes); }

// One poll thread's scratch space, reused for every frame (no allocation on the packet path).
struct PollContext {
  Engine* sw;
  int thread;
  uint32_t now;                // seconds, for FDB learning
  uint32_t src_queue = 0;      // queue pair (or NIC queue) the current burst came from
  uint32_t work = 0;           // work units spent so far (wraps; only differences are used)
  Vring* tx_ring = nullptr;    // the transmit queue whose frame at last_avail_idx is being forwarded, if any
  std::vector<Vring*> dirty;   // receive queues with used entries to publish at the end of the burst
  std::vector<PackedVring*> dirty_packed;  // the same for packed receive queues
  // AF_XDP queues this thread put frames on without asking the kernel to send them yet: one sendto() per burst
  // instead of one per frame (nic_xdp.cc). Kicked by flush_rx().
  struct XdpKick {
    NicQueue* q;
    uint32_t pending;
  };
  std::vector<XdpKick> xdp_kicks;
  // An AF_XDP send chunk taken off its socket's free list and not yet on its TX ring: it is being filled from
  // the source's memory, and a fault there must give it back (recover_from_fault, xdp_return_chunk).
  struct XdpChunk {
    XdpSocket* x = nullptr;
    uint64_t addr = 0;
  } xdp_chunk;
  Buf src[kMaxChainBufs];
  Buf dst[kMaxChainBufs];
  GsoState gso;  // software segmentation scratch
  SecurityScratch sec;  // port security: the checked head of the current frame
  VlanTagView tag_view;  // a frame as a guest trunk receives it, tagged
};

// One queue a poll thread polls, and what the thread does with it: a guest's transmit ring (kVhostPollOps,
// below) or a NIC queue's receive side (kNicPollOps, ports/nic.h). Built by Engine::rebuild() while the threads
// are parked, so the pointers stay valid for as long as the thread uses them.
struct PollItem;
struct PollOps {
  // One pass over the queue: the number of frames taken.
  uint32_t (*poll)(PollContext& c, const PollItem& it);
  // Before the thread sleeps (on = true): ask to be woken, and say whether work came in meanwhile. After it
  // wakes (on = false): stop asking, the thread polls again.
  bool (*arm)(const PollItem& it, bool on);
  // What the thread sleeps on (-1: nothing), and whether it is an eventfd to drain on waking.
  int (*wake_fd)(const PollItem& it);
  bool wake_is_eventfd;
};
struct PollItem {
  const PollOps* ops;
  Port* port;
  Vring* txq;       // a guest's transmit ring (vhost), or
  NicQueue* nicq;   // a NIC queue
  uint32_t queue;   // the port's queue number: the queue pair, or the NIC queue
};

// A guest's transmit ring: poll takes a burst of it (poll_txq), split or packed.
extern const PollOps kVhostPollOps;
extern const PollOps kPackedPollOps;

// Returns the number of frames taken from txq.
uint32_t poll_txq(PollContext& c, Port& src, Vring& txq);
uint32_t poll_txq(PollContext& c, Port& src, PackedVring& txq);
// Publishes used entries of receive queues written during the burst, and signals their calls; asks the kernel
// to send what the burst put on AF_XDP queues.
void flush_rx(PollContext& c);

}  // namespace vs
