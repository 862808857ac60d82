// A standalone vmm-core (bhyve's way: one command line, no daemon) splits
// in two so that the part that runs the guest is confined as under vmmd:
// this process stays outside as the VM's supervisor — it makes guest RAM,
// starts the device servers and restarts them, as vmmd does — and a forked
// child becomes the core, adopting the devices through a socket pair and
// confining itself once the VM is built. The supervisor passes SIGINT,
// SIGTERM and SIGUSR2 on to the core, removes the console names the
// confined core could not, restores the terminal, and ends as the core
// ended (its exit status, or the same signal).
#pragma once

#include <optional>

#include "core/machine/machine-config.h"

namespace cellvisor {

// Whether a standalone core splits: when it is to be confined.
bool wantsStandaloneSupervisor(const MachineConfig& config);

// In the supervisor: runs until the core ends and returns the status to
// exit with. In the forked core: returns nullopt with config.deviceSocket
// set; the caller goes on to build the Machine.
std::optional<int> runStandaloneSupervisor(MachineConfig& config);

}  // namespace cellvisor
