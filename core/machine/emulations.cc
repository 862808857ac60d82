#include "core/machine/emulations.h"

#include <algorithm>

#include "core/machine/platform-pci.h"
#include "host/server-catalog.h"

namespace cellvisor {
namespace {

// bhyve(8)'s PCI emulations that cellvisor does not provide yet.
constexpr const char* BHYVE_ONLY[] = {
    "e1000",          "hda",          "passthru",   "uart",        "virtio-9p",
    "virtio-console", "virtio-input", "virtio-rnd", "virtio-scsi",
};

}  // namespace

std::vector<std::string> availableEmulations() {
  std::vector<std::string> names = platformPciEmulations();
  const auto& servers = serverEmulations();
  names.insert(names.end(), servers.begin(), servers.end());
  return names;
}

std::string describeAvailableEmulations() {
  std::string text;
  for (const auto& name : availableEmulations()) text += (text.empty() ? "" : ", ") + name;
  return text;
}

std::string emulationProblem(const std::string& name) {
  auto names = availableEmulations();
  if (std::find(names.begin(), names.end(), name) != names.end()) return "";
  if (std::find(std::begin(BHYVE_ONLY), std::end(BHYVE_ONLY), name) != std::end(BHYVE_ONLY)) {
    return "'" + name + "' is a bhyve emulation cellvisor does not have yet (this build has: " +
           describeAvailableEmulations() + ")";
  }
  return "unknown emulation '" + name + "'; this build has: " + describeAvailableEmulations();
}

}  // namespace cellvisor
