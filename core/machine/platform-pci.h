// The PCI functions the core itself provides for `-s slot,EMULATION`.
#pragma once

#include <memory>

#include "core/machine/machine-config.h"
#include "core/pci/pci-device.h"

namespace cellvisor {

// Throws std::invalid_argument for an emulation the core does not provide.
std::unique_ptr<PciDevice> createPlatformPciDevice(const PciSlotConfig& slot);

}  // namespace cellvisor
