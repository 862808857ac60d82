// A PCI function the core emulates itself (host bridge, LPC bridge): the
// shared configuration space (pci/config-space.h) behind the host bridge's
// PciDevice interface, locked against concurrent vCPUs, telling its owner
// when the guest moves a BAR or toggles decoding.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>

#include "core/pci/pci-device.h"
#include "pci/config-space.h"

namespace cellvisor {

using PciIdentity = pci::Identity;
using PciBarKind = pci::BarKind;
using PciBar = pci::Bar;

class PciConfigSpace : public PciDevice {
 public:
  static constexpr uint16_t COMMAND = pci::COMMAND;
  static constexpr uint16_t COMMAND_IO = pci::COMMAND_IO;
  static constexpr uint16_t COMMAND_MEMORY = pci::COMMAND_MEMORY;

  // Called after the guest moves a BAR or toggles decoding: `address` is the
  // new base, `enabled` whether the guest decodes it now.
  using BarCallback = std::function<void(int bar, uint64_t address, bool enabled)>;

  explicit PciConfigSpace(const PciIdentity& identity) { space_.setIdentity(identity); }

  void setBar(int index, const PciBar& bar, uint64_t address) { space_.setBar(index, bar, address); }
  void setBarCallback(BarCallback callback) { barCallback_ = std::move(callback); }
  void setInterruptPin(uint8_t pin, uint8_t line) { space_.setInterruptPin(pin, line); }
  uint64_t barAddress(int index) const;
  const PciBar& bar(int index) const { return space_.bar(index); }
  bool decodes(int index) const;

  uint32_t readConfig(uint16_t offset, uint8_t size) override;
  void writeConfig(uint16_t offset, uint8_t size, uint32_t value) override;

 protected:
  // Device-specific registers, before the device is attached.
  pci::ConfigSpace& space() { return space_; }

 private:
  mutable std::mutex mutex_;
  pci::ConfigSpace space_;
  BarCallback barCallback_;
};

}  // namespace cellvisor
