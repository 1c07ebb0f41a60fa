#include "switch/switch.h"

#include <unistd.h>

#include <atomic>
#include <cstring>
#include <memory>

#include "core/fault_guard.h"
#include "ports/af_packet.h"
#include "ports/af_xdp.h"
#include "ports/tap.h"
#include "switch/capture.h"
#include "switch/frame.h"
#include "switch/limits.h"
#include "switch/vlan.h"

namespace vs {

namespace {

bool is_rx(uint32_t index) { return index % 2 == 0; }

}  // namespace

uint32_t Switch::add_port(const PortConfig& cfg) {
  uint32_t id;
  exec([&] {
    id = next_id_++;
    ports_[id] = std::make_unique<Port>(id, cfg);
  });
  return id;
}

Status Switch::add_nic_port(const PortConfig& cfg, PortKind kind, const std::string& iface, int queues, uint32_t* id,
                            NicBackendChoice backend) {
  if (kind == PortKind::kTap && queues != 1) return InvalidArgument("a tap port has one queue");
  if (Status s = check_range("queues", queues < 0 ? 0 : queues, 1, kMaxQueuePairs); !s.ok()) return s;
  // Sockets and rings are set up outside exec(): slow, and nothing the poll threads read yet.
  std::vector<std::unique_ptr<NicQueue>> qs;
  static std::atomic<uint16_t> fanout_ids{1};
  uint16_t fanout = static_cast<uint16_t>(fanout_ids.fetch_add(1) ^ (getpid() & 0x7fff));
  std::string why_not_xdp;
  if (kind == PortKind::kNic && backend != NicBackendChoice::kAfPacket) {
    // AF_XDP first; on any failure everything it opened is closed (the program detached) before AF_PACKET.
    if (!open_af_xdp(iface, queues, cfg.mtu, qs, why_not_xdp)) {
      qs.clear();
      if (backend == NicBackendChoice::kAfXdp) return Unavailable("AF_XDP: " + why_not_xdp);
    }
  }
  if (qs.empty()) {
    for (int i = 0; i < queues; i++) {
      std::string err;
      auto q = kind == PortKind::kTap ? open_tap(iface, err) : open_af_packet(iface, queues, fanout, err);
      if (!q) return Unavailable(err);
      qs.push_back(std::move(q));
    }
    if (!why_not_xdp.empty()) qs[0]->note = "AF_XDP: " + why_not_xdp;
  }
  exec([&] {
    *id = next_id_++;
    auto p = std::make_unique<Port>(*id, cfg, kind);
    p->nicq = std::move(qs);
    ports_[*id] = std::move(p);
  });
  return Ok();
}

Status Switch::remove_port(uint32_t id) {
  if (!find_port(id)) return NotFound("no such port");
  std::unique_ptr<Port> gone;
  exec([&] {
    auto it = ports_.find(id);
    gone = std::move(it->second);
    ports_.erase(it);
    fdb_.flush(id, true);
  });
  return Ok();  // gone unmaps memory and closes fds here, after the poll threads were released
}

Status Switch::update_port(uint32_t id, const PortConfig& cfg) {
  std::shared_ptr<const PortSecurity> old;  // freed on return, after the poll threads were released
  return with_port(id, [&](Port& p) -> Status {
    const bool vlans = p.cfg.vlan != cfg.vlan || p.cfg.trunk != cfg.trunk || p.cfg.allowed_vlans != cfg.allowed_vlans;
    p.cfg.vlan = cfg.vlan;
    p.cfg.trunk = cfg.trunk;
    p.cfg.allowed_vlans = cfg.allowed_vlans;
    old = std::move(p.cfg.security);
    p.cfg.security = cfg.security;
    p.cfg.queue_threads = cfg.queue_threads;
    if (vlans) fdb_.flush(id, false);
    return Ok();
  });
}

Status Switch::start_capture(uint32_t id, size_t bytes, uint32_t snaplen, uint8_t directions) {
  if (bytes < 64 * 1024 || bytes > (256u << 20)) return InvalidArgument("capture buffer must be 64 KiB..256 MiB");
  if (snaplen < 64) return InvalidArgument("snaplen must be at least 64");
  if (!directions || (directions & ~(CaptureRing::kIn | CaptureRing::kOut)))
    return InvalidArgument("direction must be in, out or both");
  // Only this thread starts and stops captures: looked at before the park.
  if (Port* p = find_port(id); p && p->capture) return Busy("a capture is already running on this port");
  auto ring = std::make_unique<CaptureRing>(bytes, snaplen, directions);  // allocated before the park
  return with_port(id, [&](Port& p) -> Status {
    p.capture = std::move(ring);
    return Ok();
  });
}

Status Switch::stop_capture(uint32_t id) {
  if (Port* p = find_port(id); p && !p->capture) return NotFound("no capture is running on this port");
  std::unique_ptr<CaptureRing> old;  // freed on return, after the poll threads were released
  return with_port(id, [&](Port& p) -> Status {
    old = std::move(p.capture);
    return Ok();
  });
}

bool Switch::read_capture(uint32_t id, uint8_t* out, size_t max_bytes, uint32_t max_records, size_t* bytes,
                          uint32_t* records, uint64_t* captured, uint64_t* dropped) {
  // The control thread is the only one that starts, stops and reads captures: no park needed to look.
  auto it = ports_.find(id);
  if (it == ports_.end() || !it->second->capture) return false;
  CaptureRing& r = *it->second->capture;
  *bytes = r.take(out, max_bytes, max_records, records);
  *captured = r.captured();
  *dropped = r.dropped();
  return true;
}

Status Switch::send_rarp(uint32_t id, const uint8_t mac[6]) {
  if (mac[0] & 1) return InvalidArgument("not a unicast MAC");
  Port* port = find_port(id);
  if (!port) return NotFound("no such port");
  if (port->kind != PortKind::kVhost) return InvalidArgument("not a vhost-user port");
  // RFC 903 reverse request from the guest's MAC, as QEMU's own announcement looks: broadcast, sender and target
  // hardware address the guest's, no protocol addresses. Padded to the 60-byte minimum.
  uint8_t rarp[60] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  std::memcpy(rarp + 6, mac, 6);
  const uint8_t body[] = {0x80, 0x35, 0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x03};
  std::memcpy(rarp + 12, body, sizeof body);
  std::memcpy(rarp + 22, mac, 6);
  std::memcpy(rarp + 32, mac, 6);
  auto c = std::make_unique<PollContext>();  // big scratch: not on the control thread's stack
  c->sw = this;
  c->thread = -1;
  VringCounters counters;
  // Forwarded as if the guest had sent it on its port: the FDB learns the MAC there, and every port of the VLAN
  // (NICs included) sees it. With the poll threads parked, this thread may write the receive queues.
  return with_port(id, [&](Port& p) -> Status {
    c->now = now();
    Buf pieces[2] = {{rarp, sizeof rarp}, {}};  // vlan_classify may cut a tag out into two
    Frame f;
    f.bufs = pieces;
    f.nbufs = 1;
    f.off = 0;
    f.len = sizeof rarp;
    f.hdr = {};
    std::memcpy(f.eth, rarp, sizeof f.eth);
    int reason = vlan_classify(p.cfg, f, pieces, 2, -1);
    if (reason >= 0) return Unavailable(std::string("dropped: ") + kDropReasonNames[reason]);
    FwdCache cache;
    install_fault_handler();
    FaultGuard g;
    if (sigsetjmp(g.env, 1) == 0) {
      tl_fault_guard = &g;
      forward(*c, p, counters, cache, f);
      flush_rx(*c);
    } else {
      recover_from_fault(*c, g.addr);
    }
    tl_fault_guard = nullptr;
    for (int r = 0; r < kDropReasonCount; r++)
      if (counters.drops[r].get()) return Unavailable(std::string("dropped: ") + kDropReasonNames[r]);
    return Ok();
  });
}

Status Switch::fdb_add(uint64_t key, uint32_t port) {
  if (ports_.find(port) == ports_.end()) return NotFound("no such port");  // ports_ changes on this thread only
  return fdb_.add_static(key, port) ? Ok() : Unavailable("forwarding table is full");
}

bool Switch::port_stats(uint32_t id, PortStatsSnapshot* out) const {
  // Reads live counters without stopping the poll threads; the port map itself only changes in exec(),
  // which runs on this (the control) thread.
  auto it = ports_.find(id);
  if (it == ports_.end()) return false;
  const Port& p = *it->second;
  out->id = id;
  out->name = p.cfg.name;
  out->queues.clear();
  for (size_t i = 0; i < p.vrings.size(); i++) {
    const Vring& v = *p.vrings[i];
    VringStatsSnapshot q{static_cast<int>(i), v.started, v.enabled, v.broken, v.counters.packets.get(),
                         v.counters.bytes.get(), {}};
    for (int r = 0; r < kDropReasonCount; r++) {
      q.drops[r] = v.counters.drops[r].get();
      out->drops[r] += q.drops[r];
    }
    if (is_rx(static_cast<uint32_t>(i))) {
      out->tx_packets += q.packets;  // to the guest
      out->tx_bytes += q.bytes;
    } else {
      out->rx_packets += q.packets;  // from the guest
      out->rx_bytes += q.bytes;
    }
    out->broken |= v.broken;
    out->queues.push_back(q);
  }
  if (!p.nicq.empty()) {
    out->backend = p.nicq[0]->ops->name;
    out->xdp_mode = nic_xdp_mode(*p.nicq[0]);
    out->backend_note = p.nicq[0]->note;
  }
  // NIC queues: what came in from the wire is the port's rx, what went out its tx.
  for (size_t i = 0; i < p.nicq.size(); i++) {
    const NicQueue& nq = *p.nicq[i];
    VringStatsSnapshot q{static_cast<int>(i), true, true, false, nq.rx.packets.get() + nq.tx.packets.get(),
                         nq.rx.bytes.get() + nq.tx.bytes.get(), {}};
    for (int r = 0; r < kDropReasonCount; r++) {
      q.drops[r] = nq.rx.drops[r].get() + nq.tx.drops[r].get();
      if (r == kDropNoRxBuffer) q.drops[r] += xdp_kernel_rx_drops(nq);  // dropped by the kernel before our ring
      out->drops[r] += q.drops[r];
    }
    out->rx_packets += nq.rx.packets.get();
    out->rx_bytes += nq.rx.bytes.get();
    out->tx_packets += nq.tx.packets.get();
    out->tx_bytes += nq.tx.bytes.get();
    out->queues.push_back(q);
  }
  return true;
}

}  // namespace vs
