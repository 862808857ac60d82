// A type-0 configuration header with write masks: the part of every PCI
// function that is the same (identity, command/status, BAR sizing, interrupt
// pin). Devices build one and add their own registers and capabilities.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <mutex>

#include "core/pci/pci-device.h"

namespace cellvisor {

struct PciIdentity {
  uint16_t vendor;
  uint16_t device;
  uint8_t revision = 0;
  uint8_t progIf = 0;
  uint8_t subclass = 0;
  uint8_t classCode = 0;
  uint16_t subsystemVendor = 0;
  uint16_t subsystem = 0;
  uint8_t headerType = 0;  // 0x80 marks a multi-function device.
};

enum class PciBarKind { IO, MEMORY32, MEMORY64 };

struct PciBar {
  PciBarKind kind = PciBarKind::MEMORY32;
  uint64_t size = 0;  // Power of two, 0 when unused.
  bool prefetchable = false;
};

class PciConfigSpace : public PciDevice {
 public:
  static constexpr uint16_t SIZE = 4096;
  static constexpr uint16_t COMMAND = 0x04;
  static constexpr uint16_t STATUS = 0x06;
  static constexpr uint16_t BAR0 = 0x10;
  static constexpr uint16_t CAPABILITIES = 0x34;
  static constexpr uint16_t INTERRUPT_LINE = 0x3c;
  static constexpr uint16_t COMMAND_IO = 1u << 0;
  static constexpr uint16_t COMMAND_MEMORY = 1u << 1;

  // Called after the guest moves a BAR or toggles decoding: `address` is the
  // new base, `enabled` whether the guest decodes it now.
  using BarCallback = std::function<void(int bar, uint64_t address, bool enabled)>;

  explicit PciConfigSpace(const PciIdentity& identity);

  // Declares BAR `index` (a 64-bit BAR also takes index + 1) at `address`.
  void setBar(int index, const PciBar& bar, uint64_t address);
  void setBarCallback(BarCallback callback) { barCallback_ = std::move(callback); }
  void setInterruptPin(uint8_t pin, uint8_t line);
  uint64_t barAddress(int index) const;
  const PciBar& bar(int index) const { return bars_[static_cast<size_t>(index)]; }
  bool decodes(int index) const;

  uint32_t readConfig(uint16_t offset, uint8_t size) override;
  void writeConfig(uint16_t offset, uint8_t size, uint32_t value) override;

 protected:
  // Raw access for device-specific registers, before the device is attached.
  void setByte(uint16_t offset, uint8_t value, uint8_t writeMask = 0);
  void set16(uint16_t offset, uint16_t value, uint16_t writeMask = 0);
  void set32(uint16_t offset, uint32_t value, uint32_t writeMask = 0);

 private:
  uint32_t rawRead(uint16_t offset, uint8_t size) const;

  mutable std::mutex mutex_;
  std::array<uint8_t, SIZE> bytes_{};
  std::array<uint8_t, SIZE> writable_{};
  std::array<PciBar, 6> bars_{};
  BarCallback barCallback_;
};

}  // namespace cellvisor
