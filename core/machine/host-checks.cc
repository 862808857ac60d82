#include "core/machine/host-checks.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <fstream>
#include <stdexcept>

namespace cellvisor {
namespace {

std::string originOr(const ConfigStore& store, const std::string& key, const std::string& fallback) {
  std::string origin = store.originOf(key);
  return origin.empty() ? fallback : origin;
}

}  // namespace

HostFacts readHostFacts() {
  HostFacts host;
  host.memory = readHostMemory();
  std::ifstream online("/sys/devices/system/cpu/online");
  std::string list;
  if (std::getline(online, list)) host.onlineCpus = parseCpuList(list);
  return host;
}

std::vector<std::string> checkHostFits(const MachineConfig& config, const ConfigStore& store,
                                       const HostFacts& host) {
  std::vector<std::string> warnings;
  std::string memoryOrigin = originOr(store, "memory.size", "default") + ": memory.size";
  try {
    std::string warning = checkGuestMemory(config.memoryBytes, host.memory, config.memoryOvercommit);
    if (!warning.empty()) warnings.push_back(memoryOrigin + ": " + warning);
  } catch (const std::invalid_argument& error) {
    throw ConfigError(memoryOrigin + ": " + error.what());
  }
  for (const auto& [vcpu, cpus] : config.vcpuHostCpus) {
    for (uint32_t cpu : cpus) {
      if (std::find(host.onlineCpus.begin(), host.onlineCpus.end(), cpu) != host.onlineCpus.end()) continue;
      std::string key = fmt::format("vcpu.{}.cpuset", vcpu);
      throw ConfigError(fmt::format("{}: {}: host CPU {} does not exist or is offline (online: {})",
                                    store.originOf(key), key, cpu, fmt::join(host.onlineCpus, ",")));
    }
  }
  return warnings;
}

}  // namespace cellvisor
