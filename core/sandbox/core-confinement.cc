#include "core/sandbox/core-confinement.h"

#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <iostream>
#include <stdexcept>

#include "base/system-error.h"
#include "sandbox/sandbox.h"
#include "vmm-core-policy.h"

namespace cellvisor {

std::string leaveHost(SandboxMode mode, const std::optional<CoreIdentity>& identity) {
  if (mode == SandboxMode::OFF) return "";
  if (::geteuid() != 0) {
    if (identity) throw std::runtime_error("--uid needs root to take on the VM's identity");
    return "not root: the core keeps the host's namespaces and its user's identity";
  }
  if (::unshare(CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS) != 0) {
    throwSystemError("unshare (the core's own namespaces)");
  }
  // Nothing mounted here reaches the host, nor the other way.
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
    throwSystemError("mount --make-rprivate /");
  // No host device node in its view: what it needs of /dev (KVM, its
  // consoles) it holds open already. An empty, read-only /dev.
  if (::mount("cellvisor-core", "/dev", "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
              "size=4k,mode=0555") != 0) {
    throwSystemError("mount an empty /dev");
  }
  if (!identity) return "";
  if (::setgroups(0, nullptr) != 0 || ::setresgid(identity->gid, identity->gid, identity->gid) != 0 ||
      ::setresuid(identity->uid, identity->uid, identity->uid) != 0) {
    throwSystemError("taking on the VM's identity");
  }
  return "";
}

void makeForbiddenCall(const std::string& what) {
  int result = -1;
  if (what == "open") {
    result = ::open("/etc/passwd", O_RDONLY | O_CLOEXEC);
  } else if (what == "socket") {
    result = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  } else if (what == "execve") {
    char* argv[] = {const_cast<char*>("/bin/true"), nullptr};
    result = ::execve(argv[0], argv, nullptr);
  } else if (what == "signal") {
    // Signal 0 to init: harmless, but another process's all the same.
    result = static_cast<int>(::syscall(SYS_tgkill, 1, 1, 0));
  }
  // Only reached when the sandbox let it through (--sandbox log).
  std::cerr << "vmm-core: the sandbox let " << what << " through (result " << result << ")\n";
  if (result >= 0) ::close(result);
}

SandboxPolicy corePolicy() {
  return loadEnforcedPolicy("vmm-core.policy", policies::VMM_CORE_POLICY);
}

size_t enterCoreSandbox(SandboxMode mode) {
  return enterSandbox(corePolicy(), mode, nullptr, STDERR_FILENO);
}

}  // namespace cellvisor
