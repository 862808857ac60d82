// vmmd's control API (proto/control.capnp) over its datastore and the VMs
// it runs. Every failure becomes an RPC exception carrying the message the
// user should see.
#pragma once

#include <kj/async-io.h>

#include <map>
#include <memory>
#include <string>

#include "control.capnp.h"
#include "vmmd/datastore-set.h"
#include "vmmd/switches.h"
#include "vmmd/vm-identities.h"
#include "vmmd/vm-runner.h"

namespace cellvisor {

class ControlService final : public proto::Vmmd::Server {
 public:
  // `cgroups`: where the VMs' cgroups go (vmmd/vm-cgroup.h).
  ControlService(kj::AsyncIoContext& io, UvInKj& supervisorLoop, DatastoreSet& datastores, CgroupTree cgroups,
                 std::string coreBinary);
  // Starts the datastore's vm_list in order, vm_delay seconds apart.
  kj::Promise<void> autostart();
  bool autostarted(const std::string& name) const;
  // Stops every running VM (ACPI power button, poweroff after 30 s).
  kj::Promise<void> shutdown();

 protected:
  kj::Promise<void> list(ListContext context) override;
  kj::Promise<void> info(InfoContext context) override;
  kj::Promise<void> create(CreateContext context) override;
  kj::Promise<void> start(StartContext context) override;
  kj::Promise<void> stop(StopContext context) override;
  kj::Promise<void> poweroff(PoweroffContext context) override;
  kj::Promise<void> destroy(DestroyContext context) override;
  kj::Promise<void> devices(DevicesContext context) override;
  kj::Promise<void> restart(RestartContext context) override;
  kj::Promise<void> rename(RenameContext context) override;
  kj::Promise<void> clone(CloneContext context) override;
  kj::Promise<void> configure(ConfigureContext context) override;
  kj::Promise<void> addDisk(AddDiskContext context) override;
  kj::Promise<void> restartDevice(RestartDeviceContext context) override;
  kj::Promise<void> reset(ResetContext context) override;
  kj::Promise<void> init(InitContext context) override;
  kj::Promise<void> media(MediaContext context) override;
  kj::Promise<void> importMedia(ImportMediaContext context) override;
  kj::Promise<void> install(InstallContext context) override;
  kj::Promise<void> datastores(DatastoresContext context) override;
  kj::Promise<void> addDatastore(AddDatastoreContext context) override;
  kj::Promise<void> removeDatastore(RemoveDatastoreContext context) override;
  kj::Promise<void> switches(SwitchesContext context) override;
  kj::Promise<void> createSwitch(CreateSwitchContext context) override;
  kj::Promise<void> addSwitchPort(AddSwitchPortContext context) override;
  kj::Promise<void> removeSwitchPort(RemoveSwitchPortContext context) override;
  kj::Promise<void> destroySwitch(DestroySwitchContext context) override;
  kj::Promise<void> addNetwork(AddNetworkContext context) override;

 private:
  VmRunner& runner(const std::string& name);
  void fillSummary(proto::VmSummary::Builder summary, const std::string& name);
  kj::Promise<void> waitStopped(std::string name, int tries);
  void requireStopped(const std::string& name);

  kj::AsyncIoContext& io_;
  UvInKj& supervisorLoop_;
  DatastoreSet& datastores_;
  Switches switches_;
  VmIdentities identities_;
  CgroupTree cgroups_;
  std::string coreBinary_;
  std::map<std::string, std::unique_ptr<VmRunner>> runners_;
};

}  // namespace cellvisor
