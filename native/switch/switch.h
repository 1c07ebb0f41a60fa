// The switch: what its owner (the binding, the tests, the bench) calls. Ports are added, removed and changed here,
// NIC ports opened, captures run, a RARP sent for a migrated guest, static FDB entries added and statistics read;
// what the vhost-user messages do to a port is VhostControl's (vhost_control.h), the poll threads and the park
// protocol are the Engine's (engine.h).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/counters.h"
#include "ports/nic.h"
#include "switch/port.h"
#include "switch/status.h"
#include "switch/vhost_control.h"

namespace vs {

struct VringStatsSnapshot {
  int index;
  bool started, enabled, broken;
  uint64_t packets, bytes;
  uint64_t drops[kDropReasonCount];
};
struct PortStatsSnapshot {
  uint32_t id;
  std::string name;
  uint64_t rx_packets = 0, rx_bytes = 0, tx_packets = 0, tx_bytes = 0;
  uint64_t drops[kDropReasonCount] = {};
  bool broken = false;
  std::string backend, xdp_mode, backend_note;  // NIC ports: af_packet / af_xdp (native|generic) / tap
  std::vector<VringStatsSnapshot> queues;
};

class Switch : public VhostControl {
 public:
  using VhostControl::VhostControl;

  uint32_t add_port(const PortConfig& cfg);
  // A port on a kernel interface: `queues` AF_XDP or AF_PACKET queues on iface (as backend chooses), or a tap
  // device named iface that we create (kUnavailable if the interface cannot be opened).
  Status add_nic_port(const PortConfig& cfg, PortKind kind, const std::string& iface, int queues, uint32_t* id,
                      NicBackendChoice backend = NicBackendChoice::kAfPacket);
  // Every control call returns a Status (status.h): ok, or the code and reason it was refused. The lookups
  // (log_info, port_stats, read_capture) return whether the port (or its capture) exists.
  Status remove_port(uint32_t id);
  // Swaps in what a running port can change without its frontend renegotiating: VLAN membership, port security,
  // queue placement. Learned FDB entries of the port go when its VLANs change (they were learned in the old ones).
  Status update_port(uint32_t id, const PortConfig& cfg);

  // SEND_RARP (after a live migration): a RARP from mac enters the switch on port id, so that the FDB and every
  // other switch on the VLAN learn where the guest is now.
  Status send_rarp(uint32_t id, const uint8_t mac[6]);

  bool port_stats(uint32_t id, PortStatsSnapshot* out) const;

  // Packet capture (capture.h): one at a time per port. bytes: the ring's size; directions: CaptureRing::kIn|kOut.
  Status start_capture(uint32_t id, size_t bytes, uint32_t snaplen, uint8_t directions);
  Status stop_capture(uint32_t id);
  // Moves captured pcap records into out (whole records); false if the port has no capture running.
  bool read_capture(uint32_t id, uint8_t* out, size_t max_bytes, uint32_t max_records, size_t* bytes,
                    uint32_t* records, uint64_t* captured, uint64_t* dropped);

  Status fdb_add(uint64_t key, uint32_t port);
};

}  // namespace vs
