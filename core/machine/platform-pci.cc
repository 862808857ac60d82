#include "core/machine/platform-pci.h"

#include <fmt/format.h>

#include <stdexcept>

#include "core/machine/emulations.h"
#include "core/pci/pci-config-space.h"

namespace cellvisor {
namespace {

// Same identities bhyve uses, so guests' driver tables already know them.
constexpr PciIdentity HOST_BRIDGE{.vendor = 0x1275, .device = 0x1275, .subclass = 0x00, .classCode = 0x06};
constexpr PciIdentity AMD_HOST_BRIDGE{
    .vendor = 0x1022, .device = 0x7432, .subclass = 0x00, .classCode = 0x06};
constexpr PciIdentity LPC_BRIDGE{.vendor = 0x8086, .device = 0x7000, .subclass = 0x01, .classCode = 0x06};

}  // namespace

std::vector<std::string> platformPciEmulations() {
  return {"hostbridge", "amd_hostbridge", "lpc"};
}

bool isHostBridge(const std::string& emulation) {
  return emulation == "hostbridge" || emulation == "amd_hostbridge";
}

std::unique_ptr<PciDevice> createPlatformPciDevice(const PciSlotConfig& slot) {
  auto where = fmt::format("-s {}:{},{}", slot.slot, slot.function, slot.emulation);
  if (isHostBridge(slot.emulation)) {
    if (!slot.options.empty())
      throw std::invalid_argument(where + ": " + slot.emulation + " takes no options");
    return std::make_unique<PciConfigSpace>(slot.emulation == "hostbridge" ? HOST_BRIDGE : AMD_HOST_BRIDGE);
  }
  if (slot.emulation == "lpc") {
    if (!slot.options.empty()) throw std::invalid_argument(where + ": lpc takes no options");
    if (slot.slot == 0) throw std::invalid_argument(where + ": lpc cannot be in slot 0");
    return std::make_unique<PciConfigSpace>(LPC_BRIDGE);
  }
  throw std::invalid_argument(where + ": " + emulationProblem(slot.emulation));
}

}  // namespace cellvisor
