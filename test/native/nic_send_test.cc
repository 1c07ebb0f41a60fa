// What the switch puts on a kernel interface: every NIC backend (AF_PACKET, AF_XDP, tap) writes the Ethernet
// header the switch checked, not what the guest's memory holds by then, and a guest-memory fault while an
// AF_XDP send chunk is being filled gives the chunk back. Runs in a network namespace of its own (root), on
// a veth pair and a tap device created here; a raw socket on the far end sees what went out.
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>

#include <cstdlib>
#include <cstring>

#include "switch/datapath.h"
#include "switch/frame.h"
#include "ports/nic.h"
#include "ports/af_xdp.h"
#include "harness.h"

using namespace vt;

static const uint8_t A[6] = {0x02, 0, 0, 0, 0, 0xa};
static const uint8_t B[6] = {0x02, 0, 0, 0, 0, 0xb};
static const uint8_t BCAST[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

static void sh(const std::string& cmd) {
  int r = std::system(cmd.c_str());
  if (r != 0) throw Failure{"`" + cmd + "` exited " + std::to_string(r)};
}

// A raw socket on iface that sees every frame the switch sends there.
struct Capture {
  int fd = -1;
  explicit Capture(const char* iface) {
    fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));
    VT_CHECK(fd >= 0);
    sockaddr_ll sll{};
    sll.sll_family = AF_PACKET;
    sll.sll_protocol = htons(ETH_P_ALL);
    sll.sll_ifindex = static_cast<int>(if_nametoindex(iface));
    VT_CHECK(sll.sll_ifindex > 0);
    VT_CHECK(bind(fd, reinterpret_cast<sockaddr*>(&sll), sizeof sll) == 0);
  }
  ~Capture() { ::close(fd); }
  // The next frame from src within ms (the kernel's own frames, IPv6 and the like, are skipped).
  std::vector<uint8_t> next_from(const uint8_t* src, int ms = 2000) {
    std::vector<uint8_t> buf(65536);
    for (auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
         std::chrono::steady_clock::now() < end;) {
      pollfd p{fd, POLLIN, 0};
      if (poll(&p, 1, 50) <= 0) continue;
      ssize_t n = recv(fd, buf.data(), buf.size(), 0);
      if (n >= 14 && std::memcmp(buf.data() + 6, src, 6) == 0) return {buf.begin(), buf.begin() + n};
    }
    return {};
  }
};

// Runs forward() on f as if the poll thread had just taken it from src (threads = 0: nothing races us).
static void forward_now(vs::Switch& sw, uint32_t src, vs::Frame& f) {
  static vs::PollContext c;
  c.sw = &sw;
  vs::VringCounters in;
  vs::FwdCache cache;
  vs::forward(c, *sw.port_by_id(src), in, cache, f);
  vs::flush_rx(c);
}

static uint32_t nic_port(vs::Switch& sw, vs::PortKind kind, const char* iface, vs::NicBackendChoice backend,
                         uint32_t mtu = 1500) {
  uint32_t id = 0;
  vs::PortConfig cfg{std::string("n-") + iface, 0, 1, mtu};
  vs::Status s = sw.add_nic_port(cfg, kind, iface, 1, &id, backend);
  if (!s.ok()) throw Failure{"nic port on " + std::string(iface) + ": " + s.message()};
  return id;
}

