// The devices that run as servers, and how to launch each from a `-s`
// slot, through the kinds the server folders registered
// (host/server-kind.h).
#pragma once

#include <string>
#include <vector>

#include "host/device-server-process.h"
#include "host/pci-slot.h"

namespace cellvisor {

// The emulations served by a device server, in the order `-s help` lists them.
std::vector<std::string> serverEmulations();
bool isServerDevice(const std::string& emulation);
// The name a slot's server goes by (logs, `vmctl devices`), e.g. "virtio-blk-4.0".
std::string serverDeviceName(const PciSlotConfig& slot);
// Throws std::invalid_argument (bad options, an image that is no disk) or
// std::system_error (backend cannot be opened), prefixed with `where` (how
// the user named the device, e.g. "disk0"; default: the slot, "-s 4:0,virtio-blk").
ServerLaunch prepareServerLaunch(const PciSlotConfig& slot, uint32_t vcpus, const std::string& sandbox,
                                 std::string where = "");

}  // namespace cellvisor
