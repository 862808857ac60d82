#include "core/machine/platform.h"

#include <fmt/format.h>

#include <iostream>

#include "base/guest-memory.h"
#include "core/acpi/acpi-pm.h"
#include "core/arch/x86/address-map.h"
#include "core/firmware/debug-console.h"
#include "core/firmware/fw-cfg.h"
#include "core/pci/chipset.h"
#include "core/pci/pci-host.h"
#include "core/platform/cmos-rtc.h"
#include "core/platform/debug-exit.h"
#include "core/platform/i8042.h"
#include "core/platform/reset-control.h"
#include "core/platform/uart16550.h"
#include "core/serial/serial-backend.h"

namespace cellvisor {
namespace {

struct SerialPortLayout {
  const char* name;
  uint16_t port;
  uint32_t irq;
};
constexpr SerialPortLayout SERIAL_PORTS[] = {{"com1", 0x3f8, 4}, {"com2", 0x2f8, 3}};

}  // namespace

Platform::Platform(const MachineConfig& config, GuestMemory& memory, MachineControl& control,
                   IrqFactory makeIrq)
    : config_(config) {
  auto irq = [&](uint32_t gsi) -> IrqLine& {
    irqLines_.push_back(makeIrq(gsi));
    return *irqLines_.back();
  };
  auto add = [&](std::unique_ptr<IoDevice> device) -> IoDevice& {
    devices_.push_back(std::move(device));
    return *devices_.back();
  };

  for (const auto& port : SERIAL_PORTS) {
    auto spec = config_.serial.find(port.name);
    if (spec == config_.serial.end()) continue;
    serialBackends_.push_back(openSerialBackend(spec->second));
    auto uart = std::make_unique<Uart16550>(irq(port.irq), *serialBackends_.back());
    serialPorts_.emplace_back(serialBackends_.back().get(), uart.get());
    ports_.add(port.port, 8, add(std::move(uart)), port.name);
  }
  for (const auto& [name, spec] : config_.serial) {
    if (name != "com1" && name != "com2") throw std::invalid_argument("unknown serial port " + name);
  }

  uint64_t high = memory.size() - memory.lowRamEnd();
  ports_.add(CmosRtc::PORT, 2, add(std::make_unique<CmosRtc>(config_.utcClock, memory.lowRamEnd(), high)),
             "rtc");
  auto debugExit = std::make_unique<DebugExit>(control);
  debugExit_ = debugExit.get();
  ports_.add(DebugExit::PORT, 2, add(std::move(debugExit)), "debug-exit");
  auto& reset = add(std::make_unique<ResetControlRegister>(control));
  auto i8042 = std::make_unique<I8042>(control, irq(I8042::KEYBOARD_IRQ), irq(I8042::MOUSE_IRQ));
  i8042_ = i8042.get();
  ports_.add(I8042::COMMAND_PORT, 1, i8042->commandPort(), "i8042");
  ports_.add(I8042::DATA_PORT, 1, add(std::move(i8042)), "i8042");
  auto pm = std::make_unique<AcpiPm>(irq(AcpiPm::SCI_IRQ), control);
  acpiPm_ = pm.get();
  ports_.add(AcpiPm::PORT, AcpiPm::SIZE, add(std::move(pm)), "acpi-pm");
  pmBaseAt_ = AcpiPm::PORT;
  auto fwCfg = std::make_unique<FwCfg>(memory);
  fwCfg_ = fwCfg.get();
  ports_.add(FwCfg::PORT, FwCfg::SIZE, add(std::move(fwCfg)), "fw_cfg");
  if (!config_.bootrom.empty())
    ports_.add(DebugConsole::PORT, 1, add(std::make_unique<DebugConsole>()), "debugcon");

  pciHost_ = std::make_unique<PciHost>(reset);
  ports_.add(PciHost::ADDRESS_PORT, 4, pciHost_->addressPort(), "pci-address");
  ports_.add(PciHost::DATA_PORT, 4, pciHost_->dataPort(), "pci-data");
  // Without firmware the core plays it and maps ECAM itself; firmware maps
  // it through the host bridge's PCIEXBAR, as on Q35.
  if (config_.bootrom.empty()) moveEcam(layout::ECAM_BASE);
}

void Platform::moveEcam(std::optional<uint64_t> base) {
  std::lock_guard lock(chipsetMutex_);
  if (ecamAt_) mmio_.remove(*ecamAt_);
  ecamAt_.reset();
  if (!base) return;
  try {
    mmio_.add(*base, layout::ECAM_SIZE, pciHost_->ecam(), "pci-ecam");
    ecamAt_ = base;
  } catch (const std::invalid_argument& error) {
    std::cerr << fmt::format("vmm-core: PCIEXBAR {:#x}: ECAM left off: {}\n", *base, error.what());
  }
}

void Platform::movePmBase(uint16_t port) {
  std::lock_guard lock(chipsetMutex_);
  if (pmBaseAt_ != 0) ports_.remove(pmBaseAt_);
  pmBaseAt_ = 0;
  if (port == 0) return;
  try {
    ports_.add(port, AcpiPm::SIZE, *acpiPm_, "acpi-pm");
    pmBaseAt_ = port;
  } catch (const std::invalid_argument& error) {
    std::cerr << fmt::format("vmm-core: PMBASE {:#x}: ACPI PM block left off: {}\n", port, error.what());
  }
}

void Platform::attachChipsetFunctions(const std::vector<PciSlotConfig>& slots) {
  bool firmware = !config_.bootrom.empty();
  ChipsetLayout chipset{firmware ? Chipset::Q35 : Chipset::BHYVE,
                        firmware ? std::nullopt : std::optional<uint64_t>(layout::ECAM_BASE), AcpiPm::PORT};
  bool hasHostBridge = false;
  bool hasLpc = false;
  for (const auto& slot : slots) {
    attachChipsetFunction(slot, chipset);
    hasHostBridge |= isHostBridge(slot.emulation);
    hasLpc |= slot.emulation == "lpc";
  }
  // Every PC has a host bridge at 00:00.0; add it unless the user placed one.
  if (!hasHostBridge && pciHost_->find(0, 0, 0) == nullptr)
    attachChipsetFunction({0, 0, "hostbridge", ""}, chipset);
  // Firmware times itself with the ACPI PM timer, which it finds through the
  // LPC bridge: with a bootrom there is always one, where Q35 has it.
  if (firmware && !hasLpc) attachChipsetFunction({31, 0, "lpc", ""}, chipset);
}

void Platform::attachChipsetFunction(const PciSlotConfig& slot, const ChipsetLayout& chipset) {
  auto function = createPlatformPciDevice(slot, chipset);
  if (auto* bridge = dynamic_cast<HostBridge*>(function.get())) {
    bridge->setEcamCallback([this](std::optional<uint64_t> base) { moveEcam(base); });
  } else if (auto* lpc = dynamic_cast<LpcBridge*>(function.get())) {
    lpc->setPmBaseCallback([this](uint16_t port) { movePmBase(port); });
  }
  pciHost_->attach(slot.slot, slot.function, *function);
  pciDevices_.push_back(std::move(function));
}

Platform::~Platform() = default;

void Platform::closeSerialBackends() {
  serialBackends_.clear();
}

}  // namespace cellvisor
