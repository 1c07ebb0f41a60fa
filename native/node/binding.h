// Module init pieces, one per binding file, and how a refused control call reaches JavaScript (binding.cc).
#pragma once
#include <napi.h>

#include "switch/status.h"

namespace vs {
void InitSocket(Napi::Env env, Napi::Object exports);
void InitSwitch(Napi::Env env, Napi::Object exports);
void InitDriver(Napi::Env env, Napi::Object exports);

// Throws s (not ok) as the error class JavaScript registered with setErrorClass(cls): new cls(message, code), the
// code one of status_code_name()'s. Without one, a plain Error with a `code` property.
[[noreturn]] void throw_status(Napi::Env env, const Status& s);
// Throws s unless it is ok.
inline void check(Napi::Env env, const Status& s) {
  if (!s.ok()) throw_status(env, s);
}
}  // namespace vs
