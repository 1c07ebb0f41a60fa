// N-API surface of our virtio driver and packet generator: the frontend side used by `vhost-switch gen`,
// the e2e tests and the hostile-frontend tests. The handshake itself is TypeScript (src/vhost/frontend.ts).
#include <napi.h>

#include <cstdio>
#include <cstring>

#include "node/binding.h"
#include "driver/generator.h"

namespace vs {

namespace {

uint32_t u32(const Napi::Value& v, const char* what) {
  if (!v.IsNumber()) throw Napi::TypeError::New(v.Env(), std::string(what) + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (d < 0 || d > 4294967295.0 || d != static_cast<double>(static_cast<uint32_t>(d)))
    throw Napi::RangeError::New(v.Env(), std::string(what) + " must be a 32-bit unsigned integer");
  return static_cast<uint32_t>(d);
}

uint64_t u64(const Napi::Value& v, const char* what) {
  if (v.IsBigInt()) {
    bool lossless;
    return v.As<Napi::BigInt>().Uint64Value(&lossless);
  }
  return u32(v, what);
}

void parse_mac(const Napi::Value& v, uint8_t* m) {
  unsigned x[6];
  std::string s = v.As<Napi::String>().Utf8Value();
  if (sscanf(s.c_str(), "%2x:%2x:%2x:%2x:%2x:%2x", &x[0], &x[1], &x[2], &x[3], &x[4], &x[5]) != 6)
    throw Napi::TypeError::New(v.Env(), "bad MAC address: " + s);
  for (int i = 0; i < 6; i++) m[i] = static_cast<uint8_t>(x[i]);
}

}  // namespace

class DriverWrap : public Napi::ObjectWrap<DriverWrap> {
 public:
  static Napi::FunctionReference* ctor;
  static Napi::Function Define(Napi::Env env) {
    Napi::Function f = DefineClass(
        env, "Driver",
        {InstanceMethod("info", &DriverWrap::Info), InstanceMethod("setFeatures", &DriverWrap::SetFeatures),
         InstanceMethod("fillRx", &DriverWrap::FillRx), InstanceMethod("send", &DriverWrap::Send),
         InstanceMethod("recv", &DriverWrap::Recv), InstanceMethod("reclaimTx", &DriverWrap::ReclaimTx),
         InstanceMethod("writeDesc", &DriverWrap::WriteDesc), InstanceMethod("writeBuf", &DriverWrap::WriteBuf),
         InstanceMethod("bufGpa", &DriverWrap::BufGpa), InstanceMethod("pushAvail", &DriverWrap::PushAvail),
         InstanceMethod("setAvailIdx", &DriverWrap::SetAvailIdx), InstanceMethod("kick", &DriverWrap::Kick),
         InstanceMethod("usedIdx", &DriverWrap::UsedIdx)});
    ctor = new Napi::FunctionReference(Napi::Persistent(f));
    return f;
  }

  DriverWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<DriverWrap>(info) {
    DriverOptions o;
    if (info.Length() > 0 && info[0].IsObject()) {
      Napi::Object a = info[0].As<Napi::Object>();
      if (a.Has("queueSize")) o.queue_size = u32(a.Get("queueSize"), "queueSize");
      if (a.Has("queuePairs")) o.queue_pairs = u32(a.Get("queuePairs"), "queuePairs");
      if (a.Has("bufSize")) o.buf_size = u32(a.Get("bufSize"), "bufSize");
      if (a.Has("packed")) o.packed = a.Get("packed").ToBoolean().Value();
    }
    d_ = std::make_unique<Driver>(o);
    if (!d_->ok()) throw Napi::Error::New(info.Env(), "driver: " + d_->error());
  }
  Driver* driver() { return d_.get(); }

 private:
  int queue(const Napi::Value& v) {
    uint32_t q = u32(v, "queue");
    if (q >= static_cast<uint32_t>(d_->vring_count())) throw Napi::RangeError::New(v.Env(), "queue out of range");
    return static_cast<int>(q);
  }

