#include "core/machine/standalone-supervisor.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>
#include <uv.h>

#include <atomic>
#include <cstring>
#include <iostream>
#include <memory>
#include <vector>

#include "base/guest-memory.h"
#include "base/system-error.h"
#include "base/unix-socket.h"
#include "core.capnp.h"
#include "core/arch/x86/address-map.h"
#include "core/serial/serial-backend.h"
#include "host/device-resources.h"
#include "host/device-server-process.h"
#include "host/device-supervisor.h"
#include "host/server-catalog.h"
#include "proto/fd-passing.h"

namespace cellvisor {
namespace {

struct ServedDevice {
  std::unique_ptr<DeviceResources> resources;
  std::unique_ptr<DeviceServerProcess> process;
  std::unique_ptr<DeviceSupervisor> supervisor;
};

// What the core ended with, waited for.
int reap(pid_t core) {
  int status = 0;
  while (::waitpid(core, &status, 0) < 0 && errno == EINTR) {
  }
  return status;
}

// Signals for the core: a terminal's ^C reaches it directly (same process
// group), so SIGINT is passed on only when no terminal sent it.
class SignalRelay {
 public:
  SignalRelay(uv_loop_t* loop, pid_t core) {
    std::vector<int> relayed = {SIGTERM, SIGUSR2};
    if (!::isatty(STDIN_FILENO)) relayed.push_back(SIGINT);
    for (int number : relayed) {
      auto* handle = new uv_signal_t;
      uv_signal_init(loop, handle);
      handle->data = reinterpret_cast<void*>(static_cast<intptr_t>(core));
      uv_signal_start(
          handle,
          [](uv_signal_t* signal, int received) {
            ::kill(static_cast<pid_t>(reinterpret_cast<intptr_t>(signal->data)), received);
          },
          number);
      handles_.push_back(handle);
    }
  }
  void close() {
    for (auto* handle : handles_) {
      uv_close(reinterpret_cast<uv_handle_t*>(handle),
               [](uv_handle_t* closed) { delete reinterpret_cast<uv_signal_t*>(closed); });
    }
    handles_.clear();
  }

 private:
  std::vector<uv_signal_t*> handles_;
};

// What a confined core's consoles left for us (CoreHandover), done now
// that the core has ended.
void finishConsoleHandover(int socket) {
  MessageWithFds received;
  try {
    ::fcntl(socket, F_SETFL, ::fcntl(socket, F_GETFL) | O_NONBLOCK);
    received = receiveWithFds(socket);
  } catch (const std::exception&) {
    return;  // None sent (no console needed it), or the core died before.
  }
  try {
    ReceivedMessage message(received.bytes);
    size_t nextTerminal = 0;
    for (auto console : message.root<proto::CoreHandover>().getConsoles()) {
      SerialBackend::Handover handover{console.getPath(), console.getLinkTarget(), -1,
                                       console.getTerminalPath()};
      UniqueFd terminal;
      if (!handover.terminalPath.empty() && nextTerminal < received.fds.size()) {
        terminal = std::move(received.fds[nextTerminal++]);
      }
      finishHandover(handover, std::move(terminal));
    }
  } catch (const std::exception& error) {
    std::cerr << "vmm-core: the core's console handover: " << error.what() << '\n';
  }
}

// Runs the servers' supervisors until the core exits; returns its status.
int superviseUntilCoreExits(pid_t core, std::vector<ServedDevice>& devices) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  std::atomic<bool> ending{false};
  for (auto& device : devices) {
    device.supervisor =
        std::make_unique<DeviceSupervisor>(&loop, *device.process, [&ending] { return ending.load(); });
  }
  UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, core, 0)));
  if (!pidfd) throwSystemError("pidfd_open");
  uv_poll_t exitWatch;
  uv_poll_init(&loop, &exitWatch, pidfd.get());
  uv_poll_start(&exitWatch, UV_READABLE, [](uv_poll_t* poll, int, int) { uv_stop(poll->loop); });
  SignalRelay relay(&loop, core);
  uv_run(&loop, UV_RUN_DEFAULT);
  ending = true;
  int status = reap(core);
  for (auto& device : devices) device.supervisor->close();
  relay.close();
  uv_close(reinterpret_cast<uv_handle_t*>(&exitWatch), nullptr);
  uv_run(&loop, UV_RUN_DEFAULT);  // Finishes the closes.
  uv_loop_close(&loop);
  return status;
}

}  // namespace

