#include "core/boot/e820.h"

#include "base/guest-memory.h"
#include "core/boot/boot-layout.h"

namespace cellvisor {

std::vector<E820Entry> buildE820Map(const GuestMemory& memory) {
  std::vector<E820Entry> map;
  // Conventional memory up to the EBDA; the legacy VGA/BIOS area is reserved
  // except for our ACPI tables, which the guest must not reuse.
  map.push_back({0, layout::EBDA_BASE, E820Type::RAM});
  map.push_back({layout::EBDA_BASE, layout::ACPI_ADDRESS - layout::EBDA_BASE, E820Type::RESERVED});
  map.push_back({layout::ACPI_ADDRESS, layout::ACPI_SIZE, E820Type::ACPI});
  map.push_back({layout::ACPI_ADDRESS + layout::ACPI_SIZE,
                 layout::BIOS_END - (layout::ACPI_ADDRESS + layout::ACPI_SIZE), E820Type::RESERVED});
  uint64_t lowEnd = memory.lowRamEnd();
  if (lowEnd > layout::BIOS_END) {
    map.push_back({layout::BIOS_END, lowEnd - layout::BIOS_END, E820Type::RAM});
  }
  // ECAM must be reserved for Linux to trust MCFG.
  map.push_back({layout::ECAM_BASE, layout::ECAM_SIZE, E820Type::RESERVED});
  for (size_t i = 1; i < memory.regions().size(); ++i) {
    const auto& region = memory.regions()[i];
    map.push_back({region.guestPhysical, region.size, E820Type::RAM});
  }
  return map;
}

}  // namespace cellvisor
