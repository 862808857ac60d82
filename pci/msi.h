// A single-vector, 64-bit MSI capability without per-vector masking, for
// functions whose drivers look for MSI before MSI-X (Linux's ahci driver
// takes MSI or falls back to INTx, which the servers do not offer). Its
// registers are the configuration space's own bytes, so they live in the
// state segment with the rest; the route reaches the core as vector 0's
// MsixUpdate, the same path MSI-X takes.
#pragma once

#include <cstdint>

#include "pci/config-space.h"
#include "pci/msix.h"

namespace cellvisor::pci {

constexpr uint8_t CAPABILITY_MSI = 0x05;

class Msi {
 public:
  static constexpr uint16_t ENABLE = 1u << 0;
  static constexpr uint16_t ADDRESS_64 = 1u << 7;

  explicit Msi(ConfigSpace& config) : config_(config) {}
  uint16_t addCapability();
  bool enabled() const;
  // Whether a configuration write at [offset, offset + size) reached it.
  bool touches(uint16_t offset, uint8_t size) const;
  // Vector 0's route as programmed (address 0 while disabled).
  MsixUpdate route() const;

 private:
  ConfigSpace& config_;
  uint16_t capability_ = 0;
};

}  // namespace cellvisor::pci
