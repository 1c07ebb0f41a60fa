// N-API surface for AF_UNIX sockets with fd passing, and a libuv poll watcher so that the TypeScript
// vhost-user code is event-driven on the Node event loop.
#include <napi.h>
#include <uv.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "node/binding.h"
#include "core/unix_socket.h"

namespace vs {

static Napi::Error errno_error(Napi::Env env, const char* what, long neg_errno) {
  int err = static_cast<int>(-neg_errno);
  Napi::Error e = Napi::Error::New(env, std::string(what) + ": " + std::strerror(err));
  // The symbolic code, like Node's own errors (ENOENT, ECONNREFUSED, ...).
  const char* name = nullptr;
  switch (err) {
    case ENOENT: name = "ENOENT"; break;
    case ECONNREFUSED: name = "ECONNREFUSED"; break;
    case EADDRINUSE: name = "EADDRINUSE"; break;
    case EACCES: name = "EACCES"; break;
    case EAGAIN: name = "EAGAIN"; break;
    case EPIPE: name = "EPIPE"; break;
    case ECONNRESET: name = "ECONNRESET"; break;
    case ENAMETOOLONG: name = "ENAMETOOLONG"; break;
    case EMSGSIZE: name = "EMSGSIZE"; break;
    case EBADF: name = "EBADF"; break;
    default: break;
  }
  e.Set("code", name ? Napi::String::New(env, name) : Napi::String::New(env, "E" + std::to_string(err)));
  e.Set("errno", Napi::Number::New(env, err));
  return e;
}

static Napi::Value UnixListen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = unix_listen(info[0].As<Napi::String>().Utf8Value(), info[1].As<Napi::Number>().Int32Value());
  if (fd < 0) throw errno_error(env, "listen", fd);
  return Napi::Number::New(env, fd);
}

static Napi::Value UnixConnect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = unix_connect(info[0].As<Napi::String>().Utf8Value());
  if (fd < 0) throw errno_error(env, "connect", fd);
  return Napi::Number::New(env, fd);
}

static Napi::Value UnixAccept(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = unix_accept(info[0].As<Napi::Number>().Int32Value());
  if (fd == -EAGAIN || fd == -EWOULDBLOCK) return Napi::Number::New(env, -1);
  if (fd < 0) throw errno_error(env, "accept", fd);
  return Napi::Number::New(env, fd);
}

static Napi::Value RecvMsg(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  uint32_t max = info[1].As<Napi::Number>().Uint32Value();
  if (max == 0 || max > (1u << 20)) throw Napi::RangeError::New(env, "recvMsg: maxBytes must be 1..1MiB");
  std::vector<uint8_t> buf(max);
  std::vector<int> fds;
  long n = unix_recv(fd, buf.data(), buf.size(), fds);
  if (n == -EAGAIN || n == -EWOULDBLOCK) return env.Null();
  if (n < 0) throw errno_error(env, "recvmsg", n);
  Napi::Object out = Napi::Object::New(env);
  out.Set("data", Napi::Buffer<uint8_t>::Copy(env, buf.data(), static_cast<size_t>(n)));
  Napi::Array arr = Napi::Array::New(env, fds.size());
  for (size_t i = 0; i < fds.size(); i++) arr.Set(static_cast<uint32_t>(i), Napi::Number::New(env, fds[i]));
  out.Set("fds", arr);
  return out;
}

static Napi::Value SendMsg(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  Napi::Buffer<uint8_t> data = info[1].As<Napi::Buffer<uint8_t>>();
  std::vector<int> fds;
  if (info.Length() > 2 && info[2].IsArray()) {
    Napi::Array arr = info[2].As<Napi::Array>();
    for (uint32_t i = 0; i < arr.Length(); i++) fds.push_back(arr.Get(i).As<Napi::Number>().Int32Value());
  }
  long n = unix_send(fd, data.Data(), data.Length(), fds);
  if (n < 0) throw errno_error(env, "sendmsg", n);
  return Napi::Number::New(env, static_cast<double>(n));
}

