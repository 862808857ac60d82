#include "core/pci/pci-config-space.h"

#include <stdexcept>

namespace cellvisor {
namespace {

constexpr uint32_t BAR_IO_FLAG = 0x1;
constexpr uint32_t BAR_MEMORY64_FLAG = 0x4;
constexpr uint32_t BAR_PREFETCH_FLAG = 0x8;

}  // namespace

PciConfigSpace::PciConfigSpace(const PciIdentity& identity) {
  set16(0x00, identity.vendor);
  set16(0x02, identity.device);
  set16(COMMAND, 0, COMMAND_IO | COMMAND_MEMORY | (1u << 2) /* bus master */ | (1u << 10) /* INTx off */);
  setByte(0x08, identity.revision);
  setByte(0x09, identity.progIf);
  setByte(0x0a, identity.subclass);
  setByte(0x0b, identity.classCode);
  setByte(0x0e, identity.headerType);
  set16(0x2c, identity.subsystemVendor);
  set16(0x2e, identity.subsystem);
  setByte(INTERRUPT_LINE, 0xff, 0xff);  // Scratch for the OS.
}

void PciConfigSpace::setByte(uint16_t offset, uint8_t value, uint8_t writeMask) {
  bytes_.at(offset) = value;
  writable_.at(offset) = writeMask;
}

void PciConfigSpace::set16(uint16_t offset, uint16_t value, uint16_t writeMask) {
  for (uint16_t i = 0; i < 2; ++i) {
    setByte(static_cast<uint16_t>(offset + i), static_cast<uint8_t>(value >> (8 * i)),
            static_cast<uint8_t>(writeMask >> (8 * i)));
  }
}

void PciConfigSpace::set32(uint16_t offset, uint32_t value, uint32_t writeMask) {
  for (uint16_t i = 0; i < 4; ++i) {
    setByte(static_cast<uint16_t>(offset + i), static_cast<uint8_t>(value >> (8 * i)),
            static_cast<uint8_t>(writeMask >> (8 * i)));
  }
}

void PciConfigSpace::setInterruptPin(uint8_t pin, uint8_t line) {
  setByte(0x3d, pin);
  setByte(INTERRUPT_LINE, line, 0xff);
}

void PciConfigSpace::setBar(int index, const PciBar& bar, uint64_t address) {
  if (index < 0 || index > 5 || (bar.kind == PciBarKind::MEMORY64 && index > 4)) {
    throw std::invalid_argument("bad BAR index");
  }
  if (bar.size == 0 || (bar.size & (bar.size - 1)) != 0 || (address & (bar.size - 1)) != 0) {
    throw std::invalid_argument("BAR size must be a power of two and the address aligned to it");
  }
  uint64_t sizeMask = ~(bar.size - 1);
  uint16_t offset = static_cast<uint16_t>(BAR0 + 4 * index);
  bars_[static_cast<size_t>(index)] = bar;
  switch (bar.kind) {
    case PciBarKind::IO:
      set32(offset, static_cast<uint32_t>(address) | BAR_IO_FLAG, static_cast<uint32_t>(sizeMask) & ~0x3u);
      break;
    case PciBarKind::MEMORY32:
      set32(offset, static_cast<uint32_t>(address) | (bar.prefetchable ? BAR_PREFETCH_FLAG : 0),
            static_cast<uint32_t>(sizeMask) & ~0xfu);
      break;
    case PciBarKind::MEMORY64:
      set32(offset,
            static_cast<uint32_t>(address) | BAR_MEMORY64_FLAG | (bar.prefetchable ? BAR_PREFETCH_FLAG : 0),
            static_cast<uint32_t>(sizeMask) & ~0xfu);
      set32(static_cast<uint16_t>(offset + 4), static_cast<uint32_t>(address >> 32),
            static_cast<uint32_t>(sizeMask >> 32));
      bars_[static_cast<size_t>(index) + 1] = PciBar{};
      break;
  }
}

uint64_t PciConfigSpace::barAddress(int index) const {
  std::lock_guard lock(mutex_);
  const PciBar& bar = bars_[static_cast<size_t>(index)];
  uint64_t low = rawRead(static_cast<uint16_t>(BAR0 + 4 * index), 4);
  if (bar.kind == PciBarKind::IO) return low & ~0x3ull;
  uint64_t address = low & ~0xfull;
  if (bar.kind == PciBarKind::MEMORY64) {
    address |= uint64_t{rawRead(static_cast<uint16_t>(BAR0 + 4 * index + 4), 4)} << 32;
  }
  return address;
}

bool PciConfigSpace::decodes(int index) const {
  std::lock_guard lock(mutex_);
  uint32_t command = rawRead(COMMAND, 2);
  return bars_[static_cast<size_t>(index)].kind == PciBarKind::IO ? (command & COMMAND_IO)
                                                                  : (command & COMMAND_MEMORY);
}

uint32_t PciConfigSpace::rawRead(uint16_t offset, uint8_t size) const {
  uint32_t value = 0;
  for (uint8_t i = 0; i < size; ++i) value |= uint32_t{bytes_[offset + i]} << (8 * i);
  return value;
}

uint32_t PciConfigSpace::readConfig(uint16_t offset, uint8_t size) {
  if (offset >= SIZE || size > SIZE - offset) return 0xffffffff;
  std::lock_guard lock(mutex_);
  return rawRead(offset, size);
}

void PciConfigSpace::writeConfig(uint16_t offset, uint8_t size, uint32_t value) {
  if (offset >= SIZE || size > SIZE - offset) return;
  std::array<uint64_t, 6> before{};
  std::array<bool, 6> decodedBefore{};
  for (int i = 0; i < 6; ++i) {
    if (bars_[static_cast<size_t>(i)].size == 0) continue;
    before[static_cast<size_t>(i)] = barAddress(i);
    decodedBefore[static_cast<size_t>(i)] = decodes(i);
  }
  {
    std::lock_guard lock(mutex_);
    for (uint8_t i = 0; i < size; ++i) {
      uint16_t at = static_cast<uint16_t>(offset + i);
      uint8_t byte = static_cast<uint8_t>(value >> (8 * i));
      uint8_t mask = writable_[at];
      bytes_[at] = static_cast<uint8_t>((bytes_[at] & ~mask) | (byte & mask));
    }
  }
  if (!barCallback_) return;
  for (int i = 0; i < 6; ++i) {
    if (bars_[static_cast<size_t>(i)].size == 0) continue;
    uint64_t address = barAddress(i);
    bool enabled = decodes(i);
    // While the guest sizes a BAR (all-ones written) it is not a real address.
    if (address != before[static_cast<size_t>(i)] || enabled != decodedBefore[static_cast<size_t>(i)]) {
      barCallback_(i, address, enabled);
    }
  }
}

}  // namespace cellvisor
