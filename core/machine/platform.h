// The PC platform every VM has, on its port and MMIO buses: COM1/COM2, the
// RTC, debug-exit, reset control, the i8042, the ACPI PM block, fw_cfg (and
// with firmware its debug console), the PCI host with ECAM, and the
// chipset's own PCI functions (host bridge, LPC) with the windows firmware
// moves through them (PCIEXBAR, PMBASE). No KVM: interrupts go to the
// IrqLines the caller makes and the VM's end to its MachineControl, so the
// exit-handler fuzz target builds this very platform without a VM.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#include "core/machine/machine-config.h"
#include "core/machine/platform-pci.h"
#include "core/platform/io-bus.h"
#include "core/platform/machine-control.h"

namespace cellvisor {

class AcpiPm;
class DebugExit;
class FwCfg;
class I8042;
class GuestMemory;
class IoDevice;
class IrqLine;
class PciDevice;
class PciHost;
class SerialBackend;
class Uart16550;

class Platform {
 public:
  using IrqFactory = std::function<std::unique_ptr<IrqLine>(uint32_t gsi)>;

  // Opens the serial backends `config` names (std::invalid_argument or
  // std::system_error naming the port otherwise).
  Platform(const MachineConfig& config, GuestMemory& memory, MachineControl& control, IrqFactory irq);
  ~Platform();
  Platform(const Platform&) = delete;
  Platform& operator=(const Platform&) = delete;

  // The chipset's functions in `slots` (the config's slots that are not
  // device servers), and the host bridge and (with firmware) LPC bridge
  // they do not place. After the server devices: a slot a server took is
  // not the host bridge's.
  void attachChipsetFunctions(const std::vector<PciSlotConfig>& slots);

  IoBus& ports() { return ports_; }
  IoBus& mmio() { return mmio_; }
  PciHost& pciHost() { return *pciHost_; }
  AcpiPm& acpiPm() { return *acpiPm_; }
  FwCfg& fwCfg() { return *fwCfg_; }
  DebugExit& debugExit() { return *debugExit_; }
  I8042& i8042() { return *i8042_; }
  const std::vector<std::pair<SerialBackend*, Uart16550*>>& serialPorts() const { return serialPorts_; }
  // On the I/O loop once it ends and no vCPU runs: backends close their
  // handles (and restore the terminal).
  void closeSerialBackends();

 private:
  void attachChipsetFunction(const PciSlotConfig& slot, const ChipsetLayout& chipset);
  void moveEcam(std::optional<uint64_t> base);
  void movePmBase(uint16_t port);

  const MachineConfig& config_;
  IoBus ports_{"port I/O"};
  IoBus mmio_{"MMIO"};
  std::vector<std::unique_ptr<IrqLine>> irqLines_;
  std::vector<std::unique_ptr<IoDevice>> devices_;
  std::vector<std::unique_ptr<PciDevice>> pciDevices_;
  std::vector<std::unique_ptr<SerialBackend>> serialBackends_;
  std::vector<std::pair<SerialBackend*, Uart16550*>> serialPorts_;
  std::unique_ptr<PciHost> pciHost_;
  AcpiPm* acpiPm_ = nullptr;
  FwCfg* fwCfg_ = nullptr;
  DebugExit* debugExit_ = nullptr;
  I8042* i8042_ = nullptr;
  // The chipset's movable windows (firmware programs PCIEXBAR and PMBASE).
  std::mutex chipsetMutex_;
  std::optional<uint64_t> ecamAt_;
  uint16_t pmBaseAt_ = 0;
};

}  // namespace cellvisor
