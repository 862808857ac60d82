// A PCI function as the host bridge sees it: 4 KiB of configuration space
// read and written in naturally aligned 1, 2 or 4 byte pieces.
#pragma once

#include <cstdint>

namespace cellvisor {

class PciDevice {
 public:
  virtual ~PciDevice() = default;
  virtual uint32_t readConfig(uint16_t offset, uint8_t size) = 0;
  virtual void writeConfig(uint16_t offset, uint8_t size, uint32_t value) = 0;
};

}  // namespace cellvisor
