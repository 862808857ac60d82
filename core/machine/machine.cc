#include "core/machine/machine.h"

#include <capnp/serialize.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <ctime>
#include <iostream>

#include "base/guest-memory.h"
#include "core.capnp.h"
#include "core/acpi/acpi-pm.h"
#include "core/acpi/acpi-tables.h"
#include "core/arch/x86/address-map.h"
#include "core/boot/boot-method.h"
#include "core/boot/kernel-loader.h"
#include "core/boot/load-error.h"
#include "core/cpu/cpuid.h"
#include "core/devices/device-channel.h"
#include "core/devices/input-link-reader.h"
#include "core/devices/kvm-device-wiring.h"
#include "core/devices/pci-server-proxy.h"
#include "core/firmware/fw-cfg.h"
#include "core/kvm/hypervisor.h"
#include "core/kvm/vcpu.h"
#include "core/kvm/vm.h"
#include "core/machine/kvm-irq-line.h"
#include "core/machine/platform-pci.h"
#include "core/machine/platform.h"
#include "core/memory/host-memory.h"
#include "core/pci/pci-host.h"
#include "core/platform/debug-exit.h"
#include "core/platform/reset-control.h"
#include "core/sandbox/core-confinement.h"
#include "core/serial/serial-backend.h"
#include "host/device-resources.h"
#include "host/device-server-process.h"
#include "host/device-supervisor.h"
#include "host/server-catalog.h"
#include "pci/bar-placement.h"

