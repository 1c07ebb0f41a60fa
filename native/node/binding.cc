// The addon's entry point: everything Node-specific lives in binding_*.cc; the data plane below it is plain C++.
#include "node/binding.h"

#include <malloc.h>
#include <v8.h>

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

// Hands memory the process no longer uses back to the system, after ports went away (src/host/memtrim.ts). V8 keeps
// heap pages it has emptied and glibc keeps freed chunks in its arenas, so without this the RSS of a daemon whose
// ports come and go creeps up for a long time before it levels off. LowMemoryNotification is V8's own
// memory-reducing collection (compacting, releasing empty pages); N-API has no equivalent, hence the one V8 call.
// malloc_trim(0) returns free arena memory (not only the top) with madvise. Both run on the main thread; the data
// plane's threads do not allocate from the V8 heap and take malloc's locks only when ports change.
static Napi::Value TrimMemory(const Napi::CallbackInfo& info) {
  v8::Isolate* isolate = v8::Isolate::GetCurrent();
  if (isolate != nullptr) isolate->LowMemoryNotification();
  int released = malloc_trim(0);
  return Napi::Boolean::New(info.Env(), released != 0);
}

namespace vs {

namespace {
// Per addon instance (one per Node environment): the error class control calls throw.
struct AddonData {
  Napi::FunctionReference error_class;
};
}  // namespace

void throw_status(Napi::Env env, const Status& s) {
  const char* code = status_code_name(s.code());
  AddonData* d = env.GetInstanceData<AddonData>();
  if (d && !d->error_class.IsEmpty()) {
    Napi::Object e = d->error_class.New({Napi::String::New(env, s.message()), Napi::String::New(env, code)});
    throw Napi::Error(env, e);
  }
  Napi::Error e = Napi::Error::New(env, s.message());
  e.Set("code", Napi::String::New(env, code));
  throw e;
}

}  // namespace vs

// setErrorClass(cls): control calls that are refused throw new cls(message, code) from now on.
static Napi::Value SetErrorClass(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsFunction()) throw Napi::TypeError::New(env, "setErrorClass needs a class");
  auto* d = env.GetInstanceData<vs::AddonData>();
  d->error_class = Napi::Persistent(info[0].As<Napi::Function>());
  return env.Undefined();
}

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  env.SetInstanceData(new vs::AddonData());
  exports.Set("setErrorClass", Napi::Function::New(env, SetErrorClass));
  exports.Set("mallocStats", Napi::Function::New(env, MallocStats));
  exports.Set("trimMemory", Napi::Function::New(env, TrimMemory));
  vs::InitSocket(env, exports);
  vs::InitSwitch(env, exports);
  vs::InitDriver(env, exports);
  return exports;
}

NODE_API_MODULE(vhost_switch, Init)