// The guest rewrote its frame after the switch checked it (a tag behind the filter's back): f.eth holds what was
// checked, the buffer what the guest wrote since. What reaches the wire must carry the checked bytes.
VT_TEST(every_nic_backend_sends_the_checked_ethernet_header) {
  struct Case {
    const char* name;
    vs::PortKind kind;
    const char* iface;     // the switch's end
    const char* far;       // where the capture listens
    vs::NicBackendChoice backend;
    vs::NicBackend expect;
  } cases[] = {
      {"af_packet", vs::PortKind::kNic, "vtn0", "vtn1", vs::NicBackendChoice::kAfPacket, vs::NicBackend::kAfPacket},
      {"af_xdp", vs::PortKind::kNic, "vtn0", "vtn1", vs::NicBackendChoice::kAfXdp, vs::NicBackend::kAfXdp},
      {"tap", vs::PortKind::kTap, "vtt0", "vtt0", vs::NicBackendChoice::kAfPacket, vs::NicBackend::kTap},
  };
  auto checked = frame(BCAST, A, 64, 0x11);
  auto now = checked;
  now[12] = 0x81, now[13] = 0x00, now[14] = 0x00, now[15] = 0x07;  // tagged for VLAN 7 since the check
  for (const Case& k : cases) {
    vs::SwitchOptions o;
    o.threads = 0;
    vs::Switch sw(o);
    vs::Driver a{{}};
    uint32_t pa = sw.add_port({"a", 0, 1, 1500});
    wire(sw, pa, a);
    uint32_t pn = nic_port(sw, k.kind, k.iface, k.backend);
    VT_CHECK(sw.port_by_id(pn)->nicq[0]->ops->backend == k.expect);
    sh(std::string("ip link set ") + k.far + " up");
    Capture cap(k.far);
    for (int pieces : {1, 2}) {
      vs::Buf bufs[2] = {{now.data(), 64}, {nullptr, 0}};
      if (pieces == 2) bufs[0] = {now.data(), 13}, bufs[1] = {now.data() + 13, 51};
      vs::Frame f{};
      f.bufs = bufs;
      f.nbufs = pieces;
      f.len = 64;
      std::memcpy(f.eth, checked.data(), sizeof f.eth);
      forward_now(sw, pa, f);
      auto got = cap.next_from(A);
      std::printf("     %s, %d piece(s): %zu bytes, ethertype %02x%02x\n", k.name, pieces, got.size(),
                  got.size() > 13 ? got[12] : 0, got.size() > 13 ? got[13] : 0);
      VT_CHECK(got == checked);
    }
    VT_CHECK(sw.remove_port(pn).ok());
  }
}

// A guest's memory file is cut short between the frame's header and its end: the fault comes while send_one()
// copies the frame into an AF_XDP send chunk. The chunk must go back to the socket (else 1024 such faults
// leave the queue unable to send), and the queue must go on sending.
VT_TEST(fault_while_filling_an_af_xdp_send_chunk_gives_the_chunk_back) {
  sh("ip link set vtn0 mtu 3500 && ip link set vtn1 mtu 3500");
  vs::SwitchOptions o;
  o.threads = 0;
  vs::Switch sw(o);
  vs::DriverOptions dopt;
  dopt.buf_size = 3072;  // not a divisor of the page size: most buffers cross a page boundary
  vs::Driver evil{dopt}, b{{}};
  uint32_t pe = sw.add_port({"evil", 0, 1, 3500}), pb = sw.add_port({"b", 0, 1, 3500});
  wire(sw, pe, evil);
  wire(sw, pb, b);
  uint32_t pn = nic_port(sw, vs::PortKind::kNic, "vtn0", vs::NicBackendChoice::kAfXdp, 3500);
  vs::NicQueue& q = *sw.port_by_id(pn)->nicq[0];
  VT_CHECK(q.ops->backend == vs::NicBackend::kAfXdp);
  const size_t chunks = q.xsk->free_tx.size();
  Capture cap("vtn1");

  // The frame's tail lies past the end of evil's memory file: the fault comes while send_one() fills the chunk.
  static const uint8_t WIRE[6] = {0x02, 0, 0, 0, 0, 0x77};  // behind the NIC: the frame goes there alone
  VT_CHECK(sw.fdb_add(vs::Fdb::key(WIRE, 0), pn).ok());
  VT_CHECK(send(evil, frame(WIRE, A, 3000, 0x22)) == 1);
  const uint64_t cut = cut_through_last_frame(evil);
  std::printf("     memory cut at %llu, %zu send chunks\n", (unsigned long long)cut, chunks);
  sw.poll_once();
  VT_CHECK(stats(sw, pe).broken);
  std::printf("     after the fault: %zu send chunks free\n", q.xsk->free_tx.size());
  VT_CHECK(q.xsk->free_tx.size() == chunks);

  // The queue still sends: an honest guest's frame reaches the wire.
  auto ok = frame(BCAST, B, 64, 0x33);
  VT_CHECK(send(b, ok) == 1);
  sw.poll_once();
  VT_CHECK(cap.next_from(B) == ok);
  VT_CHECK(sw.remove_port(pe).ok());
  VT_CHECK(sw.remove_port(pn).ok());
}

int main() {
  // Interfaces of our own, gone with the namespace when the process ends.
  if (unshare(CLONE_NEWNET) != 0) {
    std::perror("unshare(CLONE_NEWNET) (run as root)");
    return 1;
  }
  std::system("ip link set lo up && ip link add vtn0 type veth peer name vtn1 && ip link set vtn0 up && "
              "ip link set vtn1 up && sysctl -qw net.ipv6.conf.all.disable_ipv6=1");
  return run_all();
}
