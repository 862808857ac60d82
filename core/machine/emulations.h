// Which `-s` emulations exist: the core's own PCI functions and those the
// device servers provide, and how to say why a name is not among them
// (bhyve has many this build does not have yet).
#pragma once

#include <string>
#include <vector>

namespace cellvisor {

std::vector<std::string> availableEmulations();
// "hostbridge, amd_hostbridge, lpc, virtio-blk, virtio-net".
std::string describeAvailableEmulations();
// Why a slot cannot have emulation `name`, or "" when it can.
std::string emulationProblem(const std::string& name);

}  // namespace cellvisor
