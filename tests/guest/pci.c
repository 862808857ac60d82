#include "platform.h"

static uint32_t cf8_address(unsigned bus, unsigned slot, unsigned function, unsigned offset) {
  return 0x80000000u | bus << 16 | slot << 11 | function << 8 | (offset & 0xfc);
}

uint32_t pci_cf8_read(unsigned bus, unsigned slot, unsigned function, unsigned offset) {
  outl(0xcf8, cf8_address(bus, slot, function, offset));
  return inl(0xcfc);
}

void pci_cf8_write(unsigned bus, unsigned slot, unsigned function, unsigned offset, uint32_t value) {
  outl(0xcf8, cf8_address(bus, slot, function, offset));
  outl(0xcfc, value);
}

uint32_t pci_ecam_read(uint64_t ecam, unsigned bus, unsigned slot, unsigned function, unsigned offset) {
  return mmio_read32(ecam + ((uint64_t)bus << 20 | slot << 15 | function << 12 | offset));
}
