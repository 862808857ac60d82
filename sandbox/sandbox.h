// Enters a sandbox (a device server's, the core's) once the process is set
// up and before it touches guest-controlled data: resource limits, no filesystem (Landlock), no new
// privileges, then the seccomp filter from its policy. In enforce mode a
// forbidden syscall kills the server with SIGSYS after its number is written
// to `violation` (in the state segment), so the supervisor can say which.
#pragma once

#include <cstdint>

#include "sandbox/sandbox-policy.h"

namespace cellvisor {

// Returns the number of syscalls the filter allows. Throws on failure: a
// server that cannot sandbox itself must not serve. When `reportFd` is an
// fd, a violation also writes "sandbox violation: syscall N" to it (the
// core's log, which its supervisor reads).
size_t enterSandbox(const SandboxPolicy& policy, SandboxMode mode, volatile uint32_t* violation,
                    int reportFd = -1);

// Ends a server that entered its sandbox, with `status`, once its objects
// are destroyed. Not through exit(): at-exit handlers (a sanitizer's leak
// check stops the world with clone and ptrace and reads /proc) make calls the
// filter forbids, and would die or hang there. The kernel releases the rest.
[[noreturn]] void exitSandboxed(int status);

}  // namespace cellvisor
