// One VM's life under vmmd: builds the vmm-core command line from its
// vm-bhyve config, starts the core (console on a unix socket in the VM's
// directory, log beside it, device reports on a pipe), follows its exit, and
// restarts it when the guest rebooted (exit status 0), as vm-bhyve does.
#pragma once

#include <kj/async-io.h>
#include <kj/async-unix.h>

#include <functional>
#include <string>
#include <vector>

#include "control.capnp.h"
#include "vmmd/datastore.h"

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
};

class VmRunner : private kj::TaskSet::ErrorHandler {
 public:
  VmRunner(kj::AsyncIoContext& io, Datastore& datastore, std::string coreBinary, std::string name);
  ~VmRunner();

  // Throws DatastoreError / VmConfigError / kj exceptions with a user message.
  void start();
  void stop();      // ACPI power button
  void poweroff();  // SIGKILL
  // Asks the core to restart (or upgrade) one device server.
  kj::Promise<void> restartDevice(const std::string& device, const std::string& binary);
  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  const std::string& lastExit() const { return lastExit_; }
  const std::vector<DeviceSnapshot>& devices() const { return devices_; }
  std::string consolePath() const;
  // Core command line for the VM (exposed for tests and `vmctl info`).
  std::vector<std::string> coreArguments(int statusFd) const;

 private:
  void watchExit();
  kj::Promise<void> readReports();
  void taskFailed(kj::Exception&& exception) override;

  kj::AsyncIoContext& io_;
  Datastore& datastore_;
  std::string coreBinary_;
  std::string name_;
  pid_t pid_ = 0;
  std::string lastExit_ = "never started";
  bool stopping_ = false;
  std::vector<DeviceSnapshot> devices_;
  kj::Own<kj::AsyncIoStream> reports_;
  kj::Promise<void> reportTask_ = nullptr;
  kj::TaskSet tasks_{*this};
};

}  // namespace cellvisor
