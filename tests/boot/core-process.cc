#include "tests/boot/core-process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>

extern char** environ;

namespace cellvisor::testing {

CoreProcess::CoreProcess(const std::vector<std::string>& arguments) {
  int out[2];
  int err[2];
  if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) throw std::runtime_error("pipe");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err[1], 2);
  std::vector<char*> argv;
  for (const auto& argument : arguments) argv.push_back(const_cast<char*>(argument.c_str()));
  argv.push_back(nullptr);
  int result = posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(out[1]);
  ::close(err[1]);
  outFd_ = out[0];
  errFd_ = err[0];
  if (result != 0) throw std::runtime_error("cannot start " + arguments[0]);
}

CoreProcess::~CoreProcess() {
  if (status_ == -2 && pid_ > 0) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  if (outFd_ >= 0) ::close(outFd_);
  if (errFd_ >= 0) ::close(errFd_);
}

bool CoreProcess::pump(std::chrono::milliseconds timeout) {
  pollfd fds[2] = {{outFd_, POLLIN, 0}, {errFd_, POLLIN, 0}};
  int ready = ::poll(fds, 2, static_cast<int>(timeout.count()));
  if (ready <= 0) return false;
  bool open = false;
  for (int i = 0; i < 2; ++i) {
    if (fds[i].fd < 0) continue;
    if (fds[i].revents & (POLLIN | POLLHUP)) {
      char buffer[4096];
      ssize_t count = ::read(fds[i].fd, buffer, sizeof(buffer));
      if (count > 0) {
        (i == 0 ? out_ : err_).append(buffer, static_cast<size_t>(count));
        open = true;
      }
    } else {
      open = true;
    }
  }
  return open;
}

bool CoreProcess::waitFor(const std::string& text, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (output().find(text) == std::string::npos) {
    auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    if (!pump(std::min(left, std::chrono::milliseconds(100))) && status_ != -2) return false;
    int status;
    if (status_ == -2 && ::waitpid(pid_, &status, WNOHANG) == pid_) {
      status_ = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }
  }
  return true;
}

int CoreProcess::wait(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (status_ == -2) {
    int status;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      status_ = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      break;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
      status_ = -1;
      break;
    }
    pump(std::chrono::milliseconds(20));
  }
  while (pump(std::chrono::milliseconds(0))) {
  }
  return status_;
}

void CoreProcess::signal(int number) {
  ::kill(pid_, number);
}

std::string coreBinary() {
  const char* path = std::getenv("CELLVISOR_CORE");
  return path ? path : "vmm-core";
}

std::string guestImage() {
  const char* path = std::getenv("CELLVISOR_GUEST");
  return path ? path : "guest.elf";
}

std::string kvmUnavailableReason() {
  if (::access("/dev/kvm", R_OK | W_OK) != 0) return "no usable /dev/kvm on this host";
  return "";
}

std::vector<int> childrenOf(int pid) {
  std::vector<int> children;
  std::error_code error;
  for (const auto& task :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", error)) {
    std::ifstream list(task.path() / "children");
    for (int child; list >> child;) children.push_back(child);
  }
  return children;
}

std::vector<int> deviceServersOf(int pid) {
  std::vector<int> servers;
  std::error_code error;
  auto self = std::filesystem::read_symlink("/proc/" + std::to_string(pid) + "/exe", error);
  for (int child : childrenOf(pid)) {
    auto exe = std::filesystem::read_symlink("/proc/" + std::to_string(child) + "/exe", error);
    if (error || exe != self) servers.push_back(child);
  }
  return servers;
}

int serverHolding(int pid, const std::string& path) {
  for (int child : deviceServersOf(pid)) {
    std::error_code error;
    for (const auto& fd :
         std::filesystem::directory_iterator("/proc/" + std::to_string(child) + "/fd", error)) {
      if (std::filesystem::read_symlink(fd.path(), error) == path) return child;
    }
  }
  return 0;
}

int guestCoreOf(int pid) {
  std::error_code error;
  auto self = std::filesystem::read_symlink("/proc/" + std::to_string(pid) + "/exe", error);
  for (int child : childrenOf(pid)) {
    if (std::filesystem::read_symlink("/proc/" + std::to_string(child) + "/exe", error) == self) return child;
  }
  return pid;
}

std::string networkUnavailableReason() {
  if (::geteuid() != 0) return "needs root for a private network namespace";
  for (const char* tool : {"/usr/bin/unshare", "/usr/bin/nsenter", "/sbin/ip"}) {
    if (::access(tool, X_OK) != 0) return std::string("needs ") + tool;
  }
  // Try it once: a bridge and a tap in a throwaway namespace.
  CoreProcess probe({"/usr/bin/unshare", "-n", "/bin/sh", "-c",
                     "ip link add probe-br type bridge && ip tuntap add probe-tap mode tap"});
  if (probe.wait(std::chrono::seconds(10)) != 0) {
    return "this host cannot make a bridge and a tap in a network namespace: " + probe.output();
  }
  return "";
}

}  // namespace cellvisor::testing
