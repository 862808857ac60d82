#include "sandbox/sandbox.h"

#include <dirent.h>
#include <fmt/format.h>
#include <linux/landlock.h>
#include <seccomp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>
#include <iostream>
#include <stdexcept>
#include <string>

namespace cellvisor {
namespace {

volatile uint32_t* violationSlot = nullptr;
int violationReportFd = -1;

// "sandbox violation: syscall N\n" with nothing a signal handler may not call.
void reportViolation(int fd, int number) {
  char line[64] = "sandbox violation: syscall ";
  size_t length = std::strlen(line);
  char digits[12];
  int count = 0;
  unsigned value = static_cast<unsigned>(number);
  do {
    digits[count++] = static_cast<char>('0' + value % 10);
    value /= 10;
  } while (value != 0 && count < 11);
  while (count > 0) line[length++] = digits[--count];
  line[length++] = '\n';
  [[maybe_unused]] ssize_t written = ::write(fd, line, length);
}

void onViolation(int, siginfo_t* info, void*) {
  if (violationSlot != nullptr) *violationSlot = static_cast<uint32_t>(info->si_syscall) + 1;
  if (violationReportFd >= 0) reportViolation(violationReportFd, info->si_syscall);
  // Die of SIGSYS: this syscall is itself forbidden, and with SIGSYS blocked
  // inside this handler the kernel kills the process instead of trapping again.
  syscall(SYS_kill, 0, SIGSYS);
  _exit(128 + SIGSYS);
}

int highestOpenFd() {
  int highest = 2;
  if (DIR* directory = opendir("/proc/self/fd")) {
    while (dirent* entry = readdir(directory)) highest = std::max(highest, std::atoi(entry->d_name));
    closedir(directory);
  }
  return highest;
}

void applyLimits(const SandboxPolicy& policy) {
  for (const auto& limit : policy.limits) {
    int resource;
    if (limit.name == "core")
      resource = RLIMIT_CORE;
    else if (limit.name == "nofile")
      resource = RLIMIT_NOFILE;
    else if (limit.name == "nproc")
      resource = RLIMIT_NPROC;
    else if (limit.name == "fsize")
      resource = RLIMIT_FSIZE;
    else if (limit.name == "memlock")
      resource = RLIMIT_MEMLOCK;
    else
      throw std::invalid_argument(policy.name + ": unknown rlimit " + limit.name);
    // "handed": exactly the descriptors the server already holds.
    rlim_t value = limit.value ? *limit.value : static_cast<rlim_t>(highestOpenFd() + 1 + limit.beyondHanded);
#if defined(__SANITIZE_ADDRESS__)
    // The sanitizer runtime probes memory through a pipe of its own.
    if (!limit.value) value += 4;
#endif
    rlimit bounds{value, value};
    if (setrlimit(resource, &bounds) != 0) throw std::runtime_error("setrlimit " + limit.name);
  }
}

// Takes away every filesystem access right the kernel knows; a server holds
// fds and needs no paths. Best effort: kernels without Landlock skip it.
void denyFilesystem() {
  long abi = syscall(SYS_landlock_create_ruleset, nullptr, 0, LANDLOCK_CREATE_RULESET_VERSION);
  if (abi < 1) return;
  landlock_ruleset_attr attributes{};
  attributes.handled_access_fs = (1ull << 13) - 1;           // ABI 1 rights.
  if (abi >= 2) attributes.handled_access_fs |= 1ull << 13;  // REFER
  if (abi >= 3) attributes.handled_access_fs |= 1ull << 14;  // TRUNCATE
  int ruleset = static_cast<int>(syscall(SYS_landlock_create_ruleset, &attributes, sizeof(attributes), 0));
  if (ruleset < 0) throw std::runtime_error("landlock_create_ruleset failed");
  long result = syscall(SYS_landlock_restrict_self, ruleset, 0);
  close(ruleset);
  if (result != 0) throw std::runtime_error("landlock_restrict_self failed");
}

}  // namespace

void exitSandboxed(int status) {
  std::cerr.flush();
  std::cout.flush();
  ::_exit(status);
}

size_t enterSandbox(const SandboxPolicy& policy, SandboxMode mode, volatile uint32_t* violation,
                    int reportFd) {
  if (mode == SandboxMode::OFF) return 0;
  applyLimits(policy);
  // First: Landlock and seccomp both require it of an unprivileged process.
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) throw std::runtime_error("PR_SET_NO_NEW_PRIVS failed");
  if (mode == SandboxMode::ENFORCE) denyFilesystem();

  violationSlot = violation;
  violationReportFd = reportFd;
  struct sigaction action {};
  action.sa_sigaction = &onViolation;
  action.sa_flags = SA_SIGINFO;
  sigemptyset(&action.sa_mask);
  if (sigaction(SIGSYS, &action, nullptr) != 0) throw std::runtime_error("sigaction SIGSYS failed");

  scmp_filter_ctx filter = seccomp_init(mode == SandboxMode::ENFORCE ? SCMP_ACT_TRAP : SCMP_ACT_LOG);
  if (filter == nullptr) throw std::runtime_error("seccomp_init failed");
  auto release = [&] { seccomp_release(filter); };
  for (const auto& rule : policy.rules) {
    int number = seccomp_syscall_resolve_name(rule.name.c_str());
    if (number == __NR_SCMP_ERROR) {
      release();
      throw std::invalid_argument(policy.name + ": unknown syscall " + rule.name);
    }
    int result;
    if (!rule.condition) {
      result = seccomp_rule_add(filter, SCMP_ACT_ALLOW, number, 0);
    } else if (rule.condition->mask == ~0ull) {
      result = seccomp_rule_add(filter, SCMP_ACT_ALLOW, number, 1,
                                SCMP_CMP(rule.condition->index, SCMP_CMP_EQ, rule.condition->value));
    } else {
      result = seccomp_rule_add(
          filter, SCMP_ACT_ALLOW, number, 1,
          SCMP_CMP(rule.condition->index, SCMP_CMP_MASKED_EQ, rule.condition->mask, rule.condition->value));
    }
    if (result != 0) {
      release();
      throw std::runtime_error(policy.name + ": cannot add rule for " + rule.name);
    }
  }
  // All threads, so a helper thread is no way around the filter. Without it
  // the filter would hold for this thread only: refuse to serve.
  if (int result = seccomp_attr_set(filter, SCMP_FLTATR_CTL_TSYNC, 1); result != 0) {
    release();
    throw std::runtime_error(policy.name + ": seccomp thread synchronisation: " + std::strerror(-result));
  }
  int loaded = seccomp_load(filter);
  release();
  if (loaded != 0) throw std::runtime_error(policy.name + ": seccomp_load: " + std::strerror(-loaded));
  return policy.syscalls().size();
}

}  // namespace cellvisor
