// JavaScript values into the switch's types, and its snapshots back into JavaScript objects, for binding_switch.cc.
// A value of the wrong type or out of range throws a TypeError or RangeError naming the argument (`what`).
#pragma once
#include <napi.h>

#include <cstdint>
#include <memory>
#include <string>

#include "core/guest_memory.h"
#include "switch/switch.h"

namespace vs {

// A bigint, or a number that is a non-negative integer (at most 2^53 - 1).
uint64_t to_u64(const Napi::Value& v, const char* what);
uint32_t to_u32(const Napi::Value& v, const char* what);
// A number; any negative one is -1 (none).
int to_fd(const Napi::Value& v);
// A MAC address written "02:00:00:00:00:01" into m[6].
void to_mac(const Napi::Value& v, uint8_t* m);
// A VLAN id from min to kMaxVlan.
uint16_t to_vlan(const Napi::Value& v, uint32_t min, const char* what);
// {guestPhysAddr, size, userAddr, mmapOffset}: the addresses of a memory region (its fd is read apart, first, so
// that it is closed whatever else is wrong).
void read_region(const Napi::Object& r, MemRegionSpec& spec);

// The Switch constructor's {threads, cpus, agingSeconds, fdbSizeLog2, idleMicros}: what is absent keeps its
// default; a thread count or table size outside limits.h throws the refusal (binding.h check).
SwitchOptions read_switch_options(const Napi::Object& opts);
// {vlan, trunk, allowedVlans}: the port's VLAN membership (vlan.h). allowedVlans absent: every VLAN.
void read_vlan_config(const Napi::Object& o, PortConfig& c);
// queueThreads: [thread or -1 per queue]; absent: every queue placed by the switch.
void read_queue_threads(const Napi::Object& o, PortConfig& c);
// o.security: {macs: string[] (the port's own first), ips: string[]}; absent: port security off (null).
std::shared_ptr<const PortSecurity> security_of(Napi::Env env, const Napi::Object& o);

Napi::BigInt big(Napi::Env env, uint64_t x);
std::string mac_string(uint64_t key);  // the MAC of an FDB key
Napi::Object port_stats_object(Napi::Env env, const PortStatsSnapshot& s);
Napi::Object thread_stats_object(Napi::Env env, const Switch& sw, int t);

}  // namespace vs