  // Everything the handshake sends: the memory region and, per vring, addresses and eventfds.
  Napi::Value Info(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    o.Set("memFd", d_->mem_fd());
    o.Set("memSize", Napi::BigInt::New(env, d_->mem_size()));
    o.Set("memUva", Napi::BigInt::New(env, d_->mem_uva()));
    o.Set("queueSize", d_->queue_size());
    o.Set("hdrLen", d_->hdr_len());
    Napi::Array vr = Napi::Array::New(env, d_->vring_count());
    for (int q = 0; q < d_->vring_count(); q++) {
      Napi::Object v = Napi::Object::New(env);
      v.Set("desc", Napi::BigInt::New(env, d_->desc_uva(q)));
      v.Set("avail", Napi::BigInt::New(env, d_->avail_uva(q)));
      v.Set("used", Napi::BigInt::New(env, d_->used_uva(q)));
      v.Set("kickFd", d_->kick_fd(q));
      v.Set("callFd", d_->call_fd(q));
      vr.Set(static_cast<uint32_t>(q), v);
    }
    o.Set("vrings", vr);
    return o;
  }
  Napi::Value SetFeatures(const Napi::CallbackInfo& info) {
    d_->set_features(u64(info[0], "features"));
    return info.Env().Undefined();
  }
  Napi::Value FillRx(const Napi::CallbackInfo& info) {
    d_->fill_rx(queue(info[0]));
    return info.Env().Undefined();
  }
  Napi::Value Send(const Napi::CallbackInfo& info) {
    int q = queue(info[0]);
    Napi::Array arr = info[1].As<Napi::Array>();
    uint32_t sent = 0;
    for (uint32_t i = 0; i < arr.Length(); i++) {
      Napi::Buffer<uint8_t> b = arr.Get(i).As<Napi::Buffer<uint8_t>>();
      const uint8_t* p = b.Data();
      uint32_t len = static_cast<uint32_t>(b.Length());
      if (d_->tx_burst(q, &p, &len, 1) != 1) break;
      sent++;
    }
    return Napi::Number::New(info.Env(), sent);
  }
  Napi::Value Recv(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int q = queue(info[0]);
    uint32_t max = info.Length() > 1 ? u32(info[1], "max") : 32;
    if (max > 256) max = 256;
    const uint8_t* data[256];
    uint32_t lens[256];
    uint32_t n = d_->rx_burst(q, data, lens, max);
    Napi::Array out = Napi::Array::New(env, n);
    for (uint32_t i = 0; i < n; i++) out.Set(i, Napi::Buffer<uint8_t>::Copy(env, data[i], lens[i]));
    return out;
  }
  Napi::Value ReclaimTx(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), d_->reclaim_tx(queue(info[0])));
  }
  // Raw access for hostile tests: any values, including ones no honest driver writes.
  Napi::Value WriteDesc(const Napi::CallbackInfo& info) {
    int q = queue(info[0]);
    uint32_t i = u32(info[1], "index");
    if (i >= d_->queue_size()) throw Napi::RangeError::New(info.Env(), "descriptor index out of range");
    d_->desc(q)[i] = {u64(info[2], "addr"), u32(info[3], "len"), static_cast<uint16_t>(u32(info[4], "flags")),
                      static_cast<uint16_t>(u32(info[5], "next"))};
    return info.Env().Undefined();
  }
  Napi::Value WriteBuf(const Napi::CallbackInfo& info) {
    int q = queue(info[0]);
    uint32_t i = u32(info[1], "index");
    Napi::Buffer<uint8_t> b = info[2].As<Napi::Buffer<uint8_t>>();
    if (i >= d_->queue_size() || b.Length() > 2048) throw Napi::RangeError::New(info.Env(), "buffer out of range");
    std::memcpy(d_->buf(q, i), b.Data(), b.Length());
    return info.Env().Undefined();
  }
  Napi::Value BufGpa(const Napi::CallbackInfo& info) {
    return Napi::BigInt::New(info.Env(), d_->buf_gpa(queue(info[0]), u32(info[1], "index")));
  }
  Napi::Value PushAvail(const Napi::CallbackInfo& info) {
    d_->push_avail(queue(info[0]), static_cast<uint16_t>(u32(info[1], "head")));
    return info.Env().Undefined();
  }
  Napi::Value SetAvailIdx(const Napi::CallbackInfo& info) {
    d_->set_avail_idx(queue(info[0]), static_cast<uint16_t>(u32(info[1], "idx")));
    return info.Env().Undefined();
  }
  Napi::Value Kick(const Napi::CallbackInfo& info) {
    d_->kick(queue(info[0]));
    return info.Env().Undefined();
  }
  Napi::Value UsedIdx(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), __atomic_load_n(&d_->used(queue(info[0]))->idx, __ATOMIC_ACQUIRE));
  }

  std::unique_ptr<Driver> d_;
};
Napi::FunctionReference* DriverWrap::ctor = nullptr;

