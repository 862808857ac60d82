// What the configuration asks of this host, checked before a VM is built:
// guest memory against RAM and swap, pinned vCPUs against the online CPUs.
#pragma once

#include <string>
#include <vector>

#include "core/machine/machine-config.h"
#include "core/memory/host-memory.h"

namespace cellvisor {

struct HostFacts {
  HostMemory memory;
  std::vector<uint32_t> onlineCpus;
};
HostFacts readHostFacts();

// Throws ConfigError naming the option that asks too much; returns warnings
// for what may work but probably should not be done.
std::vector<std::string> checkHostFits(const MachineConfig& config, const ConfigStore& store,
                                       const HostFacts& host);

}  // namespace cellvisor
