#include "vmmd/control-service.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "templates.h"
#include "vmmd/media-store.h"

namespace cellvisor {
namespace {

// Runs `body`, turning our errors into RPC errors with their message.
template <typename Body>
kj::Promise<void> guarded(Body&& body) {
  try {
    body();
  } catch (const std::exception& error) {
    return kj::Exception(kj::Exception::Type::FAILED, __FILE__, __LINE__, kj::str(error.what()));
  }
  return kj::READY_NOW;
}

}  // namespace

ControlService::ControlService(kj::AsyncIoContext& io, UvInKj& supervisorLoop, DatastoreSet& datastores,
                               CgroupTree cgroups, std::string coreBinary)
    : io_(io),
      supervisorLoop_(supervisorLoop),
      datastores_(datastores),
      switches_(datastores.primary().systemConfigPath()),
      identities_(datastores.primary().systemConfigPath()),
      cgroups_(std::move(cgroups)),
      coreBinary_(std::move(coreBinary)) {}

kj::Promise<void> ControlService::autostart() {
  auto settings = datastores_.primary().autostart();
  kj::Promise<void> chain = kj::READY_NOW;
  for (size_t i = 0; i < settings.names.size(); ++i) {
    std::string name = settings.names[i];
    auto delay = i == 0 ? 0 * kj::SECONDS : settings.delaySeconds * kj::SECONDS;
    chain = chain.then([this, delay]() { return io_.provider->getTimer().afterDelay(delay); })
                .then([this, name]() {
                  try {
                    runner(name).start();
                    std::cerr << "vmmd: autostart: started " << name << '\n';
                  } catch (const std::exception& error) {
                    std::cerr << "vmmd: autostart: " << name << ": " << error.what() << '\n';
                  }
                });
  }
  return chain;
}

bool ControlService::autostarted(const std::string& name) const {
  try {
    auto names = datastores_.primary().autostart().names;
    return std::find(names.begin(), names.end(), name) != names.end();
  } catch (const std::exception&) {
    return false;
  }
}

VmRunner& ControlService::runner(const std::string& name) {
  Datastore& store = datastores_.holding(name);
  auto& slot = runners_[name];
  if (!slot)
    slot = std::make_unique<VmRunner>(io_, supervisorLoop_, store, switches_, identities_, cgroups_,
                                      coreBinary_, name);
  return *slot;
}

void ControlService::fillSummary(proto::VmSummary::Builder summary, const std::string& name) {
  summary.setName(name);
  Datastore& store = datastores_.holding(name);
  summary.setDatastore(datastores_.nameOf(store));
  try {
    VmConfig config = store.load(name);
    summary.setLoader(config.loader);
    summary.setCpu(config.cpu);
    summary.setMemory(config.memoryText);
  } catch (const std::exception& error) {
    summary.setLoader("(bad config)");
  }
  VmRunner& vm = runner(name);
  summary.setPid(vm.pid());
  summary.setState(vm.running() ? fmt::format("running ({})", vm.pid()) : "stopped");
  summary.setLastExit(vm.lastExit());
  summary.setConsolePath(vm.consolePath());
  summary.setAutostart(autostarted(name));
  summary.setVnc(vm.vnc());
  summary.setMemoryBytes(-1);
  if (const VmCgroup* cgroup = vm.cgroup()) {
    VmUsage usage = cgroup->usage();
    summary.setCgroup(cgroup->path().string());
    summary.setCpuMicroseconds(usage.cpuMicroseconds);
    if (usage.memoryBytes) summary.setMemoryBytes(static_cast<int64_t>(*usage.memoryBytes));
    std::vector<std::string> lines = describeUsage(usage);
    for (const auto& limit : cgroup->applied()) lines.push_back("limit: " + limit);
    auto resources = summary.initResources(static_cast<unsigned>(lines.size()));
    for (unsigned i = 0; i < lines.size(); ++i) resources.set(i, lines[i]);
  }
}

kj::Promise<void> ControlService::list(ListContext context) {
  return guarded([&] {
    std::vector<std::string> names;
    for (const auto& datastore : datastores_.names()) {
      for (const auto& name : datastores_.named(datastore).list()) names.push_back(name);
    }
    auto vms = context.getResults().initVms(static_cast<unsigned>(names.size()));
    for (unsigned i = 0; i < names.size(); ++i) fillSummary(vms[i], names[i]);
  });
}

kj::Promise<void> ControlService::info(InfoContext context) {
  return guarded([&] {
    std::string name = context.getParams().getName();
    fillSummary(context.getResults().initVm(), name);
    std::ifstream file(datastores_.holding(name).configPath(name));
    std::stringstream text;
    text << file.rdbuf();
    context.getResults().setConfig(text.str());
  });
}

kj::Promise<void> ControlService::create(CreateContext context) {
  return guarded([&] {
    auto params = context.getParams();
    CreateOptions options;
    if (params.getTemplate().size() > 0) options.templateName = params.getTemplate();
    options.cpus = params.getCpus();
    options.memory = params.getMemory();
    options.diskSize = params.getDiskSize();
    options.templates = datastores_.primary().root() / ".templates";
    std::string name = params.getName();
    if (datastores_.anyHolds(name)) throw DatastoreError("VM '" + name + "' already exists");
    std::string datastore = params.getDatastore();
    auto warnings = datastores_.named(datastore.empty() ? "default" : datastore).create(name, options);
    auto list = context.getResults().initWarnings(static_cast<unsigned>(warnings.size()));
    for (unsigned i = 0; i < warnings.size(); ++i) list.set(i, warnings[i]);
  });
}

kj::Promise<void> ControlService::start(StartContext context) {
  return guarded([&] { runner(context.getParams().getName()).start(); });
}

kj::Promise<void> ControlService::stop(StopContext context) {
  return guarded([&] { runner(context.getParams().getName()).stop(); });
}

kj::Promise<void> ControlService::poweroff(PoweroffContext context) {
  return guarded([&] { runner(context.getParams().getName()).poweroff(); });
}

kj::Promise<void> ControlService::destroy(DestroyContext context) {
  return guarded([&] {
    std::string name = context.getParams().getName();
    VmRunner& vm = runner(name);
    if (vm.running()) {
      if (!context.getParams().getForce())
        throw DatastoreError("VM '" + name + "' is running (destroy -f to force)");
      vm.poweroff();
    }
    runners_.erase(name);
    datastores_.holding(name).destroy(name);
  });
}

kj::Promise<void> ControlService::devices(DevicesContext context) {
  return guarded([&] {
    VmRunner& vm = runner(context.getParams().getName());
    const auto& devices = vm.devices();
    auto list = context.getResults().initDevices(static_cast<unsigned>(devices.size()));
    for (unsigned i = 0; i < devices.size(); ++i) {
      const auto& device = devices[i];
      list[i].setName(device.name);
      list[i].setPid(device.pid);
      list[i].setState(device.state);
      list[i].setRestarts(device.restarts);
      list[i].setLastExit(device.lastExit);
      list[i].setPolicy(device.policy);
      list[i].setSandbox(device.sandbox);
      list[i].setLastViolation(device.lastViolation);
      list[i].setBackend(device.backend);
    }
  });
}

kj::Promise<void> ControlService::restart(RestartContext context) {
  std::string name = context.getParams().getName();
  try {
    VmRunner& vm = runner(name);
    if (!vm.running()) {
      vm.start();
      return kj::READY_NOW;
    }
    vm.stop();
  } catch (const std::exception& error) {
    return kj::Exception(kj::Exception::Type::FAILED, __FILE__, __LINE__, kj::str(error.what()));
  }
  // Give the guest its shutdown, then start again (power off after 30 s).
  return waitStopped(name, 300).then([this, name]() { runner(name).start(); });
}

kj::Promise<void> ControlService::waitStopped(std::string name, int tries) {
  if (!runner(name).running()) return kj::READY_NOW;
  if (tries == 0) runner(name).poweroff();
  return io_.provider->getTimer().afterDelay(100 * kj::MILLISECONDS).then([this, name, tries]() {
    return waitStopped(name, tries > 0 ? tries - 1 : 0);
  });
}

kj::Promise<void> ControlService::shutdown() {
  // vmmd's own stop (SIGTERM): every guest gets the ACPI power button and
  // 30 s to act on it (poweroff after that), before its servers go.
  kj::Vector<kj::Promise<void>> stopped;
  for (auto& [name, vm] : runners_) {
    if (!vm->running()) continue;
    std::cerr << "vmmd: stopping " << name << '\n';
    vm->stop();
    stopped.add(waitStopped(name, 300));
  }
  return kj::joinPromises(stopped.releaseAsArray());
}

void ControlService::requireStopped(const std::string& name) {
  if (runner(name).running()) throw DatastoreError("VM '" + name + "' is running; stop it first");
}

kj::Promise<void> ControlService::rename(RenameContext context) {
  return guarded([&] {
    std::string name = context.getParams().getName();
    requireStopped(name);
    std::string newName = context.getParams().getNewName();
    if (datastores_.anyHolds(newName)) throw DatastoreError("VM '" + newName + "' already exists");
    datastores_.holding(name).rename(name, newName);
    runners_.erase(name);
  });
}

kj::Promise<void> ControlService::clone(CloneContext context) {
  return guarded([&] {
    std::string name = context.getParams().getName();
    requireStopped(name);
    std::string newName = context.getParams().getNewName();
    if (datastores_.anyHolds(newName)) throw DatastoreError("VM '" + newName + "' already exists");
    datastores_.holding(name).clone(name, newName);
  });
}

kj::Promise<void> ControlService::configure(ConfigureContext context) {
  return guarded([&] {
    std::string name = context.getParams().getName();
    datastores_.holding(name).writeConfig(name, context.getParams().getConfig());
  });
}

kj::Promise<void> ControlService::addDisk(AddDiskContext context) {
  return guarded([&] {
    std::string name = context.getParams().getName();
    requireStopped(name);
    std::string type = context.getParams().getType();
    context.getResults().setDisk(datastores_.holding(name).addDisk(name, context.getParams().getSize(),
                                                                   type.empty() ? "virtio-blk" : type));
  });
}

kj::Promise<void> ControlService::addNetwork(AddNetworkContext context) {
  return guarded([&] {
    std::string name = context.getParams().getName();
    std::string vmSwitch = context.getParams().getSwitch();
    requireStopped(name);
    if (!switches_.has(vmSwitch)) throw DatastoreError("no switch named '" + vmSwitch + "'");
    context.getResults().setNetwork(datastores_.holding(name).addNetwork(name, vmSwitch));
  });
}

kj::Promise<void> ControlService::restartDevice(RestartDeviceContext context) {
  auto params = context.getParams();
  try {
    std::string binary = params.getBinary();
    if (!binary.empty() && binary.front() != '/')
      throw DatastoreError("the new binary needs an absolute path");
    return runner(params.getName()).restartDevice(params.getDevice(), binary);
  } catch (const std::exception& error) {
    return kj::Exception(kj::Exception::Type::FAILED, __FILE__, __LINE__, kj::str(error.what()));
  }
}

kj::Promise<void> ControlService::reset(ResetContext context) {
  std::string name = context.getParams().getName();
  try {
    runner(name).poweroff();
  } catch (const std::exception& error) {
    return kj::Exception(kj::Exception::Type::FAILED, __FILE__, __LINE__, kj::str(error.what()));
  }
  return waitStopped(name, 100).then([this, name]() { runner(name).start(); });
}

kj::Promise<void> ControlService::init(InitContext context) {
  return guarded([&] {
    std::vector<std::string> installed;
    for (const auto& file : templates::EMBEDDED_FILES) {
      std::string name(file.name.substr(0, file.name.rfind(".conf")));
      if (std::filesystem::exists(datastores_.primary().root() / ".templates" / file.name)) continue;
      datastores_.primary().installTemplate(name, std::string(file.text));
      installed.push_back(name);
    }
    auto list = context.getResults().initInstalled(static_cast<unsigned>(installed.size()));
    for (unsigned i = 0; i < installed.size(); ++i) list.set(i, installed[i]);
  });
}

kj::Promise<void> ControlService::media(MediaContext context) {
  return guarded([&] {
    auto files = MediaStore(datastores_.primary().root()).list(parseMediaKind(context.getParams().getKind()));
    auto list = context.getResults().initFiles(static_cast<unsigned>(files.size()));
    for (unsigned i = 0; i < files.size(); ++i) {
      list[i].setName(files[i].name);
      list[i].setSize(files[i].size);
    }
  });
}

kj::Promise<void> ControlService::importMedia(ImportMediaContext context) {
  return guarded([&] {
    auto params = context.getParams();
    MediaStore store(datastores_.primary().root());
    context.getResults().setName(
        store.import(parseMediaKind(params.getKind()), std::string(params.getPath())));
  });
}

kj::Promise<void> ControlService::install(InstallContext context) {
  return guarded([&] {
    std::string name = context.getParams().getName();
    requireStopped(name);
    auto medium = MediaStore(datastores_.primary().root()).resolve(context.getParams().getMedium());
    if (detectMediaContent(medium) == MediaContent::KERNEL) {
      datastores_.holding(name).setConfigValues(name, {{"loader", "kernel"}, {"kernel", medium.string()}});
      runner(name).start();
      context.getResults().setKind("kernel");
    } else {
      runner(name).start(medium.string());
      context.getResults().setKind("iso");
    }
  });
}

kj::Promise<void> ControlService::datastores(DatastoresContext context) {
  return guarded([&] {
    auto names = datastores_.names();
    auto list = context.getResults().initDatastores(static_cast<unsigned>(names.size()));
    for (unsigned i = 0; i < names.size(); ++i) {
      Datastore& store = datastores_.named(names[i]);
      list[i].setName(names[i]);
      list[i].setPath(store.root().string());
      list[i].setVms(static_cast<uint32_t>(store.list().size()));
    }
  });
}

kj::Promise<void> ControlService::addDatastore(AddDatastoreContext context) {
  return guarded(
      [&] { datastores_.add(context.getParams().getName(), std::string(context.getParams().getPath())); });
}

kj::Promise<void> ControlService::removeDatastore(RemoveDatastoreContext context) {
  return guarded([&] {
    std::string name = context.getParams().getName();
    Datastore& store = datastores_.named(name);
    for (const auto& vm : store.list()) requireStopped(vm);
    for (const auto& vm : store.list()) runners_.erase(vm);
    datastores_.remove(name);
  });
}

kj::Promise<void> ControlService::switches(SwitchesContext context) {
  return guarded([&] {
    auto switches = switches_.list();
    auto list = context.getResults().initSwitches(static_cast<unsigned>(switches.size()));
    for (unsigned i = 0; i < switches.size(); ++i) {
      const SwitchInfo& info = switches[i];
      list[i].setName(info.name);
      list[i].setType(info.type);
      list[i].setBridge(info.bridge);
      list[i].setAddress(info.address);
      list[i].setMtu(info.mtu);
      auto ports = list[i].initPorts(static_cast<unsigned>(info.ports.size()));
      for (unsigned p = 0; p < info.ports.size(); ++p) ports.set(p, info.ports[p]);
      list[i].setPresent(info.present);
      list[i].setUp(info.up);
    }
  });
}

kj::Promise<void> ControlService::createSwitch(CreateSwitchContext context) {
  return guarded([&] {
    auto params = context.getParams();
    switches_.create(params.getName(), params.getType(), params.getBridge(), params.getAddress(),
                     params.getMtu());
  });
}

kj::Promise<void> ControlService::addSwitchPort(AddSwitchPortContext context) {
  return guarded([&] { switches_.addPort(context.getParams().getName(), context.getParams().getPort()); });
}

kj::Promise<void> ControlService::removeSwitchPort(RemoveSwitchPortContext context) {
  return guarded([&] { switches_.removePort(context.getParams().getName(), context.getParams().getPort()); });
}

kj::Promise<void> ControlService::destroySwitch(DestroySwitchContext context) {
  return guarded([&] { switches_.destroy(context.getParams().getName()); });
}

}  // namespace cellvisor
