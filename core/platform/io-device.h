// Something that answers guest port or MMIO accesses. `offset` is relative to
// the range the device was registered at; data is little-endian as the guest
// sees it. Implementations lock their own state: vCPU threads call in
// concurrently.
#pragma once

#include <cstdint>
#include <span>

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

// Little-endian helpers for devices that answer accesses of 1 to 8 bytes.
inline uint64_t loadLittleEndian(std::span<const uint8_t> data) {
  uint64_t value = 0;
  for (size_t i = 0; i < data.size() && i < 8; ++i) value |= uint64_t{data[i]} << (8 * i);
  return value;
}
inline void storeLittleEndian(std::span<uint8_t> data, uint64_t value) {
  for (size_t i = 0; i < data.size(); ++i) data[i] = i < 8 ? static_cast<uint8_t>(value >> (8 * i)) : 0;
}

}  // namespace cellvisor
