#include "core/arch/x86/resource-allocator.h"

#include <algorithm>
#include <stdexcept>

#include "core/arch/x86/address-map.h"

namespace cellvisor {

ResourceAllocator::ResourceAllocator(uint64_t ramEnd)
    : window32_{layout::PCI_MMIO32_BASE, layout::PCI_MMIO32_SIZE},
      window64_{std::max(layout::HIGH_RAM_BASE,
                         (ramEnd + layout::PCI_MMIO64_ALIGN - 1) & ~(layout::PCI_MMIO64_ALIGN - 1)),
                layout::PCI_MMIO64_SIZE},
      nextGsi_(layout::FIRST_MSI_GSI) {}

std::vector<uint64_t> ResourceAllocator::placeBars(std::span<const BarRequest> bars,
                                                   const std::string& device) {
  std::lock_guard lock(mutex_);
  uint64_t next32 = next32_;
  try {
    auto addresses = cellvisor::placeBars(bars, next32, window32_, device);
    next32_ = next32;
    return addresses;
  } catch (const std::invalid_argument&) {
    bool all64 = std::all_of(bars.begin(), bars.end(), [](const BarRequest& bar) { return bar.is64; });
    if (!all64) throw;
  }
  // Validation errors come out of this call the same as out of the first.
  return cellvisor::placeBars(bars, next64_, window64_, device);
}

uint32_t ResourceAllocator::allocateGsi() {
  std::lock_guard lock(mutex_);
  return nextGsi_++;
}

}  // namespace cellvisor
