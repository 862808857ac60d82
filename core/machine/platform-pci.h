// The PCI functions the core itself provides for `-s slot,EMULATION`.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/machine/machine-config.h"
#include "core/pci/chipset.h"

namespace cellvisor {

// The emulations this file provides: host bridges and the LPC bridge.
std::vector<std::string> platformPciEmulations();
bool isHostBridge(const std::string& emulation);

// Where the chipset's windows start out: the ECAM window (nullopt: off until
// firmware maps it) and the ACPI PM block's ports.
struct ChipsetLayout {
  Chipset chipset;
  std::optional<uint64_t> ecam;
  uint16_t pmBase;
};

// Throws std::invalid_argument for an emulation the core does not provide or
// a slot the chipset cannot have it in.
std::unique_ptr<PciConfigSpace> createPlatformPciDevice(const PciSlotConfig& slot,
                                                        const ChipsetLayout& layout);

}  // namespace cellvisor
