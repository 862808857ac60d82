// System-call failures become exceptions that name the call and errno.
#pragma once

#include <cerrno>
#include <string>
#include <system_error>

namespace cellvisor {

[[noreturn]] void throwSystemError(const std::string& what, int err = errno);

// Returns `result` unless it is negative, in which case it throws naming `what`.
template <typename T>
T checkSyscall(T result, const char* what) {
  if (result < 0) throwSystemError(what);
  return result;
}

// Retries on EINTR; use for calls that may be interrupted by our own signals.
template <typename F>
auto retryOnEintr(F&& call) {
  for (;;) {
    auto result = call();
    if (result >= 0 || errno != EINTR) return result;
  }
}

}  // namespace cellvisor
