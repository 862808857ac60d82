// The PCI functions the core itself provides for `-s slot,EMULATION`.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/machine/machine-config.h"
#include "core/pci/pci-device.h"

namespace cellvisor {

// The emulations this file provides: host bridges and the LPC bridge.
std::vector<std::string> platformPciEmulations();
bool isHostBridge(const std::string& emulation);

// Throws std::invalid_argument for an emulation the core does not provide.
std::unique_ptr<PciDevice> createPlatformPciDevice(const PciSlotConfig& slot);

}  // namespace cellvisor
