#include "host/device-server-process.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <grp.h>
#include <linux/sched.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>

#include "base/guest-memory.h"
#include "base/syscall-name.h"
#include "base/system-error.h"
#include "proto/bootstrap-fds.h"
#include "proto/fd-passing.h"

namespace cellvisor {
namespace {

// A child that could not be confined, before it ran any server code.
constexpr int UNCONFINED_EXIT = 125;

}  // namespace

std::unique_ptr<DeviceResources> makeDeviceResources(const ServerLaunch& launch) {
  return std::make_unique<DeviceResources>(launch.deviceName, launch.queues, launch.vectors,
                                           launch.barMemoryBytes, launch.input);
}

DeviceServerProcess::DeviceServerProcess(ServerLaunch launch, DeviceResources& resources, int memfd,
                                         std::vector<RamRegion> regions)
    : launch_(std::move(launch)), resources_(resources), memfd_(memfd), regions_(std::move(regions)) {
  spawn(false);
}

void DeviceServerProcess::spawn(bool restart) {
  int sockets[2];
  checkSyscall(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sockets), "socketpair");
  UniqueFd ours(sockets[0]);
  UniqueFd theirs(sockets[1]);

  // Everything the child needs is prepared before fork: between fork and
  // exec only raw system calls run (the core has other threads).
  std::string name = launch_.binary;
  char* argv[] = {name.data(), nullptr};
  char* envp[] = {nullptr};  // A cleared environment.
  bool root = ::geteuid() == 0;
  uid_t uid = launch_.uid;
  gid_t gid = launch_.gid;
  // A fresh process in its own PID, mount, network, IPC and UTS namespaces
  // (clone3 without a stack: fork semantics). Without privilege for that,
  // a plain fork that joins what namespaces it can below.
  bool rejoin = netNamespace_ && ipcNamespace_ && utsNamespace_ && mountNamespace_;
  int mountFd = mountNamespace_.get();
  int netFd = netNamespace_.get();
  int ipcFd = ipcNamespace_.get();
  int utsFd = utsNamespace_.get();
  int cgroupFd = launch_.cgroup;
  clone_args args{};
  args.flags = CLONE_NEWPID | (rejoin ? 0 : CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS);
  args.exit_signal = SIGCHLD;
  if (cgroupFd >= 0) {
    // Born in its cgroup: not one instruction runs outside the VM's limits.
    args.flags |= CLONE_INTO_CGROUP;
    args.cgroup = static_cast<uint64_t>(cgroupFd);
  }
  pid_t pid = root ? static_cast<pid_t>(::syscall(SYS_clone3, &args, sizeof(args))) : -1;
  bool bornInCgroup = pid >= 0;  // In the child too: clone3 returned 0 there.
  if (pid < 0) pid = ::fork();
  if (pid < 0) throwSystemError("fork");
  if (pid == 0) {
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int signal = 1; signal < NSIG; ++signal) ::signal(signal, SIG_DFL);
    // Own network, IPC and UTS namespaces: no network but what it is handed.
    // A restart rejoins its predecessor's; the first start made them in
    // clone3 (or, unprivileged, tries here and carries on without).
    if (rejoin) {
      if (::setns(mountFd, CLONE_NEWNS) != 0 || ::setns(netFd, CLONE_NEWNET) != 0 ||
          ::setns(ipcFd, CLONE_NEWIPC) != 0 || ::setns(utsFd, CLONE_NEWUTS) != 0) {
        ::_exit(126);
      }
    } else if (::unshare(CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS | (root ? CLONE_NEWNS : 0)) != 0 &&
               root) {
      // As root a server never runs in the host's namespaces: clone3 was
      // refused, and so is this (a seccomp filter, a container).
      ::_exit(UNCONFINED_EXIT);
    }
    if (cgroupFd >= 0 && !bornInCgroup) {
      // Forked: joins its cgroup before it runs any server code.
      int procs = ::openat(cgroupFd, "cgroup.procs", O_WRONLY | O_CLOEXEC);
      if (procs < 0 || ::write(procs, "0", 1) != 1) ::_exit(126);
      ::close(procs);
    }
    if (::dup2(theirs.get(), BOOTSTRAP_FD) < 0) ::_exit(126);
    ::syscall(SYS_close_range, BOOTSTRAP_FD + 1, ~0u, 0);  // No stray fds.
    if (root) {
      // Its own unprivileged identity: no capabilities survive the exec.
      // Raw system calls: glibc's wrappers make every thread of the process
      // change too, and a clone3 child still has the parent's thread list:
      // one the parent was creating at that moment would be waited for for
      // ever (a restart racing a thread start hung so).
      gid_t groups[] = {gid};
      if (::syscall(SYS_setgroups, 1, groups) != 0 || ::syscall(SYS_setresgid, gid, gid, gid) != 0 ||
          ::syscall(SYS_setresuid, uid, uid, uid) != 0) {
        ::_exit(126);
      }
    }
    // Die with the core rather than serve a VM that is gone. Set after the
    // uid change: changing credentials clears it.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    ::execve(argv[0], argv, envp);
    ::_exit(127);
  }
  theirs.reset();
  if (!rejoin && root) {
    auto open = [&](const char* kind) {
      return UniqueFd(::open(fmt::format("/proc/{}/ns/{}", pid, kind).c_str(), O_RDONLY | O_CLOEXEC));
    };
    mountNamespace_ = open("mnt");
    netNamespace_ = open("net");
    ipcNamespace_ = open("ipc");
    utsNamespace_ = open("uts");
  }
  {
    std::lock_guard lock(processMutex_);
    pid_ = pid;
    pidfd_ = UniqueFd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
    if (!pidfd_) throwSystemError("pidfd_open");
  }

  capnp::MallocMessageBuilder builder;
  auto bootstrap = builder.initRoot<proto::Bootstrap>();
  // The backends are kept open here: a restarted server needs them again.
  std::vector<int> backends;
  for (const auto& backend : launch_.backends) backends.push_back(backend.get());
  std::vector<int> fds = resources_.describe(bootstrap, memfd_, regions_, backends);
  bootstrap.setOptions(launch_.options);
  bootstrap.setRestart(restart);
  bootstrap.setSandbox(launch_.sandbox);
  bootstrap.setFaultInjection(launch_.faultInjection);
  try {
    sendWithFds(ours.get(), builder, fds);
  } catch (const std::system_error&) {
    // The new instance died before reading its bootstrap; the supervisor
    // sees it exit and counts it as another crash.
  }
  lifeline_ = std::move(ours);
}

