#include "node/convert.h"

#include <cstdio>

#include "node/binding.h"
#include "switch/limits.h"

namespace vs {

namespace {

bool parse_mac(const std::string& s, uint8_t* m) {
  unsigned v[6];
  char tail;
  if (sscanf(s.c_str(), "%2x:%2x:%2x:%2x:%2x:%2x%c", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &tail) != 6)
    return false;
  for (int i = 0; i < 6; i++) m[i] = static_cast<uint8_t>(v[i]);
  return true;
}

// The drop counters by reason, keyed by their names (counters.h).
Napi::Object drops_object(Napi::Env env, const uint64_t* drops) {
  Napi::Object o = Napi::Object::New(env);
  for (int r = 0; r < kDropReasonCount; r++) o.Set(kDropReasonNames[r], big(env, drops[r]));
  return o;
}

}  // namespace

uint64_t to_u64(const Napi::Value& v, const char* what) {
  if (v.IsBigInt()) {
    bool lossless;
    uint64_t x = v.As<Napi::BigInt>().Uint64Value(&lossless);
    if (!lossless) throw Napi::RangeError::New(v.Env(), std::string(what) + " does not fit in 64 bits");
    return x;
  }
  if (v.IsNumber()) {
    double d = v.As<Napi::Number>().DoubleValue();
    if (d < 0 || d > 9007199254740991.0 || d != static_cast<double>(static_cast<uint64_t>(d)))
      throw Napi::RangeError::New(v.Env(), std::string(what) + " must be a non-negative integer");
    return static_cast<uint64_t>(d);
  }
  throw Napi::TypeError::New(v.Env(), std::string(what) + " must be a bigint or number");
}

uint32_t to_u32(const Napi::Value& v, const char* what) {
  uint64_t x = to_u64(v, what);
  if (x > 0xffffffffull) throw Napi::RangeError::New(v.Env(), std::string(what) + " out of range");
  return static_cast<uint32_t>(x);
}

int to_fd(const Napi::Value& v) {
  if (!v.IsNumber()) throw Napi::TypeError::New(v.Env(), "fd must be a number");
  int fd = v.As<Napi::Number>().Int32Value();
  return fd < 0 ? -1 : fd;
}

void read_region(const Napi::Object& r, MemRegionSpec& spec) {
  spec.guest_phys_addr = to_u64(r.Get("guestPhysAddr"), "guestPhysAddr");
  spec.size = to_u64(r.Get("size"), "size");
  spec.user_addr = to_u64(r.Get("userAddr"), "userAddr");
  spec.mmap_offset = to_u64(r.Get("mmapOffset"), "mmapOffset");
}

Napi::BigInt big(Napi::Env env, uint64_t x) { return Napi::BigInt::New(env, x); }

std::string mac_string(uint64_t key) {
  uint8_t m[6];
  Fdb::mac_of(key, m);
  char s[18];
  snprintf(s, sizeof s, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
  return s;
}

void to_mac(const Napi::Value& v, uint8_t* m) {
  if (!v.IsString() || !parse_mac(v.As<Napi::String>().Utf8Value(), m))
    throw Napi::TypeError::New(v.Env(), "mac must look like 02:00:00:00:00:01");
}

std::shared_ptr<const PortSecurity> security_of(Napi::Env env, const Napi::Object& o) {
  if (!o.Has("security") || o.Get("security").IsUndefined() || o.Get("security").IsNull()) return nullptr;
  if (!o.Get("security").IsObject()) throw Napi::TypeError::New(env, "security must be an object");
  Napi::Object so = o.Get("security").As<Napi::Object>();
  auto strings = [&](const char* field) {
    Napi::Value v = so.Get(field);
    if (v.IsUndefined()) return std::vector<std::string>{};
    if (!v.IsArray()) throw Napi::TypeError::New(env, std::string("security.") + field + " must be an array");
    Napi::Array a = v.As<Napi::Array>();
    std::vector<std::string> out;
    for (uint32_t i = 0; i < a.Length(); i++) {
      if (!a.Get(i).IsString()) throw Napi::TypeError::New(env, std::string("security.") + field + " must hold strings");
      out.push_back(a.Get(i).As<Napi::String>().Utf8Value());
    }
    return out;
  };
  auto s = std::make_shared<PortSecurity>();
  for (const std::string& m : strings("macs")) {
    uint8_t b[6];
    if (!parse_mac(m, b) || (b[0] & 1)) throw Napi::TypeError::New(env, "security.macs: not a unicast MAC: " + m);
    s->add_mac(b);
  }
  if (s->macs.empty()) throw Napi::RangeError::New(env, "security.macs must name the port's MAC");
  for (const std::string& ip : strings("ips")) {
    std::string err = s->add_ip(ip);
    if (!err.empty()) throw Napi::TypeError::New(env, "security.ips: " + err);
  }
  return s;
}

uint16_t to_vlan(const Napi::Value& v, uint32_t min, const char* what) {
  uint32_t x = to_u32(v, what);
  if (x < min || x > kMaxVlan)
    throw Napi::RangeError::New(v.Env(), std::string(what) + " must be " + std::to_string(min) + ".." +
                                             std::to_string(kMaxVlan));
  return static_cast<uint16_t>(x);
}

SwitchOptions read_switch_options(const Napi::Object& opts) {
  Napi::Env env = opts.Env();
  SwitchOptions o;
  if (opts.Has("threads") && !opts.Get("threads").IsUndefined()) {
    uint32_t t = to_u32(opts.Get("threads"), "threads");
    check(env, t == 0 ? InvalidArgument("threads must be 1.." + std::to_string(kMaxThreads)) : check_switch_limits(t, o.fdb_log2));
    o.threads = static_cast<int>(t);
  }
  if (opts.Has("cpus") && opts.Get("cpus").IsArray()) {
    Napi::Array a = opts.Get("cpus").As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); i++) o.cpus.push_back(a.Get(i).As<Napi::Number>().Int32Value());
  }
  if (opts.Has("agingSeconds") && !opts.Get("agingSeconds").IsUndefined())
    o.aging = to_u32(opts.Get("agingSeconds"), "agingSeconds");
  if (opts.Has("fdbSizeLog2") && !opts.Get("fdbSizeLog2").IsUndefined()) {
    uint32_t l = to_u32(opts.Get("fdbSizeLog2"), "fdbSizeLog2");
    check(env, check_switch_limits(0, l));
    o.fdb_log2 = l;
  }
  if (opts.Has("idleMicros") && !opts.Get("idleMicros").IsUndefined())
    o.idle_us = to_u32(opts.Get("idleMicros"), "idleMicros");
  return o;
}

