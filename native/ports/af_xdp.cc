// AF_XDP NIC queues (see af_xdp.h): setup by raw syscalls, and the receive/transmit paths.
#include "ports/af_xdp.h"
#include "core/sg.h"

#include <arpa/inet.h>
#include <linux/bpf.h>
#include <linux/if_link.h>
#include <linux/if_packet.h>
#include <linux/if_xdp.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>

#include "core/csum.h"
#include "switch/datapath.h"
#include "switch/frame.h"
#include "ports/gso.h"
#include "ports/nic.h"
#include "switch/port.h"
#include "switch/vlan.h"

#ifndef AF_XDP
#define AF_XDP 44
#endif
#ifndef SOL_XDP
#define SOL_XDP 283
#endif

namespace vs {

namespace {


long bpf(int cmd, bpf_attr* attr) { return syscall(__NR_bpf, cmd, attr, sizeof *attr); }

bpf_insn insn(uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm) {
  bpf_insn i{};
  i.code = code;
  i.dst_reg = dst & 0xf;
  i.src_reg = src & 0xf;
  i.off = off;
  i.imm = imm;
  return i;
}

// The program:  return bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS);
// A queue without a socket in the map falls back to XDP_PASS (the flag's low bits, kernel 5.3+), so the
// kernel's stack keeps what we do not take.
int load_program(int map_fd, std::string& err) {
  bpf_insn prog[] = {
      insn(BPF_LDX | BPF_MEM | BPF_W, BPF_REG_2, BPF_REG_1, offsetof(xdp_md, rx_queue_index), 0),
      insn(BPF_LD | BPF_DW | BPF_IMM, BPF_REG_1, BPF_PSEUDO_MAP_FD, 0, map_fd),
      insn(0, 0, 0, 0, 0),  // upper half of the 64-bit immediate
      insn(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_3, 0, 0, XDP_PASS),
      insn(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_redirect_map),
      insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0),
  };
  static const char license[] = "Dual BSD/GPL";
  char log[1024] = {};
  bpf_attr a{};
  a.prog_type = BPF_PROG_TYPE_XDP;
  a.expected_attach_type = BPF_XDP;
  a.insns = reinterpret_cast<uint64_t>(prog);
  a.insn_cnt = sizeof prog / sizeof prog[0];
  a.license = reinterpret_cast<uint64_t>(license);
  a.log_buf = reinterpret_cast<uint64_t>(log);
  a.log_size = sizeof log;
  a.log_level = 1;
  std::strncpy(a.prog_name, "vs_xsk", sizeof a.prog_name - 1);
  int fd = static_cast<int>(bpf(BPF_PROG_LOAD, &a));
  if (fd < 0) {
    err = nic_sys_err("loading the XDP program");
    if (log[0]) err += " (" + std::string(log) + ")";
  }
  return fd;
}

// Maps one ring of an AF_XDP socket. elem: descriptor size.
bool map_ring(int fd, XdpRing& r, const xdp_ring_offset& off, uint32_t n, size_t elem, off_t pgoff, std::string& err) {
  r.map_len = off.desc + n * elem;
  void* m = mmap(nullptr, r.map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, pgoff);
  if (m == MAP_FAILED) {
    r.map = nullptr;
    err = nic_sys_err("mmap of an AF_XDP ring");
    return false;
  }
  r.map = m;
  auto* b = static_cast<uint8_t*>(m);
  r.producer = reinterpret_cast<uint32_t*>(b + off.producer);
  r.consumer = reinterpret_cast<uint32_t*>(b + off.consumer);
  r.desc = b + off.desc;
  r.mask = n - 1;
  r.prod = __atomic_load_n(r.producer, __ATOMIC_ACQUIRE);
  r.cons = __atomic_load_n(r.consumer, __ATOMIC_ACQUIRE);
  return true;
}

std::unique_ptr<NicQueue> open_queue(unsigned ifindex, int qid, uint32_t max_frame,
                                     const std::shared_ptr<XdpProgram>& prog, std::string& err) {
  auto q = std::make_unique<NicQueue>(kAfXdpOps);
  q->xdp_prog = prog;
  q->xsk.reset(new XdpSocket());
  XdpSocket& x = *q->xsk;
  x.frame_size = max_frame + XdpSocket::kHeadroom <= 2048 ? 2048 : XdpSocket::kMaxChunk;
  x.rx_frames = XdpSocket::kRxBytes / x.frame_size;
  q->fd = socket(AF_XDP, SOCK_RAW | SOCK_CLOEXEC, 0);
  if (q->fd < 0) {
    err = nic_sys_err("AF_XDP socket");
    return nullptr;
  }
  x.umem_len = size_t(x.frame_size) * (x.rx_frames + XdpSocket::kTxFrames);
  void* m = mmap(nullptr, x.umem_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  if (m == MAP_FAILED) {
    err = nic_sys_err("UMEM mmap");
    return nullptr;
  }
  x.umem = static_cast<uint8_t*>(m);
  xdp_umem_reg reg{};
  reg.addr = reinterpret_cast<uint64_t>(x.umem);
  reg.len = x.umem_len;
  reg.chunk_size = x.frame_size;
  reg.headroom = 0;
  if (setsockopt(q->fd, SOL_XDP, XDP_UMEM_REG, &reg, sizeof reg) < 0) {
    err = nic_sys_err("XDP_UMEM_REG");
    return nullptr;
  }
  int nfill = static_cast<int>(x.rx_frames), ncomp = XdpSocket::kTxFrames, nrx = static_cast<int>(x.rx_frames),
      ntx = XdpSocket::kTxFrames;
  if (setsockopt(q->fd, SOL_XDP, XDP_UMEM_FILL_RING, &nfill, sizeof nfill) < 0 ||
      setsockopt(q->fd, SOL_XDP, XDP_UMEM_COMPLETION_RING, &ncomp, sizeof ncomp) < 0 ||
      setsockopt(q->fd, SOL_XDP, XDP_RX_RING, &nrx, sizeof nrx) < 0 ||
      setsockopt(q->fd, SOL_XDP, XDP_TX_RING, &ntx, sizeof ntx) < 0) {
    err = nic_sys_err("AF_XDP ring sizes");
    return nullptr;
  }
  xdp_mmap_offsets off{};
  socklen_t ol = sizeof off;
  if (getsockopt(q->fd, SOL_XDP, XDP_MMAP_OFFSETS, &off, &ol) < 0) {
    err = nic_sys_err("XDP_MMAP_OFFSETS");
    return nullptr;
  }
  if (!map_ring(q->fd, x.rx, off.rx, nrx, sizeof(xdp_desc), XDP_PGOFF_RX_RING, err) ||
      !map_ring(q->fd, x.tx, off.tx, ntx, sizeof(xdp_desc), XDP_PGOFF_TX_RING, err) ||
      !map_ring(q->fd, x.fill, off.fr, nfill, sizeof(uint64_t), XDP_UMEM_PGOFF_FILL_RING, err) ||
      !map_ring(q->fd, x.comp, off.cr, ncomp, sizeof(uint64_t), XDP_UMEM_PGOFF_COMPLETION_RING, err))
    return nullptr;
  // The first half of the UMEM goes to the kernel for receiving, the second is ours for sending.
  auto* fill = static_cast<uint64_t*>(x.fill.desc);
  // SAFETY: slots masked into the fill ring map_ring mapped for nfill entries; each address is a chunk of the
  // UMEM's receive half.
  for (uint32_t i = 0; i < x.rx_frames; i++) fill[(x.fill.prod + i) & x.fill.mask] = uint64_t(i) * x.frame_size;
  x.fill.prod += x.rx_frames;
  __atomic_store_n(x.fill.producer, x.fill.prod, __ATOMIC_RELEASE);
  x.free_tx.reserve(XdpSocket::kTxFrames);
  for (uint32_t i = 0; i < XdpSocket::kTxFrames; i++)
    x.free_tx.push_back(uint64_t(x.rx_frames + i) * x.frame_size);
  sockaddr_xdp sa{};
  sa.sxdp_family = AF_XDP;
  sa.sxdp_flags = XDP_COPY;
  sa.sxdp_ifindex = ifindex;
  sa.sxdp_queue_id = static_cast<uint32_t>(qid);
  // A socket just closed on this queue releases it a little later (deferred work in the kernel): EBUSY for
  // a moment after a port is removed. Retry for up to ~0.5 s.
  int r = -1;
  for (int i = 0; i < 50; i++) {
    r = bind(q->fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
    if (r == 0 || errno != EBUSY) break;
    usleep(10000);
  }
  if (r < 0) {
    err = nic_sys_err("binding the AF_XDP socket to queue " + std::to_string(qid));
    if (errno == EINVAL && qid > 0) err += " (fewer receive queues on the interface?)";
    return nullptr;
  }
  bpf_attr a{};
  uint32_t key = static_cast<uint32_t>(qid), val = static_cast<uint32_t>(q->fd);
  a.map_fd = static_cast<uint32_t>(prog->map_fd);
  a.key = reinterpret_cast<uint64_t>(&key);
  a.value = reinterpret_cast<uint64_t>(&val);
  a.flags = BPF_ANY;
  if (bpf(BPF_MAP_UPDATE_ELEM, &a) < 0) {
    err = nic_sys_err("inserting the AF_XDP socket into the XSKMAP");
    return nullptr;
  }
  return q;
}

}  // namespace

XdpProgram::~XdpProgram() {
  if (link_fd >= 0) close(link_fd);  // detaches the program (the link is not pinned)
  if (prog_fd >= 0) close(prog_fd);
  if (map_fd >= 0) close(map_fd);
  if (promisc_fd >= 0) close(promisc_fd);  // drops our promiscuity reference
}

XdpSocket::~XdpSocket() {
  for (XdpRing* r : {&rx, &tx, &fill, &comp})
    if (r->map) munmap(r->map, r->map_len);
  if (umem) munmap(umem, umem_len);
}

bool open_af_xdp(const std::string& iface, int queues, uint32_t mtu, std::vector<std::unique_ptr<NicQueue>>& out,
                 std::string& err) {
  if (iface.empty() || iface.size() >= IFNAMSIZ) {
    err = "interface name must be 1.." + std::to_string(IFNAMSIZ - 1) + " characters";
    return false;
  }
  if (mtu + kEthHdr + kVlanTag > XdpSocket::kMaxFrame) {
    err = "MTU " + std::to_string(mtu) + " is more than AF_XDP frames carry here (" +
          std::to_string(XdpSocket::kMaxFrame - kEthHdr - kVlanTag) + ")";
    return false;
  }
  unsigned ifindex = if_nametoindex(iface.c_str());
  if (!ifindex) {
    err = "no interface " + iface;
    return false;
  }
  auto prog = std::make_shared<XdpProgram>();
  bpf_attr a{};
  a.map_type = BPF_MAP_TYPE_XSKMAP;
  a.key_size = 4;
  a.value_size = 4;
  a.max_entries = static_cast<uint32_t>(queues);
  std::strncpy(a.map_name, "vs_xsks", sizeof a.map_name - 1);
  prog->map_fd = static_cast<int>(bpf(BPF_MAP_CREATE, &a));
  if (prog->map_fd < 0) {
    err = nic_sys_err("creating the XSKMAP");
    return false;
  }
  prog->prog_fd = load_program(prog->map_fd, err);
  if (prog->prog_fd < 0) return false;
  // Sockets first, then the program: no frame is redirected to a queue before its socket is in the map.
  for (int i = 0; i < queues; i++) {
    auto q = open_queue(ifindex, i, mtu + kEthHdr + kVlanTag, prog, err);
    if (!q) return false;
    out.push_back(std::move(q));
  }
  // Guests' MAC addresses are not the interface's: promiscuous mode, held by a socket that receives nothing
  // (an unbound AF_PACKET socket of protocol 0), so that it ends when the port goes.
  prog->promisc_fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
  packet_mreq mr{};
  mr.mr_ifindex = static_cast<int>(ifindex);
  mr.mr_type = PACKET_MR_PROMISC;
  if (prog->promisc_fd < 0 || setsockopt(prog->promisc_fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof mr) < 0) {
    err = nic_sys_err("promiscuous mode");
    return false;
  }
  // Native (driver) mode where the driver has it, else generic mode.
  std::string drv_err;
  for (uint32_t flags : {uint32_t(XDP_FLAGS_DRV_MODE), uint32_t(XDP_FLAGS_SKB_MODE)}) {
    bpf_attr l{};
    l.link_create.prog_fd = static_cast<uint32_t>(prog->prog_fd);
    l.link_create.target_ifindex = ifindex;
    l.link_create.attach_type = BPF_XDP;
    l.link_create.flags = flags;
    prog->link_fd = static_cast<int>(bpf(BPF_LINK_CREATE, &l));
    if (prog->link_fd >= 0) {
      prog->native = flags == XDP_FLAGS_DRV_MODE;
      break;
    }
    if (flags == XDP_FLAGS_DRV_MODE) drv_err = std::strerror(errno);
  }
  if (prog->link_fd < 0) {
    err = nic_sys_err("attaching the XDP program (driver mode: " + drv_err + "; generic mode") + ")";
    return false;
  }
  // Bring the interface up (as AF_PACKET ports do).
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s >= 0) {
    ifreq ifr{};
    std::strncpy(ifr.ifr_name, iface.c_str(), IFNAMSIZ - 1);
    if (ioctl(s, SIOCGIFFLAGS, &ifr) == 0 && !(ifr.ifr_flags & IFF_UP)) {
      ifr.ifr_flags |= IFF_UP;
      if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0) err = nic_sys_err("bringing the interface up");
    }
    close(s);
    if (!err.empty()) return false;
  }
  return true;
}