DeviceServerProcess::~DeviceServerProcess() {
  pid_t pid = pid_.load();
  if (pid > 0) {
    killInstance();
    ::waitpid(pid, nullptr, 0);
  }
}

void DeviceServerProcess::killInstance() {
  // Through the pidfd: the pid of an instance that has exited (and been
  // reaped by another thread) may already name someone else.
  std::lock_guard lock(processMutex_);
  if (pidfd_) ::syscall(SYS_pidfd_send_signal, pidfd_.get(), SIGKILL, nullptr, 0);
}

std::string DeviceServerProcess::reap() {
  std::lock_guard lock(processMutex_);
  int status = 0;
  pid_t pid = pid_.load();
  if (pid <= 0 || ::waitpid(pid, &status, 0) != pid) return "not running";
  pid_ = -1;
  pidfd_.reset();
  if (WIFSIGNALED(status)) {
    int signal = WTERMSIG(status);
    lastExit_ = fmt::format("pid {} killed by signal {} ({})", pid, signal, strsignal(signal));
    uint32_t& violation = resources_.stateHeader().sandboxViolation;
    if (signal == SIGSYS && violation != 0) {
      lastViolation_ = syscallName(violation - 1);
      lastExit_ += fmt::format(": sandbox violation, syscall {}", lastViolation_);
      violation = 0;
    }
  } else if (WEXITSTATUS(status) == UNCONFINED_EXIT) {
    lastExit_ = fmt::format("pid {} could not enter its own namespaces, and did not run unconfined", pid);
  } else {
    lastExit_ = fmt::format("pid {} exited with status {}", pid, WEXITSTATUS(status));
  }
  return lastExit_;
}

void DeviceServerProcess::restart() {
  {
    std::lock_guard lock(processMutex_);
    ++restarts_;
  }
  spawn(true);
}

void DeviceServerProcess::requestRestart(const std::string& binary) {
  if (!binary.empty() && ::access(binary.c_str(), X_OK) != 0) {
    throw std::invalid_argument(launch_.deviceName + ": " + binary + " is not an executable");
  }
  {
    std::lock_guard lock(processMutex_);
    if (!binary.empty()) launch_.binary = binary;
  }
  requestedExit_ = true;
  killInstance();
}

std::vector<uint8_t> DeviceServerProcess::saveState() const {
  std::span<const uint8_t> bytes = resources_.stateBytes();
  return {bytes.begin(), bytes.end()};
}

void DeviceServerProcess::restoreState(const std::vector<uint8_t>& saved) {
  std::span<uint8_t> state = resources_.stateBytes();
  if (saved.size() != state.size()) throw std::invalid_argument("saved device state has the wrong size");
  if (failed()) throw std::runtime_error(launch_.deviceName + ": device has failed; nothing to restore into");
  // The supervisor's own words in the header are not the snapshot's.
  uint32_t failedFlag = resources_.stateHeader().supervisorFailed;
  std::memcpy(state.data(), saved.data(), saved.size());
  resources_.stateHeader().supervisorFailed = failedFlag;
  // Supervised: the supervisor sees the exit (or has a restart pending) and
  // starts the next instance on the restored state. Unsupervised: here.
  if (pid_.load() > 0) {
    killInstance();
    if (supervised_) return;
    reap();
  } else if (supervised_) {
    return;
  }
  restart();
}

bool DeviceServerProcess::exited() const {
  std::lock_guard lock(processMutex_);
  if (!pidfd_) return true;
  pollfd fd{pidfd_.get(), POLLIN, 0};
  return ::poll(&fd, 1, 0) > 0;
}

std::string DeviceServerProcess::lastViolation() const {
  std::lock_guard lock(processMutex_);
  return lastViolation_;
}

std::string DeviceServerProcess::lastExit() const {
  std::lock_guard lock(processMutex_);
  return lastExit_;
}

}  // namespace cellvisor
