// The guest-physical resources the machine hands out while it wires devices,
// in one place: BAR addresses in the 32-bit PCI window below 4 GiB and in
// the 64-bit window above RAM, and the GSIs of MSI routes. Every address
// comes from core/arch/x86/address-map.h.
#pragma once

#include <cstdint>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "pci/bar-placement.h"

namespace cellvisor {

class ResourceAllocator {
 public:
  // `ramEnd`: the first guest-physical address above all RAM.
  explicit ResourceAllocator(uint64_t ramEnd);

  // Places one device's BARs, naturally aligned: in the 32-bit window,
  // where firmware and every driver can reach them; a device whose 64-bit
  // BARs do not fit there gets them above RAM. Throws std::invalid_argument,
  // prefixed with `device`, for a BAR no function can have or no room.
  std::vector<uint64_t> placeBars(std::span<const BarRequest> bars, const std::string& device);
  // A GSI for an MSI route (GSIs below belong to the IOAPIC's pins).
  uint32_t allocateGsi();

  BarWindow mmio32Window() const { return window32_; }
  BarWindow mmio64Window() const { return window64_; }

 private:
  std::mutex mutex_;
  BarWindow window32_;
  BarWindow window64_;
  uint64_t next32_ = 0;
  uint64_t next64_ = 0;
  uint32_t nextGsi_;
};

}  // namespace cellvisor
