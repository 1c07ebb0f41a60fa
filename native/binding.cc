// The addon's entry point: everything Node-specific lives in binding_*.cc; the data plane below it is plain C++.
#include "binding.h"

#include <malloc.h>

// The C/C++ heap of the process (glibc): what the data plane and the addon hold outside V8's heap, for the
// memory figures of GET /v1/stats (a leak there shows in no JavaScript counter).
static Napi::Value MallocStats(const Napi::CallbackInfo& info) {
  struct mallinfo2 m = mallinfo2();
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("inUseBytes", Napi::Number::New(info.Env(), static_cast<double>(m.uordblks + m.hblkhd)));
  o.Set("mmappedBytes", Napi::Number::New(info.Env(), static_cast<double>(m.hblkhd)));
  o.Set("arenaBytes", Napi::Number::New(info.Env(), static_cast<double>(m.arena)));
  return o;
}

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("mallocStats", Napi::Function::New(env, MallocStats));
  vs::InitSocket(env, exports);
  vs::InitSwitch(env, exports);
  vs::InitDriver(env, exports);
  return exports;
}

NODE_API_MODULE(vhost_switch, Init)