uint64_t xdp_kernel_rx_drops(const NicQueue& q) {
  if (q.ops->backend != NicBackend::kAfXdp || q.fd < 0) return 0;
  xdp_statistics st{};
  socklen_t len = sizeof st;
  if (getsockopt(q.fd, SOL_XDP, XDP_STATISTICS, &st, &len) < 0) return 0;
  return st.rx_dropped + st.rx_ring_full;
}

// --- packet path ---

namespace {

uint32_t poll(PollContext& c, Port& p, NicQueue& q) {
  XdpSocket& x = *q.xsk;
  uint32_t avail = __atomic_load_n(x.rx.producer, __ATOMIC_ACQUIRE) - x.rx.cons;
  uint32_t n = avail < kBurst ? avail : kBurst;
  if (!n) return 0;
  auto* rx = static_cast<const xdp_desc*>(x.rx.desc);
  auto* fill = static_cast<uint64_t*>(x.fill.desc);
  for (uint32_t i = 0; i < n; i++) {
    // SAFETY: the slot is masked into the RX ring as map_ring mapped it; one copy of the descriptor.
    xdp_desc d = rx[(x.rx.cons + i) & x.rx.mask];
    // The kernel writes the ring, but we still keep every access inside the UMEM.
    if (d.addr < x.umem_len && d.len <= x.frame_size && d.addr + d.len <= x.umem_len) {
      // No offload state crosses AF_XDP, except a checksum a local sender left pending (csum.h), which
      // is recognised and passed on as NEEDS_CSUM.
      // SAFETY: [addr, addr + len) was checked just above to lie in our UMEM mapping, which lives as long as q.
      uint8_t* data = x.umem + d.addr;
      VirtioNetHdr h{};
      if (pending_l4_csum(data, d.len, &h.csum_start, &h.csum_offset)) h.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
      nic_receive(c, p, q, reinterpret_cast<const uint8_t*>(&h), data, d.len, false, 0);
    }
    // Every frame was copied out by forward(): the chunk goes straight back to the kernel.
    // SAFETY: the slot is masked into the fill ring; the kernel checks the address it is given against the UMEM.
    fill[(x.fill.prod + i) & x.fill.mask] = d.addr & ~uint64_t(x.frame_size - 1);
  }
  x.rx.cons += n;
  x.fill.prod += n;
  __atomic_store_n(x.rx.consumer, x.rx.cons, __ATOMIC_RELEASE);
  __atomic_store_n(x.fill.producer, x.fill.prod, __ATOMIC_RELEASE);
  return n;
}

void reclaim(XdpSocket& x) {
  uint32_t done = __atomic_load_n(x.comp.producer, __ATOMIC_ACQUIRE);
  auto* comp = static_cast<const uint64_t*>(x.comp.desc);
  for (; x.comp.cons != done; x.comp.cons++) {
    // SAFETY: the slot is masked into the completion ring. The address is trusted: the kernel gives back only the
    // chunks we put on the TX ring, all of them in the UMEM's send half.
    uint64_t a = comp[x.comp.cons & x.comp.mask];
    if (x.free_tx.size() < XdpSocket::kTxFrames) x.free_tx.push_back(a);
  }
  __atomic_store_n(x.comp.consumer, x.comp.cons, __ATOMIC_RELEASE);
}

void kick(int fd) { sendto(fd, nullptr, 0, MSG_DONTWAIT, nullptr, 0); }

struct SpinGuard {
  std::atomic_flag& f;
  explicit SpinGuard(std::atomic_flag& f_) : f(f_) {
    while (f.test_and_set(std::memory_order_acquire)) {
    }
  }
  ~SpinGuard() { f.clear(std::memory_order_release); }
};

// One frame without segmentation offload onto the TX ring.
// The kernel is not asked to send it here: copy mode sends only when asked, and the packet path asks once per
// burst (note_pending, xdp_flush).
int send_one(PollContext& c, Port& dst, NicQueue& q, const Frame& f) {
  if (f.len > dst.cfg.mtu + kEthHdr) {
    q.tx.drops[kDropMtu].inc();
    return kDropMtu;
  }
  const bool tag = vlan_tagged_on(dst.cfg, f.vlan);
  const uint64_t wire_len = f.len + (tag ? kVlanTag : 0);
  const bool csum = (f.hdr.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) != 0;
  if (csum && (f.hdr.csum_start < 12 || uint64_t(f.hdr.csum_start) + f.hdr.csum_offset + 2 > f.len)) {
    q.tx.drops[kDropBadHeader].inc();
    return kDropBadHeader;
  }
  XdpSocket& x = *q.xsk;
  uint64_t addr;
  {
    // The lock is not held while guest memory is read: a fault there (SIGBUS, fault_guard.h) jumps out of
    // this function, and would leave it taken. The chunk is recorded in c instead, and given back then.
    SpinGuard g(x.tx_lock);
    if (x.free_tx.empty()) reclaim(x);
    if (x.free_tx.empty()) {
      kick(q.fd);
      reclaim(x);
    }
    if (x.free_tx.empty() || wire_len > x.frame_size) {
      q.tx_errors.inc();
      q.tx.drops[kDropNoRxBuffer].inc();  // every chunk is still on its way out
      return kDropNoRxBuffer;
    }
    addr = x.free_tx.back();
    x.free_tx.pop_back();
    c.xdp_chunk = {&x, addr};
  }
  // SAFETY: addr is a send chunk from free_tx (frame_size bytes inside the UMEM), and wire_len <= frame_size was
  // checked above: every write below stays in it, o never passing wire_len.
  uint8_t* out = x.umem + addr;
  // The Ethernet header from our copy, the one forward() checked (the source's memory may have changed since),
  // the tag after the MAC addresses on trunks, the rest from the source's pieces.
  const uint64_t eth = frame_eth_len(f);
  std::memcpy(out, f.eth, 12);
  uint64_t o = 12;
  if (tag) {
    vlan_tag_bytes(f.vlan, out + o);
    o += kVlanTag;
  }
  std::memcpy(out + o, f.eth + 12, eth - 12);
  o += eth - 12;
  // SAFETY: sg_read stays inside f's pieces, checked when the frame was taken (a guest's by walk(), under the
  // poll thread's fault guard); it copies at most f.len - eth bytes, so o <= wire_len.
  o += sg_read(f.bufs, f.nbufs, f.off + eth, out + o, f.len - eth);
  if (csum) {
    // The field holds the pseudo-header sum; the sum from csum_start to the end completes it.
    // SAFETY: our chunk only: a frame's pieces hold its f.len bytes, so o == wire_len here, and csum_start +
    // csum_offset + 2 <= f.len was checked above (start and the field move by the tag with the bytes).
    uint64_t start = f.hdr.csum_start + (tag ? kVlanTag : 0);
    uint16_t v = static_cast<uint16_t>(~csum_fold(csum_add(0, out + start, o - start)));
    if (v == 0 && f.hdr.csum_offset == 6) v = 0xffff;  // UDP: zero means "no checksum"
    out[start + f.hdr.csum_offset] = uint8_t(v >> 8);
    out[start + f.hdr.csum_offset + 1] = uint8_t(v);
  }
  {
    SpinGuard g(x.tx_lock);
    auto* tx = static_cast<xdp_desc*>(x.tx.desc);
    // The TX ring has as many slots as there are send chunks: a chunk we hold means a free slot.
    // SAFETY: the slot is masked into the TX ring as map_ring mapped it.
    tx[x.tx.prod & x.tx.mask] = {addr, static_cast<uint32_t>(o), 0};
    x.tx.prod++;
    __atomic_store_n(x.tx.producer, x.tx.prod, __ATOMIC_RELEASE);
    c.xdp_chunk = {};
  }
  q.tx.packets.inc();
  q.tx.bytes.add(o);
  return -1;
}

// The kernel sends at most this many frames per sendto() in copy mode (TX_BATCH_SIZE in net/xdp/xsk.c): a
// thread with this many waiting on a queue kicks it at once rather than at the end of the burst.
constexpr uint32_t kKickBatch = 32;

// One more frame on q waits for a kick from this thread. The list is short (the NIC queues a burst reached),
// and its capacity is reserved when the thread starts, so this allocates nothing.
void note_pending(PollContext& c, NicQueue& q) {
  for (auto& k : c.xdp_kicks) {
    if (k.q != &q) continue;
    if (++k.pending == kKickBatch) {
      kick(q.fd);
      k.pending = 0;
    }
    return;
  }
  c.xdp_kicks.push_back({&q, 1});
}

int send(PollContext& c, Port& dst, NicQueue& q, const Frame& f) {
  // No virtio-net header crosses AF_XDP: a pending checksum is computed in send_one(), and TCP GSO frames
  // are cut into MSS-sized frames here (gso.cc); other GSO frames are dropped and counted.
  if ((f.hdr.gso_type & ~VIRTIO_NET_HDR_GSO_ECN) == VIRTIO_NET_HDR_GSO_NONE) {
    int r = send_one(c, dst, q, f);
    if (r < 0) note_pending(c, q);
    return r;
  }
  struct Out {
    PollContext* c;
    Port* dst;
    NicQueue* q;
  } out{&c, &dst, &q};
  auto emit = [](const Frame& seg, void* p) {
    Out* o = static_cast<Out*>(p);
    o->c->work += kSegmentWork + work_units(seg.len);
    if (send_one(*o->c, *o->dst, *o->q, seg) < 0) note_pending(*o->c, *o->q);  // drops counted inside
  };
  if (gso_segment_tcp(f, c.gso, emit, &out)) return -1;
  q.tx.drops[kDropOffload].inc();
  return kDropOffload;
}

}  // namespace

const NicOps kAfXdpOps = {NicBackend::kAfXdp, "af_xdp", poll, send};

void xdp_return_chunk(PollContext& c) {
  XdpSocket* x = c.xdp_chunk.x;
  if (!x) return;
  SpinGuard g(x->tx_lock);
  x->free_tx.push_back(c.xdp_chunk.addr);
  c.xdp_chunk = {};
}

void xdp_flush(PollContext& c) {
  for (auto& k : c.xdp_kicks)
    if (k.pending) kick(k.q->fd);
  c.xdp_kicks.clear();
}

}  // namespace vs