static Napi::Value NotifySend(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsString())
    throw Napi::TypeError::New(env, "notifySend(socketPath, message)");
  std::string path = info[0].As<Napi::String>().Utf8Value(), msg = info[1].As<Napi::String>().Utf8Value();
  long n = unix_dgram_send(path, msg.data(), msg.size());
  if (n < 0) throw errno_error(env, "notifySend", n);
  return Napi::Number::New(env, static_cast<double>(n));
}

static Napi::Value CloseFd(const Napi::CallbackInfo& info) {
  int fd = info[0].As<Napi::Number>().Int32Value();
  if (fd >= 0) close(fd);
  return info.Env().Undefined();
}

// A uv_poll_t on a caller-owned fd. The handle is closed asynchronously (libuv rule), so it lives in a
// heap block that outlives the JS object if needed.
class FdWatcher : public Napi::ObjectWrap<FdWatcher> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "FdWatcher",
                       {InstanceMethod("start", &FdWatcher::Start), InstanceMethod("stop", &FdWatcher::Stop),
                        InstanceMethod("close", &FdWatcher::Close)});
  }

  FdWatcher(const Napi::CallbackInfo& info) : Napi::ObjectWrap<FdWatcher>(info) {
    Napi::Env env = info.Env();
    env_ = env;
    callback_ = Napi::Persistent(info[1].As<Napi::Function>());
    uv_loop_t* loop = nullptr;
    napi_get_uv_event_loop(env, &loop);
    handle_ = new uv_poll_t;
    handle_->data = this;
    if (uv_poll_init(loop, handle_, info[0].As<Napi::Number>().Int32Value()) != 0) {
      delete handle_;
      handle_ = nullptr;
      throw Napi::Error::New(env, "uv_poll_init failed");
    }
  }

  ~FdWatcher() override { CloseHandle(); }

 private:
  static void OnPoll(uv_poll_t* h, int status, int events) {
    auto* self = static_cast<FdWatcher*>(h->data);
    if (!self) return;
    Napi::Env env = self->env_;
    Napi::HandleScope scope(env);
    int ev = ((events & UV_READABLE) ? 1 : 0) | ((events & UV_WRITABLE) ? 2 : 0);
    self->callback_.MakeCallback(self->Value(), {Napi::Number::New(env, status), Napi::Number::New(env, ev)});
  }

  Napi::Value Start(const Napi::CallbackInfo& info) {
    if (!handle_) return info.Env().Undefined();
    int ev = (info[0].ToBoolean() ? UV_READABLE : 0) | (info[1].ToBoolean() ? UV_WRITABLE : 0);
    uv_poll_start(handle_, ev, OnPoll);
    if (!referenced_) {
      Ref();  // keep the JS object alive while its callback may fire
      referenced_ = true;
    }
    return info.Env().Undefined();
  }

  Napi::Value Stop(const Napi::CallbackInfo& info) {
    if (handle_) uv_poll_stop(handle_);
    if (referenced_) {
      Unref();
      referenced_ = false;
    }
    return info.Env().Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Stop(info);
    CloseHandle();
    return info.Env().Undefined();
  }

  void CloseHandle() {
    if (!handle_) return;
    handle_->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(handle_),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
    handle_ = nullptr;
  }

  Napi::Env env_{nullptr};
  Napi::FunctionReference callback_;
  uv_poll_t* handle_ = nullptr;
  bool referenced_ = false;
};

void InitSocket(Napi::Env env, Napi::Object exports) {
  exports.Set("unixListen", Napi::Function::New(env, UnixListen));
  exports.Set("unixConnect", Napi::Function::New(env, UnixConnect));
  exports.Set("unixAccept", Napi::Function::New(env, UnixAccept));
  exports.Set("recvMsg", Napi::Function::New(env, RecvMsg));
  exports.Set("sendMsg", Napi::Function::New(env, SendMsg));
  exports.Set("closeFd", Napi::Function::New(env, CloseFd));
  exports.Set("notifySend", Napi::Function::New(env, NotifySend));
  exports.Set("FdWatcher", FdWatcher::Define(env));
}

}  // namespace vs
