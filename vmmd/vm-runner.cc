#include "vmmd/vm-runner.h"

#include <capnp/serialize-async.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/base/system-error.h"
#include "core/base/unique-fd.h"

extern char** environ;

namespace cellvisor {
namespace {

constexpr int STATUS_FD = 3;

std::string describeExit(int status) {
  if (WIFSIGNALED(status)) return fmt::format("killed by signal {} ({})", WTERMSIG(status), strsignal(WTERMSIG(status)));
  switch (WEXITSTATUS(status)) {
    case 0: return "reboot";
    case 1: return "poweroff";
    case 2: return "halt";
    case 3: return "triple fault";
    case 4: return "error (see vmm.log)";
    default: return fmt::format("exit status {}", WEXITSTATUS(status));
  }
}

}  // namespace

VmRunner::VmRunner(kj::AsyncIoContext& io, Datastore& datastore, std::string coreBinary, std::string name)
    : io_(io), datastore_(datastore), coreBinary_(std::move(coreBinary)), name_(std::move(name)) {}

VmRunner::~VmRunner() {
  // vmmd is going away: ask the guest to shut down (ACPI power button).
  if (pid_ > 0) ::kill(pid_, SIGTERM);
}

std::string VmRunner::consolePath() const { return datastore_.vmDirectory(name_) / "console.sock"; }

std::vector<std::string> VmRunner::coreArguments(int statusFd) const {
  VmConfig config = datastore_.load(name_);
  auto directory = datastore_.vmDirectory(name_);
  std::vector<std::string> args = {coreBinary_, "-c", std::to_string(config.cpu), "-m", config.memoryText,
                                   "-s", "0,hostbridge", "-s", "31,lpc"};
  for (const auto& port : config.comports) {
    args.insert(args.end(), {"-l", port + ",unix=" + (directory / (port == "com1" ? "console.sock" : port + ".sock")).string()});
  }
  int slot = config.startSlot.value_or(4);
  for (const auto& [index, disk] : config.disks) {
    if (disk.type != "virtio-blk") throw VmConfigError(fmt::format("disk{}_type={} is not served yet", index, disk.type));
    std::string spec = fmt::format("{},virtio-blk,{}", slot++, datastore_.diskPath(name_, disk).string());
    if (!disk.opts.empty()) spec += "," + disk.opts;
    args.insert(args.end(), {"-s", spec});
  }
  if (!config.networks.empty()) throw VmConfigError("network interfaces are not served yet");
  if (config.utctime) args.push_back("-u");
  args.insert(args.end(), {"--kernel", config.kernel, "--cmdline", config.kernelCmdline});
  if (!config.kernelInitrd.empty()) args.insert(args.end(), {"--initrd", config.kernelInitrd});
  args.insert(args.end(), {"--status-fd", std::to_string(statusFd), name_});
  return args;
}

void VmRunner::start() {
  if (pid_ > 0) throw DatastoreError("VM '" + name_ + "' is already running");
  std::vector<std::string> args = coreArguments(STATUS_FD);
  int sockets[2];
  checkSyscall(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sockets), "socketpair");
  UniqueFd ours(sockets[0]);
  UniqueFd theirs(sockets[1]);
  std::string log = datastore_.vmDirectory(name_) / "vmm.log";

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  posix_spawn_file_actions_adddup2(&actions, theirs.get(), STATUS_FD);
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSID);  // Its own session: our signals are not its.
  std::vector<char*> argv;
  for (auto& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  pid_t pid;
  int result = posix_spawn(&pid, argv[0], &actions, &attributes, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  if (result != 0) throwSystemError("start " + coreBinary_, result);
  pid_ = pid;
  stopping_ = false;
  devices_.clear();
  reports_ = io_.lowLevelProvider->wrapSocketFd(ours.release(), kj::LowLevelAsyncIoProvider::TAKE_OWNERSHIP);
  watchExit();
  reportTask_ = readReports().eagerlyEvaluate([](kj::Exception&&) {
    // The core closed its end (it exited); the exit watcher takes it from here.
  });
}

void VmRunner::taskFailed(kj::Exception&& exception) { lastExit_ = exception.getDescription().cStr(); }

void VmRunner::watchExit() {
  kj::Maybe<pid_t> child = pid_;
  tasks_.add(io_.unixEventPort.onChildExit(child).then([this](int status) {
    pid_ = 0;
    lastExit_ = describeExit(status);
    reportTask_ = nullptr;
    reports_ = nullptr;
    for (auto& device : devices_) {
      device.state = "stopped";
      device.pid = 0;
    }
    // vm-bhyve restarts a guest that rebooted.
    if (!stopping_ && WIFEXITED(status) && WEXITSTATUS(status) == 0) start();
  }));
}

kj::Promise<void> VmRunner::readReports() {
  return capnp::readMessage(*reports_).then([this](kj::Own<capnp::MessageReader>&& message) {
    devices_.clear();
    for (auto status : message->getRoot<proto::DeviceReport>().getDevices()) {
      devices_.push_back({status.getName(), status.getPid(), status.getState(), status.getRestarts(),
                          status.getLastExit(), status.getPolicy(), status.getSandbox(), status.getLastViolation()});
    }
    return readReports();
  });
}

kj::Promise<void> VmRunner::restartDevice(const std::string& device, const std::string& binary) {
  if (pid_ <= 0 || reports_.get() == nullptr) throw DatastoreError("VM '" + name_ + "' is not running");
  bool known = false;
  for (const auto& snapshot : devices_) known |= snapshot.name == device;
  if (!known) throw DatastoreError("VM '" + name_ + "' has no device '" + device + "'");
  auto message = kj::heap<capnp::MallocMessageBuilder>();
  auto command = message->initRoot<proto::CoreCommand>().initRestartDevice();
  command.setDevice(device);
  command.setBinary(binary);
  auto& stream = *reports_;
  auto& builder = *message;
  return capnp::writeMessage(stream, builder).attach(kj::mv(message));
}

void VmRunner::stop() {
  if (pid_ <= 0) throw DatastoreError("VM '" + name_ + "' is not running");
  stopping_ = true;
  ::kill(pid_, SIGTERM);
}

void VmRunner::poweroff() {
  if (pid_ <= 0) throw DatastoreError("VM '" + name_ + "' is not running");
  stopping_ = true;
  ::kill(pid_, SIGKILL);
}

}  // namespace cellvisor