bool wantsStandaloneSupervisor(const MachineConfig& config) {
  return config.deviceSocket < 0 && config.sandbox != "off";
}

std::optional<int> runStandaloneSupervisor(MachineConfig& config) {
  std::optional<termios> terminal;
  if (termios saved{}; ::isatty(STDIN_FILENO) && ::tcgetattr(STDIN_FILENO, &saved) == 0) terminal = saved;
  auto [ours, theirs] = socketPair(SOCK_SEQPACKET);
  // Forked before any server starts and before guest RAM exists: the core
  // holds none of the supervisor's fds (server backends, pidfds), only
  // what arrives over the socket.
  pid_t core = ::fork();
  if (core < 0) throwSystemError("fork");
  if (core == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    ours.reset();
    config.deviceSocket = theirs.release();
    return std::nullopt;
  }
  theirs.reset();
  ::signal(SIGPIPE, SIG_IGN);  // A core that died early closes the socket.
  // Guest RAM outlives the servers: each restart hands its memfd again.
  GuestRamFile ram;
  std::vector<ServedDevice> devices;
  try {
    std::vector<const PciSlotConfig*> servers;
    for (const auto& slot : config.pciSlots) {
      if (isServerDevice(slot.emulation)) servers.push_back(&slot);
    }
    // Guest RAM is ours when servers need it; else the core makes its own.
    if (!servers.empty()) ram = createGuestRam(config.memoryBytes, layout::RAM_SPLIT);
    // Every server's resources first, joined by their input links, then
    // the servers.
    std::vector<ServerLaunch> launches;
    std::vector<DeviceResources*> made;
    for (const PciSlotConfig* server : servers) {
      launches.push_back(prepareServerLaunch(*server, config.cpus, config.sandbox));
      ServedDevice device;
      device.resources = makeDeviceResources(launches.back());
      made.push_back(device.resources.get());
      devices.push_back(std::move(device));
    }
    linkInputDevices(made);
    for (size_t i = 0; i < devices.size(); ++i) {
      devices[i].process = std::make_unique<DeviceServerProcess>(
          std::move(launches[i]), *devices[i].resources, ram.memfd.get(), ram.regions);
    }
    try {
      for (auto& device : devices)
        sendDeviceResources(ours.get(), *device.resources, ram.memfd.get(), ram.regions);
    } catch (const std::system_error&) {
      // The core is gone already; its exit says why.
    }
  } catch (...) {
    // The user's mistake (a missing disk): said once, by us, not also by a
    // core left waiting for devices.
    ::kill(core, SIGKILL);
    reap(core);
    throw;
  }
  int status = superviseUntilCoreExits(core, devices);
  devices.clear();  // Ends the servers.
  finishConsoleHandover(ours.get());
  if (terminal) ::tcsetattr(STDIN_FILENO, TCSANOW, &*terminal);
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  int signal = WTERMSIG(status);
  std::cerr << "vmm-core: the core was killed by signal " << signal << " (" << strsignal(signal) << ")\n";
  // End the same way, so whoever started us sees what happened to the VM;
  // without a core file of this process, which did nothing wrong.
  rlimit none{0, 0};
  ::setrlimit(RLIMIT_CORE, &none);
  std::cerr.flush();
  ::signal(signal, SIG_DFL);
  ::kill(::getpid(), signal);
  return 128 + signal;
}

}  // namespace cellvisor
