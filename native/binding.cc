// The addon's entry point: everything Node-specific lives in binding_*.cc; the data plane below it is plain C++.
#include "binding.h"

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  vs::InitSocket(env, exports);
  vs::InitSwitch(env, exports);
  vs::InitDriver(env, exports);
  return exports;
}

NODE_API_MODULE(vhost_switch, Init)
