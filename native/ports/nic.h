// NIC queues: a switch port bound to a kernel network interface through one of three backends, each a state
// struct and a small table of operations (NicOps): AF_PACKET (af_packet.h: TPACKET_V3 receive rings in a
// PACKET_FANOUT group, offloads in a virtio-net header), AF_XDP (af_xdp.h: copy-mode sockets, no offloads) and
// tap devices the switch creates (tap.h, IFF_VNET_HDR). Frames are copied once: from the kernel's memory into a
// guest's buffers, and from a guest's buffers to the kernel on the way out.
#pragma once
#include <sys/uio.h>
#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>

#include "core/counters.h"
#include "core/sg.h"

namespace vs {

enum class NicBackend { kAfPacket, kTap, kAfXdp };

// What a nic port asks for: AF_XDP if it can be had, else AF_PACKET (auto); or one of them, or nothing.
enum class NicBackendChoice { kAuto, kAfXdp, kAfPacket };

struct Frame;
struct NicQueue;
struct PollContext;
struct Port;
struct AfPacketRing;
struct TapBuffer;
struct XdpProgram;
struct XdpSocket;

// A backend's packet path. Both run on a poll thread, never two threads on one queue's receive side.
struct NicOps {
  NicBackend backend;
  const char* name;  // as `port show` says it: "af_packet", "af_xdp", "tap"
  // Takes what the queue received (at most a burst) into forward(). Returns the number of frames.
  uint32_t (*poll)(PollContext& c, Port& p, NicQueue& q);
  // Sends one frame out of the queue. Returns -1, or the drop reason (already counted on the queue).
  int (*send)(PollContext& c, Port& dst, NicQueue& q, const Frame& f);
};

struct NicQueue {
  const NicOps* ops;
  int fd = -1;
  // The backend's own state: one of these is set, the one ops works on.
  std::unique_ptr<AfPacketRing> af_packet;
  std::unique_ptr<TapBuffer> tap;
  std::shared_ptr<XdpProgram> xdp_prog;  // shared by the port's queues
  std::unique_ptr<XdpSocket> xsk;
  std::string note;  // why auto mode fell back to AF_PACKET (first queue only)
  VringCounters rx;  // from the wire
  VringCounters tx;  // to the wire
  Counter tx_errors;
  FwdCache fwd;

  explicit NicQueue(const NicOps& o);
  ~NicQueue();
};

// "native" or "generic" for AF_XDP queues, else "".
const char* nic_xdp_mode(const NicQueue& q);

// A NIC queue as a poll thread's work item (switch/datapath.h PollOps): its backend's poll; the thread sleeps on
// the socket (a filled ring block, a frame to read).
struct PollOps;
extern const PollOps kNicPollOps;
// Sends f out of dst's queue of this thread, through its backend.
int nic_send(PollContext& c, Port& dst, const Frame& f);

// Parses one received frame (after its 10-byte vnet header) and forwards it: shared by every backend.
// offloaded_tag/tci: an 802.1Q tag the kernel took off the frame.
void nic_receive(PollContext& c, Port& p, NicQueue& q, const uint8_t* vnet, uint8_t* data, uint32_t len,
                 bool offloaded_tag, uint16_t tci);

// The 10-byte header of PACKET_VNET_HDR and IFF_VNET_HDR (virtio_net_hdr without num_buffers).
constexpr uint32_t kVnetHdr = 10;

// A frame as the kernel takes it from AF_PACKET and tap (vnet header, Ethernet header with the tag of a trunk,
// the payload straight from the source's buffers), for one sendmsg()/writev().
struct KernelTx {
  uint8_t vnet[kVnetHdr];
  uint8_t tag[4];
  iovec iov[kMaxChainBufs + 4];
  int n = 0;
  bool tagged = false;
};
// Fills tx for f toward dst. Returns -1, or the drop reason (counted on q).
int kernel_tx_prepare(const Port& dst, NicQueue& q, const Frame& f, KernelTx& tx);
// Counts what the kernel said to the send (r: its result). Returns -1, or the drop reason.
int kernel_tx_done(NicQueue& q, const Frame& f, const KernelTx& tx, ssize_t r);

// Brings interface name up (SIOCSIFFLAGS). False with the reason in err.
bool nic_bring_up(const char* name, std::string& err);
// "what: strerror(errno)".
std::string nic_sys_err(const std::string& what);

}  // namespace vs
