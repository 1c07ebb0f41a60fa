// The outcome of a control call (switch.h, vhost_control.h): ok, or a code saying what kind of refusal it is and a
// message saying why. The code is for programs (the binding turns it into the JavaScript error's `code`, and the control plane
// into its domain errors), the message for people; nothing matches on message text.
#pragma once
#include <string>
#include <utility>

namespace vs {

enum class StatusCode {
  kOk,
  kInvalidArgument,  // the request itself is wrong: out of range, malformed, outside guest memory
  kNotFound,         // the port (or ring, capture) it names does not exist
  kBusy,             // valid, but not now: the ring is running, a capture already runs
  kUnavailable,      // a resource outside the switch refused: an interface to open, memory to map
  kInternal,         // a bug or an unexpected system failure
};

// "INVALID_ARGUMENT", "NOT_FOUND", ...: the codes as JavaScript sees them.
inline const char* status_code_name(StatusCode c) {
  switch (c) {
    case StatusCode::kOk: return "OK";
    case StatusCode::kInvalidArgument: return "INVALID_ARGUMENT";
    case StatusCode::kNotFound: return "NOT_FOUND";
    case StatusCode::kBusy: return "BUSY";
    case StatusCode::kUnavailable: return "UNAVAILABLE";
    case StatusCode::kInternal: return "INTERNAL";
  }
  return "INTERNAL";
}

class [[nodiscard]] Status {
 public:
  Status() = default;  // ok
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status Ok() { return Status(); }
inline Status InvalidArgument(std::string m) { return Status(StatusCode::kInvalidArgument, std::move(m)); }
inline Status NotFound(std::string m) { return Status(StatusCode::kNotFound, std::move(m)); }
inline Status Busy(std::string m) { return Status(StatusCode::kBusy, std::move(m)); }
inline Status Unavailable(std::string m) { return Status(StatusCode::kUnavailable, std::move(m)); }
inline Status Internal(std::string m) { return Status(StatusCode::kInternal, std::move(m)); }

}  // namespace vs
