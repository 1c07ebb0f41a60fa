// AF_XDP backend of NIC queues, without libbpf/libxdp: raw bpf(2) calls and the kernel's UAPI headers.
// Per port: an XSKMAP and a six-instruction XDP program that redirects each received frame to the AF_XDP
// socket of its receive queue (and passes it to the kernel's stack when there is none), attached by a
// bpf_link (native driver mode when the driver has it, else generic/SKB mode). Per queue: one AF_XDP
// socket in copy mode with its own UMEM, half of it for receiving (fill ring), half for sending.
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ports/nic.h"

namespace vs {


// What one port's queues share: the map, the program, the link that attaches it, and the socket that keeps
// the interface promiscuous. Destroying it detaches the program.
struct XdpProgram {
  int map_fd = -1, prog_fd = -1, link_fd = -1, promisc_fd = -1;
  bool native = false;  // driver mode; else generic (SKB) mode
  ~XdpProgram();
};

struct XdpRing {
  uint32_t* producer = nullptr;
  uint32_t* consumer = nullptr;
  void* desc = nullptr;
  uint32_t mask = 0;
  uint32_t prod = 0, cons = 0;  // our copies of the index we own
  void* map = nullptr;
  size_t map_len = 0;
};

// One AF_XDP socket's memory: UMEM and the four rings. The socket's fd is NicQueue::fd.
struct XdpSocket {
  // UMEM chunks of 2 KiB when the MTU allows (twice the frames in the same memory), else 4 KiB (aligned
  // mode allows at most a page); 8 MiB of receive chunks either way, as deep as the AF_PACKET ring for
  // full-sized frames.
  static constexpr uint32_t kHeadroom = 256;  // XDP_PACKET_HEADROOM: where copy mode puts received data
  static constexpr uint32_t kMaxChunk = 4096;
  static constexpr uint32_t kRxBytes = 8u << 20;
  static constexpr uint32_t kTxFrames = 1024;  // chunks we fill for sending
  // The longest frame the largest chunk carries either way.
  static constexpr uint32_t kMaxFrame = kMaxChunk - kHeadroom;
  uint32_t frame_size = kMaxChunk;
  uint32_t rx_frames = kRxBytes / kMaxChunk;  // chunks given to the kernel for receiving
  uint8_t* umem = nullptr;
  size_t umem_len = 0;
  XdpRing rx, tx, fill, comp;
  std::vector<uint64_t> free_tx;  // chunks not on the TX ring nor in flight
  std::atomic_flag tx_lock = ATOMIC_FLAG_INIT;  // the TX ring has one producer: threads sharing the queue take turns
  ~XdpSocket();
};

// Opens `queues` AF_XDP queues on iface (queue ids 0..queues-1) for a port whose frames are at most mtu bytes
// (plus Ethernet header and, on trunks, a tag). Returns false with the reason in err.
bool open_af_xdp(const std::string& iface, int queues, uint32_t mtu, std::vector<std::unique_ptr<NicQueue>>& out,
                 std::string& err);

// Frames the kernel could not hand to this queue (no free chunk on the fill ring, RX ring full): read from
// XDP_STATISTICS, counted as noRxBuffer drops of the port. 0 for other backends.
uint64_t xdp_kernel_rx_drops(const NicQueue& q);

extern const NicOps kAfXdpOps;  // poll: frames from the RX ring; send: onto the TX ring, kicked per burst

// A guest-memory fault interrupted send_one() while it filled a send chunk: gives the chunk back to its socket.
void xdp_return_chunk(PollContext& c);
// Asks the kernel to send what this thread put on AF_XDP queues since the last flush (datapath.cc, flush_rx).
void xdp_flush(PollContext& c);
}  // namespace vs
