// The packet path: take a burst from one guest transmit queue, look each frame up in the FDB, and copy it
// once, straight from the source guest's buffers into each destination guest's receive buffers.
#pragma once
#include <atomic>
#include <cstdint>
#include <vector>

#include "gso.h"
#include "port.h"
#include "port_security.h"
#include "vlan.h"
#include "vring.h"

namespace vs {

struct XdpSocket;

class Switch;

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
  Switch* sw;
  int thread;
  uint32_t now;                // seconds, for FDB learning
  uint32_t src_queue = 0;      // queue pair (or NIC queue) the current burst came from
  uint32_t work = 0;           // work units spent so far (wraps; only differences are used)
  Vring* tx_ring = nullptr;    // the transmit queue whose frame at last_avail_idx is being forwarded, if any
  std::vector<Vring*> dirty;   // receive queues with used entries to publish at the end of the burst
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

// Returns the number of frames taken from txq.
uint32_t poll_txq(PollContext& c, Port& src, Vring& txq);
// Publishes used entries of receive queues written during the burst, and signals their calls; asks the kernel
// to send what the burst put on AF_XDP queues.
void flush_rx(PollContext& c);

struct NicQueue;
struct Frame;
// Takes what one NIC queue received (nic_path.cc). Returns the number of frames.
uint32_t poll_nic(PollContext& c, Port& p, NicQueue& q);
// Sends a frame out of a NIC port; -1 or the drop reason (already counted on the queue).
int nic_send(PollContext& c, Port& dst, const Frame& f);

}  // namespace vs
