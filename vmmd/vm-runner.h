// One VM's life under vmmd. From its vm-bhyve config: creates the guest RAM
// and each device's resources, starts one sandboxed server per device and
// supervises it (crash-restart, crash-loop limit, live upgrade), then starts
// the core and hands it the same resources (console on a unix socket in the
// VM's directory, log beside it). Follows the core's exit, and restarts the
// VM when the guest rebooted (exit status 0), as vm-bhyve does.
#pragma once

#include <kj/async-io.h>
#include <kj/async-unix.h>
#include <uv.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "control.capnp.h"
#include "core.capnp.h"
#include "core/machine/machine-config.h"
#include "host/device-resources.h"
#include "host/device-server-process.h"
#include "host/device-supervisor.h"
#include "vmmd/datastore.h"
#include "vmmd/switches.h"
#include "vmmd/uv-in-kj.h"
#include "vmmd/vm-cgroup.h"
#include "vmmd/vm-identities.h"

namespace cellvisor {

struct DeviceSnapshot {
  std::string name;
  int32_t pid = 0;
  std::string state;
  uint32_t restarts = 0;
  std::string lastExit;
  std::string policy;
  std::string sandbox;
  std::string lastViolation;
  std::string backend;
};

class VmRunner final : private kj::TaskSet::ErrorHandler {
 public:
  // `supervisorLoop`: the libuv loop the device servers are watched on.
  // `switches`: where the VM's NICs find their bridges.
  // `identities`: where the VM takes its uids while it runs.
  // `cgroups`: where it gets its cgroup (vmmd/vm-cgroup.h).
  VmRunner(kj::AsyncIoContext& io, UvInKj& supervisorLoop, Datastore& datastore, const Switches& switches,
           VmIdentities& identities, CgroupTree& cgroups, std::string coreBinary, std::string name);
  ~VmRunner();

  // Throws DatastoreError / VmConfigError / kj exceptions with a user message.
  // `installMedium`: an ISO attached (read-only virtio-blk, after the VM's
  // disks) for this boot only, as `vmctl install` does; a reboot comes back
  // without it.
  void start(const std::string& installMedium = "");
  void stop();      // ACPI power button
  void poweroff();  // SIGKILL
  // Restarts (or upgrades to `binary`) one device server: the core
  // quiesces it, then the supervisor replaces it.
  kj::Promise<void> restartDevice(const std::string& device, const std::string& binary);
  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  const std::string& lastExit() const { return lastExit_; }
  std::vector<DeviceSnapshot> devices() const;
  // The running VM's cgroup (null when stopped, or when the host gives it
  // none).
  const VmCgroup* cgroup() const { return cgroup_.get(); }
  // The unix socket of a serial port's console ("com1", "com2").
  std::string consolePath(const std::string& port = "com1") const;
  // Where a running VM's VNC server listens, "" without graphics.
  std::string vnc() const { return vnc_; }
  // Core command line for the VM (exposed for tests and `vmctl info`).
  std::vector<std::string> coreArguments(int statusFd, int deviceSocket,
                                         const std::string& installMedium) const;

 private:
  struct ServedDevice {
    std::unique_ptr<DeviceResources> resources;
    std::unique_ptr<DeviceServerProcess> process;
    std::unique_ptr<DeviceSupervisor> supervisor;
    std::string backend;  // What it serves, for `vmctl devices`.
  };

  // The device servers' PCI slots, in the order the core is told about
  // them, with the config's name for each ("disk0") and a NIC's switch.
  struct ServerSlot {
    PciSlotConfig pci;
    std::string label;
    std::string vmSwitch;
    std::string backend;  // A disk's image (a NIC's is known once its tap exists).
  };
  std::vector<ServerSlot> serverSlots(const VmConfig& config, const std::string& installMedium) const;
  // Where the VM's VNC server listens ("127.0.0.1:5900", "[::]:5901").
  std::string vncEndpoint(const VmConfig& config) const;
  void startDevices(const VmConfig& config, const std::string& installMedium);
  // Makes the VM's cgroup with its limits; throws for a key the host's
  // cgroups cannot apply.
  void makeCgroup(const VmConfig& config, const std::string& installMedium);
  void sendDevices(int socket);
  // Ends the servers; `remember`: keep their last state for `vmctl devices`.
  void stopDevices(bool remember = true);
  ServedDevice* findDevice(const std::string& name);
  void log(const std::string& line);
  void watchExit();
  // The syscall a core killed by its sandbox reported in vmm.log.
  std::optional<uint32_t> coreViolation() const;
  kj::Promise<void> readEvents();
  kj::Promise<std::string> sendCommand(const std::string& device, bool quiesce);
  void taskFailed(kj::Exception&& exception) override;

  kj::AsyncIoContext& io_;
  UvInKj& supervisorLoop_;
  Datastore& datastore_;
  const Switches& switches_;
  VmIdentities& identities_;
  std::optional<VmIdentity> identity_;  // While the VM runs.
  CgroupTree& cgroups_;
  std::unique_ptr<VmCgroup> cgroup_;  // While the VM runs.
  bool killed_ = false;               // poweroff: no server restarts while the VM goes.
  uint16_t vncPort_ = 5900;           // Chosen at start when graphics_port is not set.
  std::string vnc_;                   // While the VM runs with graphics.
  std::string coreBinary_;
  std::string name_;
  pid_t pid_ = 0;
  std::string lastExit_ = "never started";
  bool stopping_ = false;
  GuestRamFile ram_;
  std::vector<ServedDevice> devices_;
  // The devices as they were when the VM last stopped, for `vmctl devices`.
  std::vector<DeviceSnapshot> lastDevices_;
  UniqueFd log_;
  std::vector<std::string> consolePorts_;  // Whose sockets to remove when the core ends.
  UniqueFd corePidfd_;                     // Readable when the core exits.
  kj::Own<kj::UnixEventPort::FdObserver> coreExit_;
  kj::Own<kj::AsyncIoStream> control_;  // The core's status socket.
  kj::Promise<void> eventTask_ = nullptr;
  // CoreCommands waiting for their answer, by id.
  std::map<uint64_t, kj::Own<kj::PromiseFulfiller<std::string>>> waiting_;
  uint64_t lastCommandId_ = 0;
  kj::TaskSet tasks_{*this};
};

}  // namespace cellvisor
