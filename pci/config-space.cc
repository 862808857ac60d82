#include "pci/config-space.h"

#include <algorithm>
#include <stdexcept>

#include "base/little-endian.h"

namespace cellvisor::pci {
namespace {

constexpr uint32_t BAR_IO_FLAG = 0x1;
constexpr uint32_t BAR_MEMORY64_FLAG = 0x4;
constexpr uint32_t BAR_PREFETCH_FLAG = 0x8;
constexpr uint16_t EXTENDED_SIZE = 4096;

}  // namespace

ConfigSpace::ConfigSpace()
    : owned_(EXTENDED_SIZE), bytes_(owned_), writable_(EXTENDED_SIZE), restored_(false) {}

ConfigSpace::ConfigSpace(std::span<uint8_t> storage, Contents contents)
    : bytes_(storage), writable_(storage.size()), restored_(contents == Contents::RESTORED) {
  if (storage.size() != 256 && storage.size() != EXTENDED_SIZE) {
    throw std::invalid_argument("PCI configuration space must be 256 bytes or 4 KiB");
  }
  if (!restored_) std::fill(bytes_.begin(), bytes_.end(), 0);
}

void ConfigSpace::setIdentity(const Identity& identity) {
  set16(VENDOR_ID, identity.vendor);
  set16(0x02, identity.device);
  set16(COMMAND, 0, COMMAND_IO | COMMAND_MEMORY | COMMAND_BUS_MASTER | COMMAND_INTX_DISABLE);
  setByte(0x08, identity.revision);
  setByte(0x09, identity.progIf);
  setByte(0x0a, identity.subclass);
  setByte(0x0b, identity.classCode);
  setByte(0x0e, identity.headerType);
  set16(0x2c, identity.subsystemVendor);
  set16(0x2e, identity.subsystem);
  setByte(INTERRUPT_LINE, 0xff, 0xff);  // Scratch for the OS.
}

void ConfigSpace::setByte(uint16_t offset, uint8_t value, uint8_t writeMask) {
  if (offset >= bytes_.size()) throw std::out_of_range("PCI configuration register outside the space");
  if (!restored_) bytes_[offset] = value;
  writable_[offset] = writeMask;
}

void ConfigSpace::set16(uint16_t offset, uint16_t value, uint16_t writeMask) {
  for (uint16_t i = 0; i < 2; ++i) {
    setByte(static_cast<uint16_t>(offset + i), static_cast<uint8_t>(value >> (8 * i)),
            static_cast<uint8_t>(writeMask >> (8 * i)));
  }
}

void ConfigSpace::set32(uint16_t offset, uint32_t value, uint32_t writeMask) {
  for (uint16_t i = 0; i < 4; ++i) {
    setByte(static_cast<uint16_t>(offset + i), static_cast<uint8_t>(value >> (8 * i)),
            static_cast<uint8_t>(writeMask >> (8 * i)));
  }
}

uint16_t ConfigSpace::addCapability(uint8_t id, uint8_t length) {
  uint16_t at = nextCapability_;
  if (length < 2 || at + length > std::min<size_t>(bytes_.size(), 256)) {
    throw std::invalid_argument("PCI capability does not fit the configuration header");
  }
  if (lastCapability_ == 0) {
    setByte(CAPABILITIES, static_cast<uint8_t>(at));
    set16(STATUS, static_cast<uint16_t>(raw(STATUS, 2) | STATUS_CAPABILITIES));
  } else {
    setByte(static_cast<uint16_t>(lastCapability_ + 1), static_cast<uint8_t>(at));
  }
  setByte(at, id);
  setByte(static_cast<uint16_t>(at + 1), 0);
  lastCapability_ = at;
  nextCapability_ = static_cast<uint16_t>((at + length + 3) & ~3u);
  return at;
}

void ConfigSpace::setInterruptPin(uint8_t pin, uint8_t line) {
  setByte(INTERRUPT_PIN, pin);
  setByte(INTERRUPT_LINE, line, 0xff);
}

void ConfigSpace::setExpansionRom(uint64_t size) {
  if (size < 0x800 || size > 0x80000000ull || (size & (size - 1)) != 0) {
    throw std::invalid_argument("expansion ROM size must be a power of two from 2 KiB");
  }
  set32(EXPANSION_ROM, 0, (static_cast<uint32_t>(~(size - 1)) & ~0x7ffu) | ROM_ENABLE);
}

void ConfigSpace::setBar(int index, const Bar& bar, uint64_t address) {
  if (index < 0 || index > 5 || (bar.kind == BarKind::MEMORY64 && index > 4)) {
    throw std::invalid_argument("bad BAR index");
  }
  if (bar.size == 0 || (bar.size & (bar.size - 1)) != 0 || (address & (bar.size - 1)) != 0) {
    throw std::invalid_argument("BAR size must be a power of two and the address aligned to it");
  }
  uint64_t sizeMask = ~(bar.size - 1);
  uint16_t offset = static_cast<uint16_t>(BAR0 + 4 * index);
  bars_[static_cast<size_t>(index)] = bar;
  uint32_t prefetch = bar.prefetchable ? BAR_PREFETCH_FLAG : 0;
  switch (bar.kind) {
    case BarKind::IO:
      set32(offset, static_cast<uint32_t>(address) | BAR_IO_FLAG, static_cast<uint32_t>(sizeMask) & ~0x3u);
      break;
    case BarKind::MEMORY32:
      set32(offset, static_cast<uint32_t>(address) | prefetch, static_cast<uint32_t>(sizeMask) & ~0xfu);
      break;
    case BarKind::MEMORY64:
      set32(offset, static_cast<uint32_t>(address) | BAR_MEMORY64_FLAG | prefetch,
            static_cast<uint32_t>(sizeMask) & ~0xfu);
      set32(static_cast<uint16_t>(offset + 4), static_cast<uint32_t>(address >> 32),
            static_cast<uint32_t>(sizeMask >> 32));
      bars_[static_cast<size_t>(index) + 1] = Bar{};
      break;
  }
}

uint64_t ConfigSpace::barAddress(int index) const {
  const Bar& declared = bar(index);
  uint64_t low = raw(static_cast<uint16_t>(BAR0 + 4 * index), 4);
  if (declared.kind == BarKind::IO) return low & ~0x3ull;
  uint64_t address = low & ~0xfull;
  if (declared.kind == BarKind::MEMORY64) {
    address |= uint64_t{raw(static_cast<uint16_t>(BAR0 + 4 * index + 4), 4)} << 32;
  }
  return address;
}

bool ConfigSpace::decodes(int index) const {
  uint32_t command = raw(COMMAND, 2);
  return bar(index).kind == BarKind::IO ? (command & COMMAND_IO) : (command & COMMAND_MEMORY);
}

uint32_t ConfigSpace::raw(uint16_t offset, uint8_t size) const {
  return static_cast<uint32_t>(loadLittleEndian(bytes_.data() + offset, size));
}

uint32_t ConfigSpace::read(uint16_t offset, uint8_t size) const {
  if (!validConfigAccess(offset, size, static_cast<uint16_t>(bytes_.size()))) return 0xffffffff;
  return raw(offset, size);
}

void ConfigSpace::write(uint16_t offset, uint8_t size, uint32_t value) {
  if (!validConfigAccess(offset, size, static_cast<uint16_t>(bytes_.size()))) return;
  for (uint8_t i = 0; i < size; ++i) {
    uint16_t at = static_cast<uint16_t>(offset + i);
    uint8_t byte = static_cast<uint8_t>(value >> (8 * i));
    uint8_t mask = writable_[at];
    bytes_[at] = static_cast<uint8_t>((bytes_[at] & ~mask) | (byte & mask));
  }
}

}  // namespace cellvisor::pci
