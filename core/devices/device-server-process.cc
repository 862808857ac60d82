#include "core/devices/device-server-process.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>

#include "core/base/system-error.h"
#include "core/memory/guest-memory.h"
#include "proto/fd-passing.h"

namespace cellvisor {
namespace {

constexpr int BOOTSTRAP_FD = 3;

UniqueFd makeEventFd() {
  UniqueFd fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!fd) throwSystemError("eventfd");
  return fd;
}

}  // namespace

std::string findServerBinary(const std::string& name) {
  std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe").parent_path();
  for (const auto& candidate : {self / ".." / "servers" / name / (name + "-server"),
                                self / ".." / ".." / "servers" / name / (name + "-server"),
                                self / ".." / "libexec" / "cellvisor" / (name + "-server"),
                                self / (name + "-server")}) {
    if (::access(candidate.c_str(), X_OK) == 0) return std::filesystem::canonical(candidate);
  }
  throw std::runtime_error("cannot find the " + name + " device server next to " + self.string());
}

DeviceServerProcess::DeviceServerProcess(ServerLaunch launch, GuestMemory& memory)
    : launch_(std::move(launch)),
      memory_(memory),
      rings_(RingSegment::create()),
      state_(StateSegment::create()),
      requestDoorbell_(makeEventFd()),
      replyDoorbell_(makeEventFd()) {
  for (uint16_t i = 0; i < launch_.queues; ++i) queueDoorbells_.push_back(makeEventFd());
  for (uint16_t i = 0; i < launch_.vectors; ++i) interrupts_.push_back(makeEventFd());
  channel_.emplace(rings_.requestWriter(), rings_.replyReader(), requestDoorbell_.get(), replyDoorbell_.get());

  int sockets[2];
  checkSyscall(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sockets), "socketpair");
  UniqueFd ours(sockets[0]);
  UniqueFd theirs(sockets[1]);

  // A fresh exec with nothing inherited but stdio and the bootstrap socket.
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, theirs.get(), BOOTSTRAP_FD);
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  sigset_t defaults;
  sigfillset(&defaults);
  posix_spawnattr_setsigdefault(&attributes, &defaults);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attributes, &none);
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
  std::string name = launch_.binary;
  char* argv[] = {name.data(), nullptr};
  char* envp[] = {nullptr};
  int result = posix_spawn(&pid_, launch_.binary.c_str(), &actions, &attributes, argv, envp);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  if (result != 0) throwSystemError("spawn " + launch_.binary, result);
  theirs.reset();

  capnp::MallocMessageBuilder builder;
  auto bootstrap = builder.initRoot<proto::Bootstrap>();
  bootstrap.setProtocolVersion(proto::PROTOCOL_VERSION);
  bootstrap.setDeviceName(launch_.deviceName);
  bootstrap.setOptions(launch_.options);
  bootstrap.setQueueCount(launch_.queues);
  bootstrap.setVectorCount(launch_.vectors);
  auto regions = bootstrap.initRamRegions(static_cast<unsigned>(memory.regions().size()));
  for (unsigned i = 0; i < regions.size(); ++i) {
    regions[i].setGuestPhysical(memory.regions()[i].guestPhysical);
    regions[i].setSize(memory.regions()[i].size);
    regions[i].setMemfdOffset(memory.regions()[i].memfdOffset);
  }
  std::vector<int> fds;
  std::vector<proto::FdRole> roles;
  auto add = [&](int fd, proto::FdRole role) {
    fds.push_back(fd);
    roles.push_back(role);
  };
  add(memory.memfd(), proto::FdRole::GUEST_MEMORY);
  add(rings_.fd(), proto::FdRole::RING_SEGMENT);
  add(state_.fd(), proto::FdRole::STATE_SEGMENT);
  add(requestDoorbell_.get(), proto::FdRole::REQUEST_DOORBELL);
  add(replyDoorbell_.get(), proto::FdRole::REPLY_DOORBELL);
  for (auto& fd : queueDoorbells_) add(fd.get(), proto::FdRole::QUEUE_DOORBELL);
  for (auto& fd : interrupts_) add(fd.get(), proto::FdRole::INTERRUPT);
  if (launch_.backend) add(launch_.backend.get(), proto::FdRole::BACKEND);
  auto roleList = bootstrap.initFds(static_cast<unsigned>(roles.size()));
  for (unsigned i = 0; i < roles.size(); ++i) roleList.set(i, roles[i]);
  sendWithFds(ours.get(), builder, fds);
  // The server holds its own copy of the backend; ours is not needed.
  launch_.backend.reset();
}

DeviceServerProcess::~DeviceServerProcess() {
  if (!exited_ && pid_ > 0) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
}

int DeviceServerProcess::wait() {
  if (!exited_) {
    int status = 0;
    ::waitpid(pid_, &status, 0);
    exited_ = true;
    status_ = status;
  }
  return status_;
}

ReceivedMessage DeviceServerProcess::exchange(capnp::MessageBuilder& request, std::chrono::milliseconds timeout) {
  std::lock_guard lock(callMutex_);
  if (!channel_->send(request, timeout)) throw DeviceUnavailable(launch_.deviceName + ": request ring stayed full");
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    try {
      if (auto reply = channel_->tryReceive()) return std::move(*reply);
    } catch (const ProtocolError& error) {
      throw DeviceUnavailable(launch_.deviceName + ": " + error.what());
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) throw DeviceUnavailable(launch_.deviceName + ": no reply from its server");
    if (!channel_->waitForDoorbell(std::min(left, std::chrono::milliseconds(100))) && !exited_) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        exited_ = true;
        status_ = status;
      }
    }
    if (exited_) throw DeviceUnavailable(launch_.deviceName + ": its server exited");
  }
}

}  // namespace cellvisor
