#include "host/server-catalog.h"

#include <fmt/format.h>

#include "host/server-kind.h"

namespace cellvisor {

std::vector<std::string> serverEmulations() {
  std::vector<std::string> names;
  for (const ServerKind* kind : serverKinds()) names.push_back(kind->emulation);
  return names;
}

bool isServerDevice(const std::string& emulation) {
  return findServerKind(emulation) != nullptr;
}

std::string serverDeviceName(const PciSlotConfig& slot) {
  return fmt::format("{}-{}.{}", slot.emulation, slot.slot, slot.function);
}

ServerLaunch prepareServerLaunch(const PciSlotConfig& slot, uint32_t vcpus, const std::string& sandbox,
                                 std::string where) {
  if (where.empty()) where = fmt::format("-s {}:{},{}", slot.slot, slot.function, slot.emulation);
  const ServerKind* kind = findServerKind(slot.emulation);
  if (kind == nullptr) throw std::invalid_argument(where + ": not a device server");
  PreparedServer prepared = kind->prepare({slot.options, vcpus, where});
  ServerLaunch launch;
  launch.binary = findServerBinary(kind->folder.empty() ? kind->emulation : kind->folder, kind->binary);
  launch.deviceName = serverDeviceName(slot);
  launch.options = std::move(prepared.options);
  launch.backends = std::move(prepared.backends);
  launch.backendName = std::move(prepared.backendName);
  launch.queues = prepared.doorbells;
  launch.vectors = prepared.vectors;
  launch.barMemoryBytes = prepared.barMemoryBytes;
  launch.input = inputRoleOf(prepared);
  launch.policy = kind->policyName;
  launch.sandbox = sandbox;
  return launch;
}

}  // namespace cellvisor
