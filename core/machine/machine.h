// One VM wired together (the builder): KVM VM and vCPUs, guest RAM, platform
// devices on the port and MMIO buses, ACPI tables and the boot image. `run()`
// starts the vCPU threads and the I/O loop and returns bhyve's exit status.
#pragma once

#include <uv.h>

#include <atomic>
#include <condition_variable>
#include <latch>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "base/unique-fd.h"
#include "core/arch/x86/resource-allocator.h"
#include "core/machine/machine-config.h"
#include "core/platform/machine-control.h"

namespace cellvisor {

class BootMethod;
class FwCfg;
class Hypervisor;
class Vm;
class Vcpu;
class GuestMemory;
class PciHost;
class AcpiPm;
class DebugExit;
class SerialBackend;
class Uart16550;
class IoDevice;
class IrqLine;
class PciDevice;
class DeviceServerProcess;
class DeviceResources;
class DeviceChannel;
struct AdoptedDevice;
struct ServerLaunch;
class DeviceWiring;
class PciServerProxy;
class DeviceSupervisor;
class Platform;
class InputLinkReader;

class Machine : public MachineControl {
 public:
  explicit Machine(const MachineConfig& config);
  ~Machine() override;

  // Runs the guest until it resets, powers off, halts, faults or is stopped.
  int run();
  // Whether run() confined the core: it must then end through
  // exitSandboxed(), not exit() (see sandbox/sandbox.h).
  bool sandboxed() const { return sandboxed_; }

  void requestExit(int status, const std::string& reason) override;
  using MachineControl::requestExit;
  // Host-side shutdown request (SIGTERM): ACPI power button.
  void requestShutdown();
  void requestRegisterDumps();

  const std::string& exitReason() const { return exitReason_; }
  // CLOCK_MONOTONIC nanoseconds of the guest's first debug-exit write, or 0.
  int64_t firstDebugWriteNs() const;

 private:
  // The platform's devices, then the server devices, then the chipset's
  // PCI functions around them.
  void buildPlatform();
  // Without vmmd: every server's launch and resources, made before any
  // server starts (the input links between them are joined first).
  void prepareLocalDevices();
  void attachServerDevice(const PciSlotConfig& slot);
  void loadGuest();
  void addUserFwCfgFiles();
  void createVcpus();
  void runVcpu(Vcpu& vcpu);
  void handleIo(Vcpu& vcpu);
  void handleMmio(Vcpu& vcpu);
  bool vcpuIsHaltedForGood(Vcpu& vcpu);
  bool pinVcpuThread(uint32_t id);
  void probeHalt();
  // Tells the supervisor what the consoles leave for it to do once the
  // confined core ends (CoreHandover in proto/core.capnp).
  void handOverToSupervisor();
  void answerHaltProbe(Vcpu& vcpu);
  void runIoLoop();
  void stopVcpus();
  // fbuf's `wait`: the vCPUs start once a display's client connected.
  void connectInputLinks();
  void waitForDisplayClient();
  void releaseVcpusForClient();
  void adoptDevicesFromVmmd();
  void handleCoreCommand();

  MachineConfig config_;
  // Before vm_: its memory slots may point into what the boot method maps.
  std::unique_ptr<BootMethod> boot_;
  std::unique_ptr<Hypervisor> hypervisor_;
  std::unique_ptr<Vm> vm_;
  std::unique_ptr<GuestMemory> memory_;
  std::unique_ptr<Platform> platform_;
  // Device servers: their resources and our channel to them, how they are
  // wired into KVM, and the PCI proxy. Under vmmd the resources come from
  // vmmd, which runs the servers; standalone, the core runs them itself.
  struct ServerDevice {
    std::unique_ptr<DeviceResources> resources;
    std::unique_ptr<DeviceChannel> channel;
    std::unique_ptr<DeviceServerProcess> process;  // Standalone only.
    std::unique_ptr<DeviceWiring> wiring;
    std::unique_ptr<PciServerProxy> proxy;
    std::unique_ptr<DeviceSupervisor> supervisor;  // Standalone only; lives on the I/O loop.
    std::unique_ptr<InputLinkReader> input;        // A display's clients' keys and pointer; on the I/O loop.
  };
  std::vector<ServerDevice> serverDevices_;
  std::vector<AdoptedDevice> adoptedDevices_;  // From vmmd, until attached.
  struct LocalDevice {
    std::unique_ptr<ServerLaunch> launch;
    std::unique_ptr<DeviceResources> resources;
  };
  std::vector<LocalDevice> localDevices_;         // Made here (no vmmd), until attached.
  std::unique_ptr<ResourceAllocator> resources_;  // BAR addresses and MSI GSIs.
  UniqueFd deviceSocket_;                         // From the supervisor (vmmd, or a standalone core's).
  std::vector<std::unique_ptr<Vcpu>> vcpus_;
  std::vector<std::thread> vcpuThreads_;
  std::mutex vcpuHandlesMutex_;  // The halt probe (I/O thread) signals them too.
  std::vector<pthread_t> vcpuHandles_;

  uv_loop_t loop_{};
  uv_async_t loopStop_{};
  uv_async_t shutdownRequest_{};
  uv_signal_t sigterm_{};
  uv_signal_t sigint_{};
  uv_signal_t sigusr2_{};  // Prints each vCPU's registers (a hung guest's whereabouts).
  uv_timer_t haltProbe_{};
  uv_poll_t statusPoll_{};
  bool statusPolled_ = false;
  std::thread ioThread_;
  // Threads are made before the core is confined (its sandbox forbids
  // making them): each says it is ready, having named and pinned itself,
  // and runs no guest code until the core is confined.
  std::optional<std::latch> threadsReady_;
  bool sandboxed_ = false;
  std::latch confined_{1};

  std::mutex exitMutex_;
  std::condition_variable exitChanged_;
  std::optional<int> exitStatus_;
  std::string exitReason_;
  std::atomic<bool> stopping_{false};
  std::mutex clientMutex_;
  std::condition_variable clientArrived_;
  bool heldForClient_ = false;
  // The halt probe's question to each vCPU, and its one answer per round.
  enum class HaltAnswer : uint8_t { NONE, ASKED, ANSWERING, HALTED, RUNNING };
  std::unique_ptr<std::atomic<HaltAnswer>[]> haltAnswers_;
  std::unique_ptr<std::atomic<bool>[]> registerDumps_;  // Asked of each vCPU by SIGUSR2.
};

}  // namespace cellvisor