void read_vlan_config(const Napi::Object& o, PortConfig& c) {
  c.vlan = o.Has("vlan") && !o.Get("vlan").IsUndefined() ? to_vlan(o.Get("vlan"), 0, "vlan") : 0;
  c.trunk = o.Has("trunk") && o.Get("trunk").ToBoolean();
  if (!o.Has("allowedVlans") || o.Get("allowedVlans").IsUndefined()) return;
  if (!c.trunk) throw Napi::TypeError::New(o.Env(), "allowedVlans is only for trunk ports");
  if (!o.Get("allowedVlans").IsArray()) throw Napi::TypeError::New(o.Env(), "allowedVlans must be an array");
  Napi::Array a = o.Get("allowedVlans").As<Napi::Array>();
  c.allowed_vlans.reset();
  for (uint32_t i = 0; i < a.Length(); i++) c.allowed_vlans.set(to_vlan(a.Get(i), 1, "allowedVlans[]"));
}

void read_queue_threads(const Napi::Object& o, PortConfig& c) {
  if (!o.Has("queueThreads") || o.Get("queueThreads").IsUndefined()) return;
  if (!o.Get("queueThreads").IsArray()) throw Napi::TypeError::New(o.Env(), "queueThreads must be an array");
  Napi::Array a = o.Get("queueThreads").As<Napi::Array>();
  if (a.Length() > kMaxQueuePairs) throw Napi::RangeError::New(o.Env(), "queueThreads has more entries than queues");
  for (uint32_t i = 0; i < a.Length(); i++) {
    Napi::Value v = a.Get(i);
    if (!v.IsNumber()) throw Napi::TypeError::New(o.Env(), "queueThreads[] must be numbers");
    c.queue_threads.push_back(v.As<Napi::Number>().Int32Value());
  }
}

Napi::Object port_stats_object(Napi::Env env, const PortStatsSnapshot& s) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("id", s.id);
  o.Set("name", s.name);
  o.Set("rxPackets", big(env, s.rx_packets));
  o.Set("rxBytes", big(env, s.rx_bytes));
  o.Set("txPackets", big(env, s.tx_packets));
  o.Set("txBytes", big(env, s.tx_bytes));
  o.Set("drops", drops_object(env, s.drops));
  o.Set("broken", s.broken);
  if (!s.backend.empty()) o.Set("backend", s.backend);
  if (!s.xdp_mode.empty()) o.Set("xdpMode", s.xdp_mode);
  if (!s.backend_note.empty()) o.Set("backendNote", s.backend_note);
  Napi::Array qs = Napi::Array::New(env, s.queues.size());
  for (size_t i = 0; i < s.queues.size(); i++) {
    const VringStatsSnapshot& q = s.queues[i];
    Napi::Object qo = Napi::Object::New(env);
    qo.Set("index", q.index);
    qo.Set("started", q.started);
    qo.Set("enabled", q.enabled);
    qo.Set("broken", q.broken);
    qo.Set("packets", big(env, q.packets));
    qo.Set("bytes", big(env, q.bytes));
    qo.Set("drops", drops_object(env, q.drops));
    qs.Set(static_cast<uint32_t>(i), qo);
  }
  o.Set("queues", qs);
  return o;
}

Napi::Object thread_stats_object(Napi::Env env, const Switch& sw, int t) {
  const ThreadCounters& c = sw.thread_counters(t);
  Napi::Object o = Napi::Object::New(env);
  uint64_t busy = c.busy_cycles.get(), pk = c.packets.get();
  o.Set("thread", t);
  o.Set("busyCycles", big(env, busy));
  o.Set("idleCycles", big(env, c.idle_cycles.get()));
  o.Set("packets", big(env, pk));
  o.Set("busyPasses", big(env, c.busy_passes.get()));
  o.Set("sleeps", big(env, c.sleeps.get()));
  o.Set("parks", big(env, c.parks.get()));
  o.Set("cyclesPerPacket", pk ? static_cast<double>(busy) / static_cast<double>(pk) : 0.0);
  o.Set("sleeping", c.sleeping.load(std::memory_order_relaxed));
  int cpu = sw.thread_cpu(t);
  o.Set("cpu", cpu >= 0 ? Napi::Value(Napi::Number::New(env, cpu)) : env.Null());
  auto queues = sw.thread_queues(t);
  Napi::Array qa = Napi::Array::New(env, queues.size());
  for (size_t i = 0; i < queues.size(); i++) {
    Napi::Object q = Napi::Object::New(env);
    q.Set("portId", queues[i].port);
    q.Set("queue", queues[i].queue);
    q.Set("pinned", queues[i].pinned);
    qa.Set(static_cast<uint32_t>(i), q);
  }
  o.Set("queues", qa);
  return o;
}

}  // namespace vs
