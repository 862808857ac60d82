#include "vmmd/vm-runner.h"

#include <arpa/inet.h>
#include <capnp/serialize-async.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>

#include "base/mac-address.h"
#include "base/syscall-name.h"
#include "base/system-error.h"
#include "base/tcp-port.h"
#include "base/unique-fd.h"
#include "base/unix-socket.h"
#include "core/arch/x86/address-map.h"
#include "host/device-timeouts.h"
#include "host/server-catalog.h"
#include "host/server-kind.h"
#include "vmmd/netlink-links.h"

extern char** environ;

namespace cellvisor {
namespace {

constexpr int STATUS_FD = 3;
constexpr int DEVICE_SOCKET_FD = 4;
constexpr int CONSOLE_FD_BASE = 5;
constexpr const char* INSTALL_MEDIUM = "install medium";
// A VM's memory.max beyond its guest RAM: the core's own memory and each
// device server's (rings, io_uring, its share of the page cache).
constexpr uint64_t CORE_OVERHEAD_BYTES = 256ull << 20;
constexpr uint64_t SERVER_OVERHEAD_BYTES = 64ull << 20;

// A device's child cgroup: its name in the config ("disk0", "network0").
std::string cgroupName(std::string label) {
  std::replace(label.begin(), label.end(), ' ', '-');
  return label;
}

// Debian's firmware: SeaBIOS (package seabios) for loader="bios", "uefi-csm"
// and "grub"; OVMF (package ovmf) for loader="uefi", whose variable store
// each VM gets its own copy of (vm-bhyve's uefi_vars).
constexpr const char* SEABIOS = "/usr/share/seabios/bios-256k.bin";
constexpr const char* OVMF_CODE = "/usr/share/OVMF/OVMF_CODE_4M.fd";
constexpr const char* OVMF_VARS = "/usr/share/OVMF/OVMF_VARS_4M.fd";
constexpr const char* VM_UEFI_VARS = "uefi-vars.fd";

std::string requireFirmware(const char* path, const std::string& loader, const char* package) {
  if (::access(path, R_OK) != 0) {
    throw VmConfigError(fmt::format("loader=\"{}\" needs {} (apt-get install {})", loader, path, package));
  }
  return path;
}

// The first TCP port from 5900 on `listen` (127.0.0.1 if empty) that can be
// bound now.
uint16_t freeVncPort(const std::string& listen) {
  std::string address = listen.empty() ? "127.0.0.1" : listen;
  if (auto port = firstFreeTcpPort(address, 5900, 6000)) return *port;
  throw VmConfigError("graphics: no free VNC port from 5900 to 5999 on " + address + " (set graphics_port)");
}

std::string describeExit(int status) {
  if (WIFSIGNALED(status))
    return fmt::format("killed by signal {} ({})", WTERMSIG(status), strsignal(WTERMSIG(status)));
  switch (WEXITSTATUS(status)) {
    case 0:
      return "reboot";
    case 1:
      return "poweroff";
    case 2:
      return "halt";
    case 3:
      return "triple fault";
    case 4:
      return "error (see vmm.log)";
    default:
      return fmt::format("exit status {}", WEXITSTATUS(status));
  }
}

}  // namespace

VmRunner::VmRunner(kj::AsyncIoContext& io, UvInKj& supervisorLoop, Datastore& datastore,
                   const Switches& switches, VmIdentities& identities, CgroupTree& cgroups,
                   std::string coreBinary, std::string name)
    : io_(io),
      supervisorLoop_(supervisorLoop),
      datastore_(datastore),
      switches_(switches),
      identities_(identities),
      cgroups_(cgroups),
      coreBinary_(std::move(coreBinary)),
      name_(std::move(name)) {}

VmRunner::~VmRunner() {
  // The last resort (destroy -f, vmmd going away after its shutdown gave
  // guests their chance): pull the plug, reap the core, and end the servers.
  if (pid_ > 0) {
    killed_ = true;
    if (cgroup_) cgroup_->kill();
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = 0;
  }
  stopDevices();
}

std::string VmRunner::consolePath(const std::string& port) const {
  return datastore_.vmDirectory(name_) / (port == "com1" ? "console.sock" : port + ".sock");
}

std::vector<VmRunner::ServerSlot> VmRunner::serverSlots(const VmConfig& config,
                                                        const std::string& installMedium) const {
  std::vector<ServerSlot> slots;
  int slot = config.startSlot.value_or(4);
  // Each vm-bhyve device type is served by the server kind that says so in
  // its launch descriptor.
  for (const auto& [index, disk] : config.disks) {
    const ServerKind* kind = findServerKindFor(ConfigRole::DISK, disk.type);
    if (kind == nullptr)
      throw VmConfigError(fmt::format("disk{}_type={} is not served yet", index, disk.type));
    std::string image = datastore_.diskPath(name_, disk).string();
    std::string options = disk.opts.empty() ? image : image + "," + disk.opts;
    slots.push_back({{slot++, 0, kind->emulation, options}, fmt::format("disk{}", index), "", image});
  }
  for (const auto& [index, network] : config.networks) {
    const ServerKind* kind = findServerKindFor(ConfigRole::NETWORK, network.type);
    if (kind == nullptr) {
      throw VmConfigError(fmt::format("network{}_type={} is not served yet", index, network.type));
    }
    if (network.vmSwitch.empty()) throw VmConfigError(fmt::format("network{}_switch is missing", index));
    // A tap the kernel numbers; a MAC that stays the same for this NIC.
    std::string mac =
        network.mac.empty() ? formatMac(derivedMac(fmt::format("{}/network{}", name_, index))) : network.mac;
    slots.push_back({{slot++, 0, kind->emulation, "cvtap%d,mac=" + mac},
                     fmt::format("network{}", index),
                     network.vmSwitch,
                     ""});
  }
  // Install media last: the VM's own devices keep their slots. An ISO goes
  // in a CD drive, which firmware boots from first (its bootindex).
  if (!installMedium.empty()) {
    slots.push_back({{slot++, 0, "ahci-cd", installMedium}, INSTALL_MEDIUM, "", installMedium + " (CD)"});
  }
  // The graphical console where vm-bhyve puts it, slot 29.
  if (config.graphics) {
    std::string endpoint = vncEndpoint(config);
    std::string options = "tcp=" + endpoint;
    // vm-bhyve's "auto": wait when booting an installer, whose first screen
    // the user wants to see.
    if (config.graphicsWait == "yes" || (config.graphicsWait == "auto" && !installMedium.empty()))
      options += ",wait";
    if (!config.graphicsResolution.empty()) {
      auto x = config.graphicsResolution.find('x');
      options +=
          ",w=" + config.graphicsResolution.substr(0, x) + ",h=" + config.graphicsResolution.substr(x + 1);
    }
    if (!config.graphicsVga.empty()) options += ",vga=" + config.graphicsVga;
    if (!config.vncPassword.empty()) options += ",password=" + config.vncPassword;
    slots.push_back({{29, 0, "fbuf", options}, "graphics", "", "VNC on " + endpoint});
  }
  // vm-bhyve's xhci_mouse: a USB tablet beside it, slot 30, which gets the
  // display's pointer.
  if (config.xhciMouse) slots.push_back({{30, 0, "xhci", "tablet"}, "xhci", "", "USB tablet"});
  return slots;
}

std::string VmRunner::vncEndpoint(const VmConfig& config) const {
  std::string listen = config.graphicsListen.empty() ? "127.0.0.1" : config.graphicsListen;
  if (listen.find(':') != std::string::npos) listen = "[" + listen + "]";
  uint16_t port = config.graphicsPort.value_or(vncPort_);
  return fmt::format("{}:{}", listen, port);
}

std::vector<std::string> VmRunner::coreArguments(int statusFd, int deviceSocket,
                                                 const std::string& installMedium) const {
  VmConfig config = datastore_.load(name_);
  auto directory = datastore_.vmDirectory(name_);
  std::vector<std::string> args = {
      coreBinary_, "-c",    std::to_string(config.cpu), "-m", config.memoryText, "-s", "0,hostbridge",
      "-s",        "31,lpc"};
  // The console sockets are vmmd's (made before the core starts, so a
  // console can attach the moment `vmctl start` returns): the core gets
  // them listening, one fd per port from CONSOLE_FD_BASE on.
  int consoleFd = CONSOLE_FD_BASE;
  for (const auto& port : config.comports) {
    args.insert(args.end(), {"-l", port + ",listening-fd=" + std::to_string(consoleFd++)});
  }
  for (const auto& [slot, label, vmSwitch, backend] : serverSlots(config, installMedium)) {
    args.insert(args.end(), {"-s", fmt::format("{},{},{}", slot.slot, slot.emulation, slot.options)});
    if (label == INSTALL_MEDIUM)
      args.insert(args.end(), {"-o", fmt::format("pci.0.{}.0.bootindex=0", slot.slot)});
  }
  if (config.utctime) args.push_back("-u");
  if (!config.uuid.empty()) args.insert(args.end(), {"-U", config.uuid});
  if (config.loader == "kernel") {
    args.insert(args.end(), {"--kernel", config.kernel, "--cmdline", config.kernelCmdline});
    if (!config.kernelInitrd.empty()) args.insert(args.end(), {"--initrd", config.kernelInitrd});
  } else if (config.loader == "uefi") {
    std::string bootrom = "bootrom," + requireFirmware(OVMF_CODE, config.loader, "ovmf");
    if (config.uefiVars) {
      auto vars = directory / VM_UEFI_VARS;
      if (!std::filesystem::exists(vars)) {
        std::filesystem::copy_file(requireFirmware(OVMF_VARS, config.loader, "ovmf"), vars);
        std::filesystem::permissions(
            vars, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
      }
      bootrom += "," + vars.string();
    }
    args.insert(args.end(), {"-l", bootrom});
  } else {
    // bios, uefi-csm, grub: SeaBIOS boots the disk (and the GRUB on it).
    args.insert(args.end(), {"-l", "bootrom," + requireFirmware(SEABIOS, config.loader, "seabios")});
  }
  if (identity_) args.insert(args.end(), {"--uid", fmt::format("{0}:{0}", identity_->core())});
  args.insert(args.end(), {"--status-fd", std::to_string(statusFd), "--device-socket",
                           std::to_string(deviceSocket), name_});
  return args;
}

void VmRunner::log(const std::string& line) {
  std::cerr << "vmmd: " << name_ << ": " << line << '\n';
  if (log_) {
    std::string entry = "vmmd: " + line + "\n";
    [[maybe_unused]] ssize_t written = ::write(log_.get(), entry.data(), entry.size());
  }
}

void VmRunner::startDevices(const VmConfig& config, const std::string& installMedium) {
  // Guest RAM and each server's resources are made here; the servers start
  // before the core, and a missing disk stops the VM before anything runs.
  ram_ = createGuestRam(config.memoryBytes, layout::RAM_SPLIT);
  std::vector<ServerLaunch> launches;
  for (const auto& [slot, label, vmSwitch, backend] : serverSlots(config, installMedium)) {
    // Errors in the user's words: "disk0: ...", "network0: ...".
    ServerLaunch launch = prepareServerLaunch(slot, config.cpu, "enforce", label);
    if (identity_) launch.uid = launch.gid = identity_->server(devices_.size());
    if (cgroup_) launch.cgroup = cgroup_->child(cgroupName(label));
    if (!vmSwitch.empty()) {
      // A NIC's tap joins its switch's bridge (and leaves with the tap).
      try {
        NetlinkLinks().attach(launch.backendName, switches_.bridgeOf(vmSwitch));
      } catch (const std::exception& error) {
        throw DatastoreError(label + ": " + error.what());
      }
    }
    ServedDevice device;
    device.backend = vmSwitch.empty() ? backend : launch.backendName + " on switch " + vmSwitch;
    device.resources = makeDeviceResources(launch);
    launches.push_back(std::move(launch));
    devices_.push_back(std::move(device));
  }
  // The servers start once every device's resources are made and joined by
  // their input links.
  std::vector<DeviceResources*> made;
  for (auto& device : devices_) made.push_back(device.resources.get());
  linkInputDevices(made);
  for (size_t i = 0; i < devices_.size(); ++i) {
    ServedDevice& device = devices_[i];
    device.process = std::make_unique<DeviceServerProcess>(std::move(launches[i]), *device.resources,
                                                           ram_.memfd.get(), ram_.regions);
    device.supervisor = std::make_unique<DeviceSupervisor>(supervisorLoop_.loop(), *device.process,
                                                           [this] { return pid_ <= 0 || killed_; });
    device.supervisor->setLog([this](const std::string& line) { log(line); });
  }
  supervisorLoop_.wake();  // The supervisors' handles are new to the loop.
}

void VmRunner::makeCgroup(const VmConfig& config, const std::string& installMedium) {
  if (!cgroups_.available()) {
    if (config.limits.any()) {
      throw VmConfigError("the VM's resource limits need a cgroup, and vmmd has none: " +
                          cgroups_.unavailableReason());
    }
    return;
  }
  std::vector<std::string> disks;
  size_t servers = 0;
  for (const auto& slot : serverSlots(config, installMedium)) {
    ++servers;
    if (slot.label.rfind("disk", 0) == 0) disks.push_back(slot.backend);
  }
  uint64_t memoryLimit = config.memoryBytes + CORE_OVERHEAD_BYTES + servers * SERVER_OVERHEAD_BYTES;
  cgroup_ = std::make_unique<VmCgroup>(cgroups_, name_, config.limits, memoryLimit, disks);
}

void VmRunner::sendDevices(int socket) {
  for (const auto& device : devices_)
    sendDeviceResources(socket, *device.resources, ram_.memfd.get(), ram_.regions);
}

void VmRunner::stopDevices(bool remember) {
  if (remember && !devices_.empty()) {
    lastDevices_ = devices();
    for (auto& device : lastDevices_) {
      device.state = "stopped";
      device.pid = 0;
    }
  }
  for (auto& device : devices_) {
    if (device.supervisor) device.supervisor->close();
  }
  devices_.clear();  // Kills what still runs.
  ram_ = {};
  // The VM's uids and cgroup are free once none of its processes runs.
  if (identity_ && pid_ <= 0) {
    identities_.release(name_);
    identity_.reset();
  }
  if (pid_ <= 0) {
    cgroup_.reset();
    vnc_.clear();
  }
  supervisorLoop_.wake();  // Closed handles are finished on the loop.
}

VmRunner::ServedDevice* VmRunner::findDevice(const std::string& name) {
  auto found = std::find_if(devices_.begin(), devices_.end(), [&](const ServedDevice& device) {
    return device.process && device.process->deviceName() == name;
  });
  return found == devices_.end() ? nullptr : &*found;
}

std::vector<DeviceSnapshot> VmRunner::devices() const {
  if (devices_.empty()) return lastDevices_;
  std::vector<DeviceSnapshot> snapshots;
  for (const auto& device : devices_) {
    if (!device.process) continue;  // Its server did not start (startDevices threw).
    const DeviceServerProcess& process = *device.process;
    snapshots.push_back({process.deviceName(), process.pid(),
                         process.failed()    ? "failed"
                         : process.pid() > 0 ? "running"
                                             : "restarting",
                         process.restarts(), process.lastExit(), process.launch().policy,
                         process.launch().sandbox, process.lastViolation(), device.backend});
  }
  return snapshots;
}

void VmRunner::start(const std::string& installMedium) {
  if (pid_ > 0) throw DatastoreError("VM '" + name_ + "' is already running");
  VmConfig config = datastore_.load(name_);
  // vm-bhyve's default VNC port: the first one from 5900 nobody listens on.
  if (config.graphics && !config.graphicsPort) vncPort_ = freeVncPort(config.graphicsListen);
  // The VM's own uids (as root; an unprivileged vmmd cannot hand out any).
  if (::geteuid() == 0) identity_ = identities_.acquire(name_, serverSlots(config, installMedium).size());
  std::vector<std::string> args;
  try {
    args = coreArguments(STATUS_FD, DEVICE_SOCKET_FD, installMedium);
  } catch (...) {
    stopDevices(false);  // Nothing started: gives the uids back.
    throw;
  }
  std::string logPath = datastore_.vmDirectory(name_) / "vmm.log";
  log_ = UniqueFd(::open(logPath.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
  for (const auto& warning : config.warnings) log("warning: " + warning);
  if (identity_) {
    log(fmt::format("uids: core {}, device servers from {}", identity_->core(), identity_->server(0)));
  }
  stopping_ = false;
  killed_ = false;
  try {
    makeCgroup(config, installMedium);
    if (cgroup_) {
      log("cgroup: " + cgroup_->path().string());
      for (const auto& limit : cgroup_->applied()) log("cgroup: " + limit);
    } else {
      log("no cgroup: " + cgroups_.unavailableReason());
    }
    startDevices(config, installMedium);
  } catch (...) {
    stopping_ = true;
    stopDevices(false);  // A start that never happened leaves no device history.
    throw;
  }
  auto [control, controlForCore] = socketPair(SOCK_STREAM);
  auto [devices, devicesForCore] = socketPair(SOCK_SEQPACKET);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, logPath.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  posix_spawn_file_actions_adddup2(&actions, controlForCore.get(), STATUS_FD);
  posix_spawn_file_actions_adddup2(&actions, devicesForCore.get(), DEVICE_SOCKET_FD);
  // Ours close when this function returns: the core holds them from here.
  std::vector<UniqueFd> consoles;
  for (const auto& port : config.comports) {
    consoles.push_back(listenOnUnixSocket(consolePath(port)));
    posix_spawn_file_actions_adddup2(&actions, consoles.back().get(),
                                     CONSOLE_FD_BASE + static_cast<int>(consoles.size()) - 1);
  }
  consolePorts_ = config.comports;
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  // Its own session (our signals are not its), and none of the signals we
  // block to receive them as events.
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attributes, &none);
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK);
  std::vector<char*> argv;
  for (auto& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  pid_t pid;
  int result = posix_spawn(&pid, argv[0], &actions, &attributes, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  if (result != 0) {
    stopping_ = true;
    stopDevices();
    throwSystemError("start " + coreBinary_, result);
  }
  pid_ = pid;
  vnc_ = config.graphics ? vncEndpoint(config) : "";
  if (!vnc_.empty()) log("VNC on " + vnc_);
  watchExit();
  if (cgroup_) {
    try {
      cgroup_->move("core", pid);
    } catch (const std::exception& error) {
      // A core outside the VM's limits is not started: it goes, and its
      // exit ends the VM (watchExit).
      log(std::string("the core could not join the VM's cgroup: ") + error.what());
      ::kill(pid, SIGKILL);
    }
  }
  try {
    sendDevices(devices.get());
  } catch (const std::system_error& error) {
    log(std::string("the core did not take its devices: ") +
        error.what());  // It exited; watchExit reports it.
  }
  control_ =
      io_.lowLevelProvider->wrapSocketFd(control.release(), kj::LowLevelAsyncIoProvider::TAKE_OWNERSHIP);
  eventTask_ = readEvents().eagerlyEvaluate([](kj::Exception&&) {
    // The core closed its end (it exited); the exit watcher takes it from here.
  });
}

void VmRunner::taskFailed(kj::Exception&& exception) {
  lastExit_ = exception.getDescription().cStr();
}

std::optional<uint32_t> VmRunner::coreViolation() const {
  // The core's SIGSYS handler wrote the number to its stderr, vmm.log: the
  // last such line of the log's tail.
  std::ifstream log(datastore_.vmDirectory(name_) / "vmm.log", std::ios::binary);
  log.seekg(0, std::ios::end);
  std::streamoff size = log.tellg();
  log.seekg(std::max<std::streamoff>(0, size - 4096));
  std::string tail((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  static const std::string MARK = "sandbox violation: syscall ";
  auto at = tail.rfind(MARK);
  if (at == std::string::npos) return std::nullopt;
  uint32_t number = 0;
  const char* digits = tail.data() + at + MARK.size();
  auto [end, error] = std::from_chars(digits, tail.data() + tail.size(), number);
  if (error != std::errc() || end == digits) return std::nullopt;
  return number;
}

void VmRunner::watchExit() {
  corePidfd_ = UniqueFd(static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0)));
  if (!corePidfd_) throwSystemError("pidfd_open");
  coreExit_ = kj::heap<kj::UnixEventPort::FdObserver>(io_.unixEventPort, corePidfd_.get(),
                                                      kj::UnixEventPort::FdObserver::OBSERVE_READ);
  tasks_.add(coreExit_->whenBecomesReadable().then([this]() {
    int status = 0;
    ::waitpid(pid_, &status, 0);
    coreExit_ = nullptr;
    corePidfd_.reset();
    pid_ = 0;
    lastExit_ = describeExit(status);
    if (WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS) {
      if (auto number = coreViolation()) {
        lastExit_ += ": sandbox violation, syscall " + syscallName(*number);
        log("the core broke its sandbox: " + syscallName(*number) + "; the guest is gone with it");
      }
    }
    for (const auto& port : consolePorts_) ::unlink(consolePath(port).c_str());
    eventTask_ = nullptr;
    control_ = nullptr;
    for (auto& [id, waiter] : waiting_) waiter->fulfill("the VM stopped");
    waiting_.clear();
    stopDevices();
    // vm-bhyve restarts a guest that rebooted.
    if (!stopping_ && WIFEXITED(status) && WEXITSTATUS(status) == 0) start();
  }));
}

kj::Promise<void> VmRunner::readEvents() {
  return capnp::readMessage(*control_).then([this](kj::Own<capnp::MessageReader>&& message) {
    auto event = message->getRoot<proto::CoreEvent>();
    // An answer nobody waits for any more (its command timed out) is dropped.
    if (auto waiter = waiting_.find(event.getId()); waiter != waiting_.end()) {
      waiter->second->fulfill(event.getError());
      waiting_.erase(waiter);
    }
    return readEvents();
  });
}

kj::Promise<std::string> VmRunner::sendCommand(const std::string& device, bool quiesce) {
  auto message = kj::heap<capnp::MallocMessageBuilder>();
  auto command = message->initRoot<proto::CoreCommand>();
  uint64_t id = ++lastCommandId_;
  command.setId(id);
  if (quiesce) {
    command.setQuiesceDevice(device);
  } else {
    command.setResumeDevice(device);
  }
  auto answer = kj::newPromiseAndFulfiller<std::string>();
  waiting_.emplace(id, kj::mv(answer.fulfiller));
  auto& builder = *message;
  // A caller that stops waiting (its deadline) leaves the entry: the late
  // answer finds it and goes nowhere, or the VM's end clears it.
  return capnp::writeMessage(*control_, builder)
      .attach(kj::mv(message))
      .then([promise = kj::mv(answer.promise)]() mutable { return kj::mv(promise); });
}

kj::Promise<void> VmRunner::restartDevice(const std::string& device, const std::string& binary) {
  if (pid_ <= 0 || control_.get() == nullptr) throw DatastoreError("VM '" + name_ + "' is not running");
  if (findDevice(device) == nullptr)
    throw DatastoreError("VM '" + name_ + "' has no device '" + device + "'");
  if (!binary.empty() && ::access(binary.c_str(), X_OK) != 0) {
    throw DatastoreError(device + ": " + binary + " is not an executable");
  }
  // Past the deadline (longer than the core's own: device-timeouts.h) the
  // upgrade goes ahead anyway: replacing a hung server is what is wanted.
  auto deadline = UPGRADE_QUIESCE_DEADLINE.count() * kj::MILLISECONDS;
  auto timeout = io_.provider->getTimer().afterDelay(deadline).then(
      [] { return std::string("the core did not quiesce it in time"); });
  return sendCommand(device, true)
      .exclusiveJoin(kj::mv(timeout))
      .then([this, device, binary](std::string error) {
        ServedDevice* served = findDevice(device);
        if (served == nullptr)
          throw DatastoreError("VM '" + name_ + "' stopped before " + device + " was replaced");
        if (!error.empty()) log(device + ": replacing it without quiescing: " + error);
        // The supervisor starts the successor at once (not counted as a crash);
        // it resumes from the state segment.
        served->process->requestRestart(binary);
      });
}

void VmRunner::stop() {
  if (pid_ <= 0) throw DatastoreError("VM '" + name_ + "' is not running");
  stopping_ = true;
  ::kill(pid_, SIGTERM);
}

void VmRunner::poweroff() {
  if (pid_ <= 0) throw DatastoreError("VM '" + name_ + "' is not running");
  stopping_ = true;
  killed_ = true;
  // The whole VM at once, core and servers, when it has a cgroup.
  if (cgroup_) cgroup_->kill();
  ::kill(pid_, SIGKILL);
}

}  // namespace cellvisor
