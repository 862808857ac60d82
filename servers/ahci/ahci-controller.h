// An AHCI 1.3 host bus adapter with up to 32 SATA ports, served as a PCI
// function (class 01:06:01, the registers in BAR5 "ABAR" with the MSI-X
// table after the ports). The controller owns PCI config space, MSI and
// MSI-X, the generic host control registers and the one interrupt the ports
// share; each port (ahci-port.h) runs its device's commands on its own block
// backend. Every register and every command taken but not completed lives
// in the state segment, so a restarted server re-executes what its
// predecessor had taken and completes each command once.
#pragma once

#include <deque>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "pci/config-space.h"
#include "pci/msi.h"
#include "pci/msix.h"
#include "servers/ahci/ahci-options.h"
#include "servers/ahci/ahci-port.h"
#include "servers/ahci/ahci-state.h"
#include "servers/runtime/block-backend.h"
#include "servers/runtime/device-stats.h"
#include "servers/runtime/pci-function.h"

namespace cellvisor {

class GuestMemory;
struct StateHeader;

class AhciController : public PciFunction {
 public:
  static constexpr uint8_t ABAR = 5;
  static constexpr uint64_t ABAR_SIZE = 0x2000;
  static constexpr uint64_t MSIX_TABLE = 0x1800;
  static constexpr uint64_t MSIX_PBA = 0x1c00;

  // One backend a port, in the options' order. Throws std::invalid_argument
  // when they disagree, or when a restored state has another port count.
  AhciController(const AhciOptions& options, const std::string& deviceName, GuestMemory& memory,
                 std::span<BlockBackend* const> backends, StateHeader& header, ahci::AhciState& state);

  void attach(DeviceStats& stats);
  size_t portCount() const { return ports_.size(); }
  AhciPort& port(size_t index) { return ports_.at(index); }

  // PciFunction.
  FunctionLayout layout() const override;
  void start(std::function<void(uint16_t)> signal) override;
  FailureNotice failureNotice() const override;
  uint32_t configRead(uint16_t offset, uint8_t size) override;
  std::vector<MsixUpdate> configWrite(uint16_t offset, uint8_t size, uint32_t value) override;
  uint64_t barRead(uint8_t bar, uint64_t offset, uint8_t size) override;
  std::vector<MsixUpdate> barWrite(uint8_t bar, uint64_t offset, uint8_t size, uint64_t value) override;
  void doorbell(uint16_t) override {}
  bool live() const override;
  std::vector<MsixUpdate> reset() override;
  void pause() override;
  void resume() override;
  std::vector<MsixUpdate> msixVectors() const override;

 private:
  uint32_t hbaRead(uint64_t offset) const;
  void hbaWrite(uint64_t offset, uint32_t value);
  uint32_t registerRead(uint64_t offset) const;
  void hbaReset();
  void updateInterrupt();

  StateHeader& header_;
  ahci::AhciState& state_;
  std::optional<pci::ConfigSpace> config_;
  std::optional<pci::Msix> msix_;
  std::optional<pci::Msi> msi_;  // What Linux's ahci driver takes (before MSI-X).
  std::function<void(uint16_t)> signal_;
  std::deque<AhciPort> ports_;  // Ports stay put: each keeps its callback's `this`.
};

}  // namespace cellvisor