class GeneratorWrap : public Napi::ObjectWrap<GeneratorWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Generator",
                       {InstanceMethod("addPort", &GeneratorWrap::AddPort), InstanceMethod("start", &GeneratorWrap::Start),
                        InstanceMethod("stop", &GeneratorWrap::Stop), InstanceMethod("stats", &GeneratorWrap::Stats)});
  }
  GeneratorWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<GeneratorWrap>(info) {
    int cpu = -1;
    uint32_t idle_sleep_us = 0;
    if (info.Length() > 0 && info[0].IsObject()) {
      Napi::Object o = info[0].As<Napi::Object>();
      if (o.Has("cpu") && o.Get("cpu").IsNumber()) cpu = o.Get("cpu").As<Napi::Number>().Int32Value();
      if (o.Has("idleSleepMicros") && o.Get("idleSleepMicros").IsNumber()) {
        double v = o.Get("idleSleepMicros").As<Napi::Number>().DoubleValue();
        idle_sleep_us = v > 0 && v <= 100000 ? static_cast<uint32_t>(v) : 0;
      }
    }
    g_ = std::make_unique<Generator>(cpu, idle_sleep_us);
  }
  ~GeneratorWrap() override { g_->stop(); }

 private:
  Napi::Value AddPort(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (g_->running()) throw Napi::Error::New(env, "generator is running");
    Napi::Object drv = info[0].As<Napi::Object>();
    if (!drv.InstanceOf(DriverWrap::ctor->Value())) throw Napi::TypeError::New(env, "first argument must be a Driver");
    DriverWrap* dw = DriverWrap::Unwrap(drv);
    refs_.push_back(Napi::Persistent(drv));  // keep the driver alive while we use its rings
    Napi::Object o = info[1].As<Napi::Object>();
    GenPortConfig c;
    c.driver = dw->driver();
    std::string role = o.Get("role").As<Napi::String>().Utf8Value();
    c.role = role == "source" ? GenRole::kSource : role == "io" ? GenRole::kIo : GenRole::kSink;
    if (o.Has("peer") && o.Get("peer").IsNumber()) c.peer = o.Get("peer").As<Napi::Number>().Int32Value();
    if (o.Has("srcMac")) parse_mac(o.Get("srcMac"), c.src_mac);
    if (o.Has("dstMac")) parse_mac(o.Get("dstMac"), c.dst_mac);
    if (o.Has("sizes") && o.Get("sizes").IsArray()) {
      c.sizes.clear();
      Napi::Array a = o.Get("sizes").As<Napi::Array>();
      for (uint32_t i = 0; i < a.Length(); i++) c.sizes.push_back(u32(a.Get(i), "size"));
    }
    if (o.Has("ratePps")) c.rate_pps = u64(o.Get("ratePps"), "ratePps");
    if (o.Has("count")) c.count = u64(o.Get("count"), "count");
    if (o.Has("firstBurst")) c.first_burst = u32(o.Get("firstBurst"), "firstBurst");
    if (c.peer >= 0 && static_cast<size_t>(c.peer) > g_->port_count() + 8)
      throw Napi::RangeError::New(env, "peer out of range");
    g_->add_port(c);
    return Napi::Number::New(env, static_cast<double>(g_->port_count() - 1));
  }
  Napi::Value Start(const Napi::CallbackInfo& info) {
    g_->start();
    return info.Env().Undefined();
  }
  Napi::Value Stop(const Napi::CallbackInfo& info) {
    g_->stop();
    return info.Env().Undefined();
  }
  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Array out = Napi::Array::New(env, g_->port_count());
    for (size_t i = 0; i < g_->port_count(); i++) {
      const GenPortStats& s = g_->stats(i);
      Napi::Object o = Napi::Object::New(env);
      o.Set("txPackets", Napi::BigInt::New(env, s.tx_packets.get()));
      o.Set("txBytes", Napi::BigInt::New(env, s.tx_bytes.get()));
      o.Set("rxPackets", Napi::BigInt::New(env, s.rx_packets.get()));
      o.Set("rxBytes", Napi::BigInt::New(env, s.rx_bytes.get()));
      o.Set("txRingFull", Napi::BigInt::New(env, s.tx_ring_full.get()));
      o.Set("latencySamples", Napi::BigInt::New(env, s.rx_stamped.get()));
      o.Set("latencyP50Ns", Generator::quantile(s, 0.5));
      o.Set("latencyP99Ns", Generator::quantile(s, 0.99));
      o.Set("latencyP999Ns", Generator::quantile(s, 0.999));
      out.Set(static_cast<uint32_t>(i), o);
    }
    return out;
  }
  std::unique_ptr<Generator> g_;
  std::vector<Napi::ObjectReference> refs_;
};

void InitDriver(Napi::Env env, Napi::Object exports) {
  exports.Set("Driver", DriverWrap::Define(env));
  exports.Set("Generator", GeneratorWrap::Define(env));
}

}  // namespace vs
