#include "core/machine/platform-pci.h"

#include <fmt/format.h>

#include <stdexcept>

#include "core/machine/emulations.h"

namespace cellvisor {

// Where Q35 firmware looks for the LPC bridge (its ACPI and SMM code assume it).
constexpr int Q35_LPC_SLOT = 31;

std::vector<std::string> platformPciEmulations() {
  return {"hostbridge", "amd_hostbridge", "lpc"};
}

bool isHostBridge(const std::string& emulation) {
  return emulation == "hostbridge" || emulation == "amd_hostbridge";
}

std::unique_ptr<PciConfigSpace> createPlatformPciDevice(const PciSlotConfig& slot,
                                                        const ChipsetLayout& layout) {
  auto where = fmt::format("-s {}:{},{}", slot.slot, slot.function, slot.emulation);
  if (isHostBridge(slot.emulation)) {
    if (!slot.options.empty())
      throw std::invalid_argument(where + ": " + slot.emulation + " takes no options");
    if (layout.chipset == Chipset::Q35 && (slot.slot != 0 || slot.function != 0))
      throw std::invalid_argument(where +
                                  ": with a bootrom the host bridge is 0:0 (firmware looks for it there)");
    return std::make_unique<HostBridge>(layout.chipset, slot.emulation == "amd_hostbridge", layout.ecam);
  }
  if (slot.emulation == "lpc") {
    if (!slot.options.empty()) throw std::invalid_argument(where + ": lpc takes no options");
    if (slot.slot == 0) throw std::invalid_argument(where + ": lpc cannot be in slot 0");
    if (layout.chipset == Chipset::Q35 && (slot.slot != Q35_LPC_SLOT || slot.function != 0)) {
      throw std::invalid_argument(
          fmt::format("{}: with a bootrom the LPC bridge must be at slot {} (-s {},lpc): firmware "
                      "finds the ICH9 LPC there",
                      where, Q35_LPC_SLOT, Q35_LPC_SLOT));
    }
    return std::make_unique<LpcBridge>(layout.chipset, layout.pmBase);
  }
  throw std::invalid_argument(where + ": " + emulationProblem(slot.emulation));
}

}  // namespace cellvisor
