#include "core/pci/pci-config-space.h"

#include <array>

namespace cellvisor {

uint64_t PciConfigSpace::barAddress(int index) const {
  std::lock_guard lock(mutex_);
  return space_.barAddress(index);
}

bool PciConfigSpace::decodes(int index) const {
  std::lock_guard lock(mutex_);
  return space_.decodes(index);
}

uint32_t PciConfigSpace::readConfig(uint16_t offset, uint8_t size) {
  std::lock_guard lock(mutex_);
  return space_.read(offset, size);
}

void PciConfigSpace::writeConfig(uint16_t offset, uint8_t size, uint32_t value) {
  std::array<uint64_t, 6> before{};
  std::array<bool, 6> decodedBefore{};
  std::array<bool, 6> changed{};
  {
    std::lock_guard lock(mutex_);
    for (int i = 0; i < 6; ++i) {
      if (space_.bar(i).size == 0) continue;
      before[static_cast<size_t>(i)] = space_.barAddress(i);
      decodedBefore[static_cast<size_t>(i)] = space_.decodes(i);
    }
    space_.write(offset, size, value);
    for (int i = 0; i < 6; ++i) {
      if (space_.bar(i).size == 0) continue;
      // While the guest sizes a BAR (all-ones written) it is not a real address.
      changed[static_cast<size_t>(i)] = space_.barAddress(i) != before[static_cast<size_t>(i)] ||
                                        space_.decodes(i) != decodedBefore[static_cast<size_t>(i)];
    }
  }
  if (!barCallback_) return;
  for (int i = 0; i < 6; ++i) {
    if (changed[static_cast<size_t>(i)]) barCallback_(i, barAddress(i), decodes(i));
  }
}

}  // namespace cellvisor
