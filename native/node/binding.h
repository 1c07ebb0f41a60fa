// Module init pieces, one per binding file.
#pragma once
#include <napi.h>

namespace vs {
void InitSocket(Napi::Env env, Napi::Object exports);
void InitSwitch(Napi::Env env, Napi::Object exports);
void InitDriver(Napi::Env env, Napi::Object exports);
}  // namespace vs