namespace cellvisor {
namespace {

constexpr int KICK_SIGNAL = SIGUSR1;
constexpr uint64_t HALT_PROBE_MS = 250;

void installKickHandler() {
  struct sigaction action {};
  action.sa_handler = [](int) {};  // Only to interrupt KVM_RUN (no SA_RESTART).
  sigemptyset(&action.sa_mask);
  sigaction(KICK_SIGNAL, &action, nullptr);
}

std::string describeRegisters(Vcpu& vcpu) {
  try {
    kvm_regs regs = vcpu.regs();
    kvm_sregs sregs = vcpu.sregs();
    return fmt::format("rip={:#x} rsp={:#x} rflags={:#x} cr0={:#x} cr3={:#x} cr4={:#x} efer={:#x} cs={:#x}",
                       regs.rip, regs.rsp, regs.rflags, sregs.cr0, sregs.cr3, sregs.cr4, sregs.efer,
                       sregs.cs.selector);
  } catch (const std::exception& error) {
    return std::string("registers unavailable: ") + error.what();
  }
}

}  // namespace

Machine::Machine(const MachineConfig& config) : config_(config) {
  installKickHandler();
  hypervisor_ = std::make_unique<Hypervisor>();
  if (config_.cpus > static_cast<uint32_t>(hypervisor_->maxVcpus())) {
    throw std::invalid_argument(
        fmt::format("{} vCPUs requested; KVM allows {}", config_.cpus, hypervisor_->maxVcpus()));
  }
  vm_ = hypervisor_->createVm();
  adoptDevicesFromVmmd();
  if (!memory_) memory_ = std::make_unique<GuestMemory>(config_.memoryBytes, layout::RAM_SPLIT);
  if (!config_.guestMemoryInCore) excludeFromCoreDumps(memory_->base(), memory_->size());
  if (config_.memoryWired) wireMemory(memory_->base(), memory_->size());
  uint64_t ramEnd = 0;
  for (const auto& region : memory_->regions()) {
    vm_->addMemorySlot(region.guestPhysical, region.size, memory_->base() + region.memfdOffset);
    ramEnd = std::max(ramEnd, region.guestPhysical + region.size);
  }
  resources_ = std::make_unique<ResourceAllocator>(ramEnd);
  // Needed by VT-x for real-mode emulation; other backends may refuse it.
  try {
    vm_->setIdentityMapAddress(layout::IDENTITY_MAP_ADDRESS);
    vm_->setTssAddress(layout::TSS_ADDRESS);
  } catch (const std::system_error& error) {
    std::cerr << "vmm-core: note: " << error.what() << '\n';
  }
  if (!config_.strictMsr) {
    try {
      vm_->enableUnknownMsrExits();
    } catch (const std::exception& error) {
      throw std::runtime_error(std::string("-w (x86.strictmsr=false): ") + error.what());
    }
  }
  vm_->createIrqchip();
  vm_->createPit();
  buildPlatform();
  loadGuest();
  createVcpus();
}

Machine::~Machine() {
  stopVcpus();
  for (auto& thread : vcpuThreads_) {
    if (thread.joinable()) thread.join();
  }
}

void Machine::buildPlatform() {
  platform_ = std::make_unique<Platform>(
      config_, *memory_, *this,
      [this](uint32_t gsi) -> std::unique_ptr<IrqLine> { return std::make_unique<KvmIrqLine>(*vm_, gsi); });
  std::vector<PciSlotConfig> chipset;
  if (config_.deviceSocket < 0) prepareLocalDevices();
  for (const auto& slot : config_.pciSlots) {
    if (isServerDevice(slot.emulation)) {
      attachServerDevice(slot);
    } else {
      chipset.push_back(slot);
    }
  }
  platform_->attachChipsetFunctions(chipset);
}

void Machine::adoptDevicesFromVmmd() {
  if (config_.deviceSocket < 0) return;
  // vmmd runs the servers and sends, for each, the resources it made for
  // it, all referring to the guest RAM vmmd created: that RAM becomes ours.
  // Kept: the supervisor also learns through it what the confined core
  // leaves in the filesystem for it to remove.
  deviceSocket_ = UniqueFd(config_.deviceSocket);
  for (const auto& slot : config_.pciSlots) {
    if (!isServerDevice(slot.emulation)) continue;
    AdoptedDevice device = receiveDeviceResources(deviceSocket_.get());
    if (device.resources->deviceName() != serverDeviceName(slot)) {
      throw std::runtime_error("vmmd sent resources for " + device.resources->deviceName() + ", expected " +
                               serverDeviceName(slot));
    }
    if (!memory_) {
      memory_ = std::make_unique<GuestMemory>(std::move(device.memory), device.regions);
      if (memory_->size() != config_.memoryBytes)
        throw std::runtime_error("vmmd's guest RAM has the wrong size");
    }
    adoptedDevices_.push_back(std::move(device));
  }
}

void Machine::prepareLocalDevices() {
  std::vector<DeviceResources*> made;
  for (const auto& slot : config_.pciSlots) {
    if (!isServerDevice(slot.emulation)) continue;
    LocalDevice device;
    device.launch = std::make_unique<ServerLaunch>(prepareServerLaunch(slot, config_.cpus, config_.sandbox));
    device.resources = makeDeviceResources(*device.launch);
    made.push_back(device.resources.get());
    localDevices_.push_back(std::move(device));
  }
  linkInputDevices(made);
}

void Machine::attachServerDevice(const PciSlotConfig& slot) {
  ServerDevice device;
  std::string name = serverDeviceName(slot);
  if (config_.deviceSocket >= 0) {
    auto adopted =
        std::find_if(adoptedDevices_.begin(), adoptedDevices_.end(), [&](const AdoptedDevice& candidate) {
          return candidate.resources && candidate.resources->deviceName() == name;
        });
    if (adopted == adoptedDevices_.end()) throw std::runtime_error("vmmd sent no resources for " + name);
    device.resources = std::move(adopted->resources);
  } else {
    auto local = std::find_if(localDevices_.begin(), localDevices_.end(), [&](const LocalDevice& candidate) {
      return candidate.resources && candidate.resources->deviceName() == name;
    });
    if (local == localDevices_.end()) throw std::logic_error("no resources were made for " + name);
    device.resources = std::move(local->resources);
    device.process = std::make_unique<DeviceServerProcess>(std::move(*local->launch), *device.resources,
                                                           memory_->memfd(), memory_->regions());
  }
  device.channel = std::make_unique<DeviceChannel>(*device.resources);
  device.wiring =
      std::make_unique<KvmDeviceWiring>(*vm_, platform_->ports(), platform_->mmio(), *resources_, name);
  device.proxy = std::make_unique<PciServerProxy>(*device.channel, *device.wiring);
  // Without firmware the core places the BARs as firmware would, naturally
  // aligned in the 32-bit window; firmware finds them unassigned and decoding
  // off, as after a reset, and places them itself.
  if (config_.bootrom.empty()) {
    std::vector<BarRequest> requests;
    for (const auto& bar : device.proxy->bars()) requests.push_back({bar.index, bar.size, bar.io, bar.is64});
    auto addresses = resources_->placeBars(requests, name);
    for (size_t i = 0; i < requests.size(); ++i) device.proxy->assignBar(requests[i].index, addresses[i]);
    device.proxy->enableDecoding();
  }
  platform_->pciHost().attach(slot.slot, slot.function, *device.proxy);
  serverDevices_.push_back(std::move(device));
}

void Machine::loadGuest() {
  boot_ = chooseBootMethod(config_);
  BootContext context{*memory_,
                      *vm_,
                      {config_.cpus, layout::ECAM_BASE, static_cast<uint8_t>((layout::ECAM_SIZE >> 20) - 1),
                       AcpiPm::EVENT_BLOCK, AcpiPm::CONTROL_BLOCK, AcpiPm::TIMER_BLOCK, AcpiPm::SCI_IRQ,
                       ResetControlRegister::PORT, 0x06},
                      platform_->fwCfg()};
  boot_->prepare(context);
  addUserFwCfgFiles();
  vcpus_.push_back(vm_->createVcpu(0));
  boot_->setUpBootVcpu(*vcpus_.front());
}

void Machine::addUserFwCfgFiles() {
  for (const auto& file : config_.fwCfgFiles) {
    std::vector<uint8_t> bytes(file.data.begin(), file.data.end());
    if (!file.path.empty()) bytes = readImageFile(file.path, "-f", 16 * layout::MiB, "a fw_cfg file's limit");
    if (platform_->fwCfg().file(file.name) != nullptr) {
      throw LoadError("-f " + file.name + ": the core provides this fw_cfg file itself");
    }
    platform_->fwCfg().addFile(file.name, std::move(bytes));
  }
}

void Machine::createVcpus() {
  auto supported = hypervisor_->supportedCpuid();
  auto mask = config_.cpuidMaskSet ? config_.cpuidMask : defaultCpuidMask(hostEmulatesGuestKernel());
  if (!config_.cpuidMaskSet && !mask.empty()) {
    std::string names;
    for (const auto& name : mask) names += (names.empty() ? "" : ",") + name;
    std::cerr << "vmm-core: this host's KVM emulates guest ring 0: CPUID hides what its emulator cannot run ("
              << names << "; --cpuid-mask overrides)\n";
  }
  // bhyve's default is xAPIC mode: x2APIC is offered only with -x.
  if (!config_.x2apic) {
    mask.push_back("x2apic");
  } else if (!cpuidHasFeature(supported, "x2apic")) {
    throw std::invalid_argument("-x (x86.x2apic): KVM here offers no x2APIC");
  }
  for (uint32_t id = 1; id < config_.cpus; ++id) vcpus_.push_back(vm_->createVcpu(id));
  for (auto& vcpu : vcpus_) {
    vcpu->setCpuid(buildCpuid(supported, vcpu->id(), config_.cpus, mask));
    constexpr uint32_t MSR_MTRR_DEF_TYPE = 0x2ff;
    constexpr uint64_t MTRR_ENABLED_WRITE_BACK = (1u << 11) | 6;
    try {
      std::pair<uint32_t, uint64_t> msrs[] = {{MSR_MTRR_DEF_TYPE, MTRR_ENABLED_WRITE_BACK}};
      vcpu->setMsrs(msrs);
    } catch (const std::system_error&) {
      // Not every backend virtualizes MTRRs; the guest then sees them off.
    }
    // LINT0 delivers the PIC's ExtINT, LINT1 NMI, as firmware leaves them.
    kvm_lapic_state lapic = vcpu->lapic();
    auto setLvt = [&](size_t offset, uint32_t mode) {
      uint32_t value;
      std::memcpy(&value, lapic.regs + offset, 4);
      value = (value & ~0x700u & ~(1u << 16)) | (mode << 8);
      std::memcpy(lapic.regs + offset, &value, 4);
    };
    setLvt(0x350, 7);
    setLvt(0x360, 4);
    vcpu->setLapic(lapic);
  }
}

int Machine::run() {
  uv_loop_init(&loop_);
  uv_async_init(&loop_, &loopStop_, [](uv_async_t* async) { uv_stop(async->loop); });
  loopStop_.data = this;
  uv_async_init(&loop_, &shutdownRequest_,
                [](uv_async_t* async) { static_cast<Machine*>(async->data)->requestShutdown(); });
  shutdownRequest_.data = this;
  for (uv_signal_t* signal : {&sigterm_, &sigint_}) {
    uv_signal_init(&loop_, signal);
    signal->data = this;
    uv_signal_start(
        signal, [](uv_signal_t* handle, int) { static_cast<Machine*>(handle->data)->requestShutdown(); },
        signal == &sigterm_ ? SIGTERM : SIGINT);
  }
  registerDumps_ = std::make_unique<std::atomic<bool>[]>(vcpus_.size());
  uv_signal_init(&loop_, &sigusr2_);
  sigusr2_.data = this;
  uv_signal_start(
      &sigusr2_,
      [](uv_signal_t* handle, int) { static_cast<Machine*>(handle->data)->requestRegisterDumps(); }, SIGUSR2);
  uv_timer_init(&loop_, &haltProbe_);
  haltProbe_.data = this;
  haltAnswers_ = std::make_unique<std::atomic<HaltAnswer>[]>(vcpus_.size());
  for (size_t i = 0; i < vcpus_.size(); ++i) haltAnswers_[i] = HaltAnswer::NONE;
  uv_timer_start(
      &haltProbe_, [](uv_timer_t* timer) { static_cast<Machine*>(timer->data)->probeHalt(); }, HALT_PROBE_MS,
      HALT_PROBE_MS);
  for (auto& [backend, uart] : platform_->serialPorts()) backend->startInput(&loop_, *uart);
  for (auto& device : serverDevices_) {
    if (!device.process) continue;
    device.supervisor =
        std::make_unique<DeviceSupervisor>(&loop_, *device.process, [this] { return stopping_.load(); });
  }
  connectInputLinks();
  if (config_.statusFd >= 0 && uv_poll_init(&loop_, &statusPoll_, config_.statusFd) == 0) {
    statusPolled_ = true;
    statusPoll_.data = this;
    uv_poll_start(&statusPoll_, UV_READABLE, [](uv_poll_t* poll, int status, int) {
      auto* self = static_cast<Machine*>(poll->data);
      if (status < 0) {
        uv_poll_stop(poll);
        return;
      }
      self->handleCoreCommand();
    });
  }
  // A core with a supervisor (vmmd, or the standalone one it forked from)
  // is confined; only one run with --sandbox off supervises its servers
  // itself and stays as it started.
  bool supervised = config_.deviceSocket >= 0;
  SandboxMode mode = supervised ? parseSandboxMode(config_.sandbox) : SandboxMode::OFF;
  std::optional<CoreIdentity> identity;
  if (config_.sandboxIdentity)
    identity = CoreIdentity{config_.sandboxIdentity->first, config_.sandboxIdentity->second};
  ::tzset();  // The RTC's local time: /etc/localtime is read now, not once confined.
  std::string note = leaveHost(mode, identity);  // Before any thread: see core-confinement.h.
  if (!note.empty()) std::cerr << "vmm-core: " << note << '\n';
  threadsReady_.emplace(static_cast<std::ptrdiff_t>(vcpus_.size() + 1));
  ioThread_ = std::thread([this] {
    threadsReady_->count_down();
    confined_.wait();
    runIoLoop();
  });

  {
    std::lock_guard lock(vcpuHandlesMutex_);
    for (auto& vcpu : vcpus_) {
      vcpuThreads_.emplace_back([this, cpu = vcpu.get()] { runVcpu(*cpu); });
      vcpuHandles_.push_back(vcpuThreads_.back().native_handle());
    }
  }
  threadsReady_->wait();
  if (mode != SandboxMode::OFF) handOverToSupervisor();
  try {
    size_t allowed = enterCoreSandbox(mode);
    sandboxed_ = mode != SandboxMode::OFF;
    if (allowed != 0 && !config_.sandboxFault.empty()) makeForbiddenCall(config_.sandboxFault);
  } catch (const std::exception& error) {
    stopping_ = true;  // No vCPU runs the guest in a core that could not confine itself.
    requestExit(ExitStatus::ERROR, std::string("cannot confine the core: ") + error.what());
  }
  confined_.count_down();

  int status;
  {
    std::unique_lock lock(exitMutex_);
    exitChanged_.wait(lock, [&] { return exitStatus_.has_value(); });
    status = *exitStatus_;
  }
  stopVcpus();
  for (auto& thread : vcpuThreads_) thread.join();
  vcpuThreads_.clear();
  {
    std::lock_guard lock(vcpuHandlesMutex_);
    vcpuHandles_.clear();  // Joined threads must never be signalled again.
  }
  uv_async_send(&loopStop_);
  ioThread_.join();
  return status;
}

void Machine::handOverToSupervisor() {
  std::vector<SerialBackend::Handover> left;
  for (auto& [backend, uart] : platform_->serialPorts()) {
    if (auto handover = backend->handover()) left.push_back(*handover);
    backend->handedOver();
  }
  if (left.empty()) return;
  capnp::MallocMessageBuilder builder;
  auto consoles = builder.initRoot<proto::CoreHandover>().initConsoles(static_cast<unsigned>(left.size()));
  std::vector<int> terminals;
  for (unsigned i = 0; i < left.size(); ++i) {
    consoles[i].setPath(left[i].path);
    consoles[i].setLinkTarget(left[i].linkTarget);
    if (left[i].terminal >= 0) {
      consoles[i].setTerminalPath(left[i].terminalPath);
      terminals.push_back(left[i].terminal);
    }
  }
  try {
    sendWithFds(deviceSocket_.get(), builder, terminals);
  } catch (const std::exception& error) {
    std::cerr << "vmm-core: cannot hand the consoles to the supervisor: " << error.what() << '\n';
  }
}

void Machine::probeHalt() {
  // With the in-kernel LAPIC, HLT never leaves KVM, so "halted for good"
  // is asked of each vCPU: every vCPU answered the last round's question?
  bool allHalted = true;
  for (size_t i = 0; i < vcpus_.size(); ++i) allHalted &= haltAnswers_[i].load() == HaltAnswer::HALTED;
  if (allHalted) {
    requestExit(ExitStatus::HALT, "all vCPUs halted with interrupts disabled");
    return;
  }
  // A new round: each vCPU answers once, at its next interrupted run.
  for (size_t i = 0; i < vcpus_.size(); ++i) haltAnswers_[i] = HaltAnswer::ASKED;
  std::lock_guard lock(vcpuHandlesMutex_);
  if (stopping_) return;
  for (pthread_t handle : vcpuHandles_) pthread_kill(handle, KICK_SIGNAL);
}

void Machine::answerHaltProbe(Vcpu& vcpu) {
  // Only a question asked this round gets an answer, and only one: other
  // interrupted runs (a wake-up by INIT or SIPI, a stray signal) say nothing.
  auto& answer = haltAnswers_[vcpu.id()];
  HaltAnswer expected = HaltAnswer::ASKED;
  if (!answer.compare_exchange_strong(expected, HaltAnswer::ANSWERING)) return;
  HaltAnswer result = vcpuIsHaltedForGood(vcpu) ? HaltAnswer::HALTED : HaltAnswer::RUNNING;
  // A new round may have begun meanwhile: then this answer is stale.
  expected = HaltAnswer::ANSWERING;
  answer.compare_exchange_strong(expected, result);
}

void Machine::runIoLoop() {
  uv_run(&loop_, UV_RUN_DEFAULT);
  // Backends close their own handles (and restore the terminal); then ours.
  platform_->closeSerialBackends();
  for (auto& device : serverDevices_) {
    device.supervisor.reset();
    device.input.reset();
  }
  for (auto* handle : std::initializer_list<uv_handle_t*>{
           reinterpret_cast<uv_handle_t*>(&loopStop_), reinterpret_cast<uv_handle_t*>(&shutdownRequest_),
           reinterpret_cast<uv_handle_t*>(&sigterm_), reinterpret_cast<uv_handle_t*>(&sigint_),
           reinterpret_cast<uv_handle_t*>(&sigusr2_), reinterpret_cast<uv_handle_t*>(&haltProbe_)}) {
    uv_close(handle, nullptr);
  }
  if (statusPolled_) uv_close(reinterpret_cast<uv_handle_t*>(&statusPoll_), nullptr);
  uv_run(&loop_, UV_RUN_DEFAULT);
  // Closing the signal handles restored the default actions; a stop request
  // that arrives now (the guest already ended) must not turn a clean exit
  // into death by signal.
  ::signal(SIGTERM, SIG_IGN);
  ::signal(SIGINT, SIG_IGN);
  uv_loop_close(&loop_);
}

void Machine::handleCoreCommand() {
  try {
    capnp::StreamFdMessageReader message(config_.statusFd);
    auto command = message.getRoot<proto::CoreCommand>();
    bool quiesce = command.isQuiesceDevice();
    std::string device = quiesce ? command.getQuiesceDevice() : command.getResumeDevice();
    capnp::MallocMessageBuilder builder;
    auto result = builder.initRoot<proto::CoreEvent>();
    result.setDevice(device);
    result.setId(command.getId());
    auto server = std::find_if(
        serverDevices_.begin(), serverDevices_.end(),
        [&](const ServerDevice& candidate) { return candidate.channel->deviceName() == device; });
    try {
      if (server == serverDevices_.end()) throw std::invalid_argument("no device " + device);
      // Before vmmd replaces a server (live upgrade): let what is in flight
      // finish; the successor resumes from the state segment.
      if (quiesce) {
        server->channel->pause();
      } else {
        server->channel->resume();
      }
    } catch (const std::exception& error) {
      result.setError(error.what());
    }
    capnp::writeMessageToFd(config_.statusFd, builder);
  } catch (const kj::Exception&) {
    uv_poll_stop(&statusPoll_);
    // vmmd is gone, and with it the servers of our devices: stop rather
    // than run a guest whose disks no longer answer.
    if (config_.deviceSocket >= 0 && !serverDevices_.empty()) {
      requestExit(ExitStatus::ERROR, "vmmd went away, and with it this VM's device servers");
    }
  } catch (const std::exception& error) {
    std::cerr << "vmm-core: " << error.what() << '\n';
  }
}

int64_t Machine::firstDebugWriteNs() const {
  return platform_->debugExit().firstWriteNs();
}

void Machine::requestExit(int status, const std::string& reason) {
  std::lock_guard lock(exitMutex_);
  if (exitStatus_) return;  // The first reason wins.
  exitStatus_ = status;
  exitReason_ = reason;
  stopping_ = true;
  exitChanged_.notify_all();
}

void Machine::requestShutdown() {
  // bhyve sends an ACPI power-button press on SIGTERM. A guest that never
  // enabled the event has no ACPI driver listening; stop it directly.
  if (!platform_->acpiPm().pressPowerButton()) {
    requestExit(ExitStatus::POWEROFF, "shutdown requested; guest has no ACPI power-button handler");
  }
}

void Machine::requestRegisterDumps() {
  std::lock_guard lock(vcpuHandlesMutex_);
  for (size_t i = 0; i < vcpuHandles_.size() && i < vcpus_.size(); ++i) {
    registerDumps_[i] = true;
    pthread_kill(vcpuHandles_[i], KICK_SIGNAL);
  }
}

void Machine::connectInputLinks() {
  for (auto& device : serverDevices_) {
    const InputSegment* link = device.resources->coreInputLink();
    if (link == nullptr) continue;
    std::string name = device.resources->deviceName();
    // Whether to wait is the core's own configuration (its -s options),
    // never something in memory a server can write.
    auto slot =
        std::find_if(config_.pciSlots.begin(), config_.pciSlots.end(),
                     [&](const PciSlotConfig& candidate) { return serverDeviceName(candidate) == name; });
    const ServerKind* kind = slot == config_.pciSlots.end() ? nullptr : findServerKind(slot->emulation);
    if (kind != nullptr && kind->holdsVcpusForClient && kind->holdsVcpusForClient(slot->options)) {
      std::lock_guard lock(clientMutex_);
      if (!heldForClient_) std::cerr << "vmm-core: " << name << ": the vCPUs wait for a VNC client (wait)\n";
      heldForClient_ = true;
    }
    device.input = std::make_unique<InputLinkReader>(
        &loop_, *link, device.resources->coreInputDoorbell(), platform_->i8042(),
        [this] { releaseVcpusForClient(); }, name);
  }
}

void Machine::waitForDisplayClient() {
  std::unique_lock lock(clientMutex_);
  clientArrived_.wait(lock, [this] { return !heldForClient_ || stopping_; });
}

void Machine::releaseVcpusForClient() {
  std::lock_guard lock(clientMutex_);
  if (!heldForClient_) return;
  heldForClient_ = false;
  std::cerr << "vmm-core: a VNC client connected: the vCPUs start\n";
  clientArrived_.notify_all();
}

void Machine::stopVcpus() {
  stopping_ = true;
  {
    std::lock_guard lock(clientMutex_);  // A vCPU held for a client sees stopping_ now.
    clientArrived_.notify_all();
  }
  std::lock_guard lock(vcpuHandlesMutex_);
  for (size_t i = 0; i < vcpuHandles_.size() && i < vcpus_.size(); ++i) {
    vcpus_[i]->requestImmediateExit(true);
    pthread_kill(vcpuHandles_[i], KICK_SIGNAL);
  }
}

bool Machine::vcpuIsHaltedForGood(Vcpu& vcpu) {
  kvm_mp_state state = vcpu.mpState();
  // A CPU the guest never started does not count as running.
  if (state.mp_state == KVM_MP_STATE_UNINITIALIZED || state.mp_state == KVM_MP_STATE_INIT_RECEIVED)
    return true;
  constexpr uint64_t RFLAGS_IF = 1u << 9;
  return state.mp_state == KVM_MP_STATE_HALTED && (vcpu.regs().rflags & RFLAGS_IF) == 0;
}

void Machine::runVcpu(Vcpu& vcpu) {
  // Naming and pinning open /proc files: done before the sandbox is entered.
  ::pthread_setname_np(::pthread_self(), fmt::format("vcpu {}", vcpu.id()).c_str());
  bool pinned = pinVcpuThread(vcpu.id());
  threadsReady_->count_down();
  confined_.wait();
  if (!pinned) return;
  waitForDisplayClient();
  try {
    while (!stopping_) {
      if (!vcpu.run()) {
        if (registerDumps_[vcpu.id()].exchange(false)) {
          std::cerr << fmt::format("vmm-core: vCPU {}: {}\n", vcpu.id(), describeRegisters(vcpu));
        }
        answerHaltProbe(vcpu);
        continue;
      }
      kvm_run& run = vcpu.runState();
      switch (run.exit_reason) {
        case KVM_EXIT_IO:
          handleIo(vcpu);
          break;
        case KVM_EXIT_MMIO:
          handleMmio(vcpu);
          break;
        case KVM_EXIT_SHUTDOWN:
          requestExit(ExitStatus::TRIPLE_FAULT,
                      fmt::format("vCPU {} triple fault: {}", vcpu.id(), describeRegisters(vcpu)));
          return;
        case KVM_EXIT_HLT:
          requestExit(ExitStatus::HALT, fmt::format("vCPU {} halted", vcpu.id()));
          return;
        case KVM_EXIT_SYSTEM_EVENT:
          if (run.system_event.type == KVM_SYSTEM_EVENT_RESET) {
            requestExit(ExitStatus::REBOOT, "guest reset");
          } else if (run.system_event.type == KVM_SYSTEM_EVENT_SHUTDOWN) {
            requestExit(ExitStatus::POWEROFF, "guest shut down");
          } else {
            requestExit(ExitStatus::ERROR, fmt::format("guest system event {}", run.system_event.type));
          }
          return;
        case KVM_EXIT_X86_RDMSR:
          // Only with -w (x86.strictmsr=false): an MSR KVM does not know
          // reads as 0 ...
          run.msr.data = 0;
          run.msr.error = 0;
          break;
        case KVM_EXIT_X86_WRMSR:
          run.msr.error = 0;  // ... and a write to one is dropped.
          break;
        case KVM_EXIT_INTR:
        case KVM_EXIT_IRQ_WINDOW_OPEN:
          break;
        case KVM_EXIT_FAIL_ENTRY:
          requestExit(ExitStatus::ERROR,
                      fmt::format("vCPU {} entry failed (reason {:#x}): {}", vcpu.id(),
                                  run.fail_entry.hardware_entry_failure_reason, describeRegisters(vcpu)));
          return;
        case KVM_EXIT_INTERNAL_ERROR:
          requestExit(ExitStatus::ERROR,
                      fmt::format("vCPU {} KVM internal error (suberror {}): {}", vcpu.id(),
                                  run.internal.suberror, describeRegisters(vcpu)));
          return;
        default:
          requestExit(ExitStatus::ERROR, fmt::format("vCPU {} unhandled exit reason {}: {}", vcpu.id(),
                                                     run.exit_reason, describeRegisters(vcpu)));
          return;
      }
    }
  } catch (const std::exception& error) {
    requestExit(ExitStatus::ERROR, fmt::format("vCPU {}: {}", vcpu.id(), error.what()));
  }
}

bool Machine::pinVcpuThread(uint32_t id) {
  auto pin = config_.vcpuHostCpus.find(id);
  if (pin == config_.vcpuHostCpus.end()) return true;
  cpu_set_t set;
  CPU_ZERO(&set);
  for (uint32_t cpu : pin->second) CPU_SET(cpu, &set);  // parseCpuList keeps them below CPU_SETSIZE.
  int error = ::pthread_setaffinity_np(::pthread_self(), sizeof(set), &set);
  if (error == 0) return true;
  requestExit(ExitStatus::ERROR, fmt::format("-p: cannot pin vCPU {} to host CPUs {}: {}", id,
                                             fmt::join(pin->second, ","), std::strerror(error)));
  return false;
}

void Machine::handleIo(Vcpu& vcpu) {
  kvm_run& run = vcpu.runState();
  auto* data = reinterpret_cast<uint8_t*>(&run) + run.io.data_offset;
  bool out = run.io.direction == KVM_EXIT_IO_OUT;
  for (uint32_t i = 0; i < run.io.count; ++i) {
    std::span<uint8_t> bytes(data + i * run.io.size, run.io.size);
    bool claimed =
        out ? platform_->ports().write(run.io.port, bytes) : platform_->ports().read(run.io.port, bytes);
    if (!claimed && config_.strictIo) {
      requestExit(ExitStatus::ERROR,
                  fmt::format("vCPU {}: guest {} port {:#x} ({} bytes), which nothing emulates "
                              "(-e, x86.strictio)",
                              vcpu.id(), out ? "wrote" : "read", run.io.port, run.io.size));
      return;
    }
  }
}

void Machine::handleMmio(Vcpu& vcpu) {
  kvm_run& run = vcpu.runState();
  std::span<uint8_t> bytes(run.mmio.data, std::min<uint32_t>(run.mmio.len, sizeof(run.mmio.data)));
  if (run.mmio.is_write) {
    platform_->mmio().write(run.mmio.phys_addr, bytes);
  } else {
    platform_->mmio().read(run.mmio.phys_addr, bytes);
  }
}

}  // namespace cellvisor
