// Confines the core once its VM is built, in two steps around the creation
// of its threads: first it leaves the host (its own mount, network, IPC and
// UTS namespaces, an empty /dev in its view, then the VM's unprivileged
// identity: no capabilities survive), then it enters its sandbox (vmm-core.policy: no_new_privs,
// Landlock without any filesystem right, the seccomp filter on every
// thread). What it keeps are the fds it holds: KVM's, guest RAM, the
// device rings and eventfds, its console and log.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

#include "sandbox/sandbox-policy.h"

namespace cellvisor {

struct CoreIdentity {
  uid_t uid;
  gid_t gid;
};

// Before any thread exists (a mount namespace cannot be left by one thread
// of many). Namespaces need root; without it the core keeps the host's and
// says so in the returned note ("" when nothing was left out).
std::string leaveHost(SandboxMode mode, const std::optional<CoreIdentity>& identity);

// With every thread created and none yet running guest code. A violation
// kills the core with SIGSYS after writing "sandbox violation: syscall N"
// to stderr. Returns how many syscalls the filter allows (0 when off).
size_t enterCoreSandbox(SandboxMode mode);

// Test-only: a call a confined core never makes ("open" a host file,
// "socket", "execve"), to show the sandbox stops it.
void makeForbiddenCall(const std::string& what);

// The core's policy as it is enforced (with the sanitizer runtime's
// needs in a sanitizer build), for tools that list it.
SandboxPolicy corePolicy();

}  // namespace cellvisor
