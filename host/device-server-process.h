// A device server process seen from its supervisor (vmmd, or a standalone
// vmm-core): starts it sandboxed with its resources, collects it when it dies
// and starts the next instance on the same resources.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "base/unique-fd.h"
#include "host/device-resources.h"
#include "host/server-kind.h"  // findServerBinary, for the process's users.

namespace cellvisor {

struct ServerLaunch {
  std::string binary;
  std::string deviceName;
  std::string options;
  std::vector<UniqueFd> backends;  // Disks, a tap: handed over in this order.
  std::string backendName;         // e.g. the tap's interface name
  uint16_t queues = 1;
  uint16_t vectors = 2;
  uint64_t barMemoryBytes = 0;        // Shared BAR memory the supervisor creates; 0: none.
  InputRole input = InputRole::NONE;  // A display's input link, a tablet's pointer link.
  // Its unprivileged identity when the supervisor runs as root: nobody by
  // default, each its own under vmmd (vmmd/vm-identities.h).
  uid_t uid = 65534;
  gid_t gid = 65534;
  // The cgroup (v2 directory fd, borrowed from its owner) every instance is
  // born in; -1: its supervisor's.
  int cgroup = -1;
  std::string policy;               // e.g. "virtio-blk.policy", for reports
  std::string sandbox = "enforce";  // off | log | enforce
  std::string faultInjection;       // tests only
};

// The input role a kind's prepare step asked for.
inline InputRole inputRoleOf(const PreparedServer& prepared) {
  if (prepared.inputSource) return InputRole::SOURCE;
  return prepared.pointerSink ? InputRole::POINTER_SINK : InputRole::NONE;
}

// The resources a launch needs, made by its supervisor.
std::unique_ptr<DeviceResources> makeDeviceResources(const ServerLaunch& launch);

class DeviceServerProcess {
 public:
  // Starts the server (fresh exec, empty environment, bootstrap socket on
  // fd 3) and hands it its resources and the guest RAM in `memfd`.
  DeviceServerProcess(ServerLaunch launch, DeviceResources& resources, int memfd,
                      std::vector<RamRegion> regions);

  // Crash-restart, driven by the supervisor: a new instance gets the same
  // fds and the same state segment and continues where the last one stopped.
  // reap() collects the dead process and describes how it ended.
  std::string reap();
  void restart();
  // Live upgrade / restart on request: switch binary (if given) and end this
  // instance; the supervisor starts the next one at once and does not count
  // it as a crash. The caller quiesces the server first (the core owns the
  // request channel). Throws if the binary is not executable.
  void requestRestart(const std::string& binary);
  // True once after a requestRestart()-caused exit.
  bool takeRequestedExit() { return requestedExit_.exchange(false); }
  // Snapshot and restore through the state segment (quiesce first):
  // saveState() copies the segment; restoreState() loads a saved copy and
  // restarts the server on it (e.g. a fresh process, a new binary), also
  // when no instance is running; it throws for a failed device.
  std::vector<uint8_t> saveState() const;
  void restoreState(const std::vector<uint8_t>& saved);

  // Past the crash-loop limit: the guest is told (DEVICE_NEEDS_RESET) and
  // the core stops waiting for answers.
  void markFailed() { resources_.markFailed(); }
  bool failed() const { return resources_.failed(); }
  // Whether a supervisor restarts this server when it dies.
  void setSupervised(bool supervised) { supervised_ = supervised; }
  bool supervised() const { return supervised_; }
  // True when the current instance has exited (and nobody restarted it yet).
  bool exited() const;
  // A pidfd that becomes readable when the current instance exits.
  int pidfd() const { return pidfd_.get(); }
  uint32_t restarts() const { return restarts_; }
  std::string lastExit() const;
  // The syscall that broke the sandbox last, empty if none ever did.
  std::string lastViolation() const;
  const ServerLaunch& launch() const { return launch_; }
  ~DeviceServerProcess();
  DeviceServerProcess(const DeviceServerProcess&) = delete;
  DeviceServerProcess& operator=(const DeviceServerProcess&) = delete;

  pid_t pid() const { return pid_.load(); }
  const std::string& deviceName() const { return launch_.deviceName; }

 private:
  void spawn(bool restart);
  // SIGKILL to the current instance, if any.
  void killInstance();

  ServerLaunch launch_;
  DeviceResources& resources_;
  int memfd_;
  std::vector<RamRegion> regions_;
  mutable std::mutex processMutex_;  // pid, pidfd and exit bookkeeping.
  std::atomic<pid_t> pid_{-1};
  UniqueFd pidfd_;
  std::atomic<bool> supervised_{false};
  std::atomic<bool> requestedExit_{false};
  uint32_t restarts_ = 0;
  std::string lastExit_;
  std::string lastViolation_;
  // Our end of the current instance's bootstrap socket, held open for its
  // life: when the supervisor dies, the server sees the hang-up and exits (a
  // PID namespace's init ignores the parent-death signal).
  UniqueFd lifeline_;
  // The first instance's mount, network, IPC and UTS namespaces, kept open so
  // restarts join them instead of paying for new ones (a network namespace
  // costs milliseconds to create).
  UniqueFd mountNamespace_;
  UniqueFd netNamespace_;
  UniqueFd ipcNamespace_;
  UniqueFd utsNamespace_;
};

}  // namespace cellvisor
