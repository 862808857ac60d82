// Something that answers guest port or MMIO accesses. `offset` is relative to
// the range the device was registered at; data is little-endian as the guest
// sees it. Implementations lock their own state: vCPU threads call in
// concurrently.
#pragma once

#include <cstdint>
#include <span>

#include "base/little-endian.h"

namespace cellvisor {

class IoDevice {
 public:
  virtual ~IoDevice() = default;
  virtual void read(uint64_t offset, std::span<uint8_t> data) = 0;
  virtual void write(uint64_t offset, std::span<const uint8_t> data) = 0;
};

// An interrupt line into the guest (a GSI of the in-kernel IOAPIC/PIC).
class IrqLine {
 public:
  virtual ~IrqLine() = default;
  virtual void set(bool level) = 0;
};

}  // namespace cellvisor
