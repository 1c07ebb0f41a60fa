// N-API surface of the data plane: a thin, typed wrapper over vs::Switch (see src/dataplane/native.ts).
#include <napi.h>
#include <unistd.h>

#include "node/binding.h"
#include "node/convert.h"
#include "switch/limits.h"
#include "switch/switch.h"

namespace vs {

class SwitchWrap : public Napi::ObjectWrap<SwitchWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Switch",
                       {
                           InstanceMethod("addPort", &SwitchWrap::AddPort),
                           InstanceMethod("addNicPort", &SwitchWrap::AddNicPort),
                           InstanceMethod("removePort", &SwitchWrap::RemovePort),
                           InstanceMethod("parkStats", &SwitchWrap::ParkStats),
                           InstanceMethod("resetPort", &SwitchWrap::ResetPort),
                           InstanceMethod("setFeatures", &SwitchWrap::SetFeatures),
                           InstanceMethod("setMemTable", &SwitchWrap::SetMemTable),
                           InstanceMethod("addMemReg", &SwitchWrap::AddMemReg),
                           InstanceMethod("remMemReg", &SwitchWrap::RemMemReg),
                           InstanceMethod("maxMemSlots", &SwitchWrap::MaxMemSlots),
                           InstanceMethod("setVringNum", &SwitchWrap::SetVringNum),
                           InstanceMethod("setVringAddr", &SwitchWrap::SetVringAddr),
                           InstanceMethod("setVringBase", &SwitchWrap::SetVringBase),
                           InstanceMethod("setLogBase", &SwitchWrap::SetLogBase),
                           InstanceMethod("logInfo", &SwitchWrap::LogInfo),
                           InstanceMethod("sendRarp", &SwitchWrap::SendRarp),
                           InstanceMethod("getVringBase", &SwitchWrap::GetVringBase),
                           InstanceMethod("setVringKick", &SwitchWrap::SetVringKick),
                           InstanceMethod("setVringCall", &SwitchWrap::SetVringCall),
                           InstanceMethod("setVringErr", &SwitchWrap::SetVringErr),
                           InstanceMethod("setVringEnable", &SwitchWrap::SetVringEnable),
                           InstanceMethod("portStats", &SwitchWrap::PortStats),
                           InstanceMethod("threadStats", &SwitchWrap::ThreadStats),
                           InstanceMethod("fdbList", &SwitchWrap::FdbList),
                           InstanceMethod("fdbAdd", &SwitchWrap::FdbAdd),
                           InstanceMethod("fdbRemove", &SwitchWrap::FdbRemove),
                           InstanceMethod("fdbFlush", &SwitchWrap::FdbFlush),
                           InstanceMethod("close", &SwitchWrap::Close),
                           InstanceMethod("tscHz", &SwitchWrap::TscHz),
                           InstanceMethod("updatePort", &SwitchWrap::UpdatePort),
                           InstanceMethod("startCapture", &SwitchWrap::StartCapture),
                           InstanceMethod("readCapture", &SwitchWrap::ReadCapture),
                           InstanceMethod("stopCapture", &SwitchWrap::StopCapture),
                       });
  }

  SwitchWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<SwitchWrap>(info) {
    SwitchOptions o;
    if (info.Length() > 0 && info[0].IsObject()) o = read_switch_options(info[0].As<Napi::Object>());
    sw_ = std::make_unique<Switch>(o);
  }

  ~SwitchWrap() override {
    if (sw_) sw_->close();
  }

 private:
  Switch& sw(Napi::Env env) {
    if (!sw_) throw_status(env, Unavailable("switch is closed"));
    return *sw_;
  }

  Napi::Value AddPort(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object o = info[0].As<Napi::Object>();
    PortConfig c;
    c.name = o.Get("name").As<Napi::String>().Utf8Value();
    read_vlan_config(o, c);
    uint32_t qp = to_u32(o.Get("queuePairs"), "queuePairs");
    uint32_t mtu = to_u32(o.Get("mtu"), "mtu");
    check(env, check_port_limits(qp, mtu));
    c.queue_pairs = static_cast<uint16_t>(qp);
    c.mtu = mtu;
    c.security = security_of(env, o);
    read_queue_threads(o, c);
    return Napi::Number::New(env, sw(env).add_port(c));
  }

  // {name, kind: 'nic' | 'tap', iface, queues, vlan, trunk, allowedVlans, mtu, backend: 'auto' | 'af_xdp' | 'af_packet', security}
  Napi::Value AddNicPort(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object o = info[0].As<Napi::Object>();
    PortConfig c;
    c.name = o.Get("name").As<Napi::String>().Utf8Value();
    std::string kind = o.Get("kind").As<Napi::String>().Utf8Value();
    if (kind != "nic" && kind != "tap") throw Napi::TypeError::New(env, "kind must be 'nic' or 'tap'");
    std::string iface = o.Get("iface").As<Napi::String>().Utf8Value();
    uint32_t queues = o.Has("queues") && !o.Get("queues").IsUndefined() ? to_u32(o.Get("queues"), "queues") : 1;
    uint32_t mtu = o.Has("mtu") && !o.Get("mtu").IsUndefined() ? to_u32(o.Get("mtu"), "mtu") : 1500;
    check(env, check_port_limits(1, mtu));  // the queue count is add_nic_port's to check (a tap has one)
    read_vlan_config(o, c);
    c.mtu = mtu;
    c.queue_pairs = static_cast<uint16_t>(queues > kMaxQueuePairs ? kMaxQueuePairs : queues);
    c.security = security_of(env, o);
    read_queue_threads(o, c);
    // Without a backend the port is AF_PACKET (older callers); the control plane passes 'auto' by default.
    std::string backend = o.Has("backend") && !o.Get("backend").IsUndefined()
                              ? o.Get("backend").As<Napi::String>().Utf8Value()
                              : "af_packet";
    NicBackendChoice choice;
    if (backend == "auto") choice = NicBackendChoice::kAuto;
    else if (backend == "af_xdp") choice = NicBackendChoice::kAfXdp;
    else if (backend == "af_packet") choice = NicBackendChoice::kAfPacket;
    else throw Napi::TypeError::New(env, "backend must be 'auto', 'af_xdp' or 'af_packet'");
    if (kind == "tap" && choice != NicBackendChoice::kAfPacket && choice != NicBackendChoice::kAuto)
      throw Napi::TypeError::New(env, "a tap port has no backend choice");
    uint32_t id = 0;
    Status s = sw(env).add_nic_port(c, kind == "tap" ? PortKind::kTap : PortKind::kNic, iface, static_cast<int>(queues), &id,
                                    choice);
    if (!s.ok()) throw_status(env, Status(s.code(), iface + ": " + s.message()));
    return Napi::Number::New(env, id);
  }

  // updatePort(id, {vlan, trunk, allowedVlans, security, queueThreads}): what changes without renegotiation.
  Napi::Value UpdatePort(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint32_t id = to_u32(info[0], "port");
    Napi::Object o = info[1].As<Napi::Object>();
    PortConfig c;
    read_vlan_config(o, c);
    c.security = security_of(env, o);
    read_queue_threads(o, c);
    check(env, sw(env).update_port(id, c));
    return env.Undefined();
  }

  Napi::Value RemovePort(const Napi::CallbackInfo& info) {
    check(info.Env(), sw(info.Env()).remove_port(to_u32(info[0], "port")));
    return info.Env().Undefined();
  }
  Napi::Value ResetPort(const Napi::CallbackInfo& info) {
    check(info.Env(), sw(info.Env()).reset_port(to_u32(info[0], "port")));
    return info.Env().Undefined();
  }
  Napi::Value SetFeatures(const Napi::CallbackInfo& info) {
    check(info.Env(), sw(info.Env()).set_features(to_u32(info[0], "port"), to_u64(info[1], "features")));
    return info.Env().Undefined();
  }

  Napi::Value SetMemTable(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint32_t id = to_u32(info[0], "port");
    Napi::Array arr = info[1].As<Napi::Array>();
    std::vector<MemRegionSpec> specs;
    // Collect every fd first so that all of them are closed even if a later field is malformed.
    for (uint32_t i = 0; i < arr.Length(); i++) {
      Napi::Object r = arr.Get(i).As<Napi::Object>();
      specs.push_back({0, 0, 0, 0, to_fd(r.Get("fd"))});
    }
    try {
      for (uint32_t i = 0; i < arr.Length(); i++) {
        read_region(arr.Get(i).As<Napi::Object>(), specs[i]);
      }
    } catch (...) {
      for (auto& s : specs)
        if (s.fd >= 0) ::close(s.fd);
      throw;
    }
    check(env, sw(env).set_mem_table(id, specs));
    return env.Undefined();
  }

  // (port, {guestPhysAddr, size, userAddr, mmapOffset, fd})
  Napi::Value AddMemReg(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object r = info[1].As<Napi::Object>();
    MemRegionSpec spec{0, 0, 0, 0, to_fd(r.Get("fd"))};
    uint32_t id;
    try {
      id = to_u32(info[0], "port");
      read_region(r, spec);
    } catch (...) {
      if (spec.fd >= 0) ::close(spec.fd);
      throw;
    }
    check(env, sw(env).add_mem_region(id, spec));
    return env.Undefined();
  }
  Napi::Value RemMemReg(const Napi::CallbackInfo& info) {
    Napi::Object r = info[1].As<Napi::Object>();
    check(info.Env(), sw(info.Env()).remove_mem_region(to_u32(info[0], "port"), to_u64(r.Get("guestPhysAddr"), "guestPhysAddr"),
                                                       to_u64(r.Get("size"), "size"), to_u64(r.Get("userAddr"), "userAddr")));
    return info.Env().Undefined();
  }
  Napi::Value MaxMemSlots(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(kMaxMemSlots));
  }

  Napi::Value SetVringNum(const Napi::CallbackInfo& info) {
    check(info.Env(), sw(info.Env()).set_vring_num(to_u32(info[0], "port"), to_u32(info[1], "index"),
                                                   to_u32(info[2], "num")));
    return info.Env().Undefined();
  }
  Napi::Value SetVringAddr(const Napi::CallbackInfo& info) {
    Napi::Object a = info[2].As<Napi::Object>();
    auto optional = [&](const char* k) { return a.Has(k) && !a.Get(k).IsUndefined() ? to_u64(a.Get(k), k) : 0; };
    uint64_t flags = optional("flags");
    if (flags > 0xffffffffull) throw Napi::RangeError::New(info.Env(), "flags out of range");
    check(info.Env(), sw(info.Env()).set_vring_addr(to_u32(info[0], "port"), to_u32(info[1], "index"),
                                                    to_u64(a.Get("desc"), "desc"), to_u64(a.Get("used"), "used"),
                                                    to_u64(a.Get("avail"), "avail"), static_cast<uint32_t>(flags),
                                                    optional("log")));
    return info.Env().Undefined();
  }
  // (port, {fd, size, offset}): fd -1 when none came with the message.
  Napi::Value SetLogBase(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object o = info[1].As<Napi::Object>();
    int fd = to_fd(o.Get("fd"));
    uint32_t id;
    uint64_t size, offset;
    try {
      id = to_u32(info[0], "port");
      size = to_u64(o.Get("size"), "size");
      offset = to_u64(o.Get("offset"), "offset");
    } catch (...) {
      if (fd >= 0) ::close(fd);
      throw;
    }
    check(env, sw(env).set_log_base(id, fd, size, offset));
    return env.Undefined();
  }
  Napi::Value SendRarp(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint8_t m[6];
    to_mac(info[1], m);
    check(env, sw(env).send_rarp(to_u32(info[0], "port"), m));
    return env.Undefined();
  }
  Napi::Value LogInfo(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint64_t size, outside;
    bool logging;
    if (!sw(env).log_info(to_u32(info[0], "port"), &size, &outside, &logging)) throw_status(env, NotFound("no such port"));
    Napi::Object o = Napi::Object::New(env);
    o.Set("size", big(env, size));
    o.Set("outside", big(env, outside));
    o.Set("logging", logging);
    return o;
  }
  Napi::Value SetVringBase(const Napi::CallbackInfo& info) {
    check(info.Env(), sw(info.Env()).set_vring_base(to_u32(info[0], "port"), to_u32(info[1], "index"),
                                                    to_u32(info[2], "base")));
    return info.Env().Undefined();
  }
  Napi::Value GetVringBase(const Napi::CallbackInfo& info) {
    uint32_t base = 0;
    check(info.Env(), sw(info.Env()).get_vring_base(to_u32(info[0], "port"), to_u32(info[1], "index"), &base));
    return Napi::Number::New(info.Env(), base);
  }
  Napi::Value SetVringFd(const Napi::CallbackInfo& info, int which) {
    Napi::Env env = info.Env();
    int fd = to_fd(info[2]);
    uint32_t id, index;
    try {
      id = to_u32(info[0], "port");
      index = to_u32(info[1], "index");
    } catch (...) {
      if (fd >= 0) ::close(fd);
      throw;
    }
    check(env, sw(env).set_vring_fd(id, index, which, fd));
    return env.Undefined();
  }
  Napi::Value SetVringKick(const Napi::CallbackInfo& info) { return SetVringFd(info, 0); }
  Napi::Value SetVringCall(const Napi::CallbackInfo& info) { return SetVringFd(info, 1); }
  Napi::Value SetVringErr(const Napi::CallbackInfo& info) { return SetVringFd(info, 2); }
  Napi::Value SetVringEnable(const Napi::CallbackInfo& info) {
    check(info.Env(), sw(info.Env()).set_vring_enable(to_u32(info[0], "port"), to_u32(info[1], "index"),
                                                      info[2].ToBoolean()));
    return info.Env().Undefined();
  }

  Napi::Value PortStats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    PortStatsSnapshot s;
    if (!sw(env).port_stats(to_u32(info[0], "port"), &s)) throw_status(env, NotFound("no such port"));
    return port_stats_object(env, s);
  }

  Napi::Value ThreadStats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Switch& s = sw(env);
    Napi::Array out = Napi::Array::New(env, s.thread_count());
    for (int t = 0; t < s.thread_count(); t++) out.Set(static_cast<uint32_t>(t), thread_stats_object(env, s, t));
    return out;
  }

  // parkStats() -> {control, housekeeping}: times the poll threads were parked, by cause (switch.h).
  Napi::Value ParkStats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Switch& s = sw(env);
    Napi::Object o = Napi::Object::New(env);
    o.Set("control", big(env, s.control_parks()));
    o.Set("housekeeping", big(env, s.housekeeping_parks()));
    return o;
  }

  // startCapture(port, {direction: 'in'|'out'|'both', snaplen, bufferBytes})
  Napi::Value StartCapture(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint32_t id = to_u32(info[0], "port");
    Napi::Object o = info.Length() > 1 && info[1].IsObject() ? info[1].As<Napi::Object>() : Napi::Object::New(env);
    std::string dir = o.Has("direction") && o.Get("direction").IsString() ? o.Get("direction").As<Napi::String>().Utf8Value() : "both";
    uint8_t dirs = dir == "in" ? CaptureRing::kIn : dir == "out" ? CaptureRing::kOut : dir == "both" ? CaptureRing::kIn | CaptureRing::kOut : 0;
    uint32_t snaplen = o.Has("snaplen") && !o.Get("snaplen").IsUndefined() ? to_u32(o.Get("snaplen"), "snaplen") : 65535;
    uint32_t bytes = o.Has("bufferBytes") && !o.Get("bufferBytes").IsUndefined() ? to_u32(o.Get("bufferBytes"), "bufferBytes") : 4u << 20;
    check(env, sw(env).start_capture(id, bytes, snaplen, dirs));
    return env.Undefined();
  }

  // readCapture(port, maxBytes, maxRecords) -> {data: Buffer of pcap records, records, captured, dropped} | null
  Napi::Value ReadCapture(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint32_t id = to_u32(info[0], "port");
    uint32_t max = to_u32(info[1], "maxBytes");
    uint32_t max_records = info.Length() > 2 && !info[2].IsUndefined() ? to_u32(info[2], "maxRecords") : UINT32_MAX;
    if (max < CaptureRing::kRecordHeader + CaptureRing::kMaxSnaplen || max > (64u << 20))
      throw Napi::RangeError::New(env, "maxBytes must hold one whole record (70 KiB) and be at most 64 MiB");
    std::unique_ptr<uint8_t[]> buf(new uint8_t[max]);
    size_t n = 0;
    uint32_t records = 0;
    uint64_t captured = 0, dropped = 0;
    if (!sw(env).read_capture(id, buf.get(), max, max_records, &n, &records, &captured, &dropped)) return env.Null();
    Napi::Object o = Napi::Object::New(env);
    o.Set("data", Napi::Buffer<uint8_t>::Copy(env, buf.get(), n));
    o.Set("records", records);
    o.Set("captured", big(env, captured));
    o.Set("dropped", big(env, dropped));
    return o;
  }

  Napi::Value StopCapture(const Napi::CallbackInfo& info) {
    check(info.Env(), sw(info.Env()).stop_capture(to_u32(info[0], "port")));
    return info.Env().Undefined();
  }

  Napi::Value TscHz(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(tsc_hz())); }

  Napi::Value FdbList(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Switch& s = sw(env);
    auto entries = s.fdb().list(s.now());
    Napi::Array out = Napi::Array::New(env, entries.size());
    for (size_t i = 0; i < entries.size(); i++) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("mac", mac_string(entries[i].key));
      o.Set("vlan", Fdb::vlan_of(entries[i].key));
      o.Set("portId", entries[i].port);
      o.Set("static", entries[i].is_static);
      o.Set("ageSeconds", entries[i].age);
      out.Set(static_cast<uint32_t>(i), o);
    }
    return out;
  }

  Napi::Value FdbAdd(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint8_t m[6];
    to_mac(info[0], m);
    if (m[0] & 1) throw Napi::RangeError::New(env, "mac must be unicast");
    uint16_t vlan = to_vlan(info[1], 0, "vlan");
    check(env, sw(env).fdb_add(Fdb::key(m, vlan), to_u32(info[2], "port")));
    return env.Undefined();
  }

  // Returns whether the entry was there.
  Napi::Value FdbRemove(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint8_t m[6];
    to_mac(info[0], m);
    uint16_t vlan = to_vlan(info[1], 0, "vlan");
    return Napi::Boolean::New(env, sw(env).fdb().remove(Fdb::key(m, vlan)));
  }

  Napi::Value FdbFlush(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint32_t port = (info.Length() > 0 && !info[0].IsUndefined()) ? to_u32(info[0], "port") : kNoPort;
    sw(env).fdb().flush(port, false);
    return env.Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (sw_) sw_->close();
    sw_.reset();
    return info.Env().Undefined();
  }

  std::unique_ptr<Switch> sw_;
};

// The limits of native/switch/limits.h and the drop reasons, for src/dataplane/limits.ts to be checked against.
static Napi::Object Limits(Napi::Env env) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("maxThreads", kMaxThreads);
  o.Set("maxQueuePairs", kMaxQueuePairs);
  o.Set("minMtu", kMinMtu);
  o.Set("maxMtu", kMaxMtu);
  o.Set("maxQueueSize", kMaxQueueSize);
  o.Set("maxNicQueues", kMaxQueuePairs);
  Napi::Array drops = Napi::Array::New(env, kDropReasonCount);
  for (int r = 0; r < kDropReasonCount; r++) drops.Set(static_cast<uint32_t>(r), kDropReasonNames[r]);
  o.Set("dropReasons", drops);
  return o;
}

void InitSwitch(Napi::Env env, Napi::Object exports) {
  exports.Set("Switch", SwitchWrap::Define(env));
  exports.Set("limits", Limits(env));
}

}  // namespace vs
