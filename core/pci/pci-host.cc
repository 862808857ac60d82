#include "core/pci/pci-host.h"

#include <fmt/format.h>

#include <stdexcept>

namespace cellvisor {
namespace {

bool validAccess(uint64_t offset, size_t size) {
  return (size == 1 || size == 2 || size == 4) && offset % size == 0;
}

}  // namespace

PciHost::PciHost(IoDevice& resetRegister)
    : addressPort_(*this, resetRegister), dataPort_(*this), ecam_(*this) {}

void PciHost::attach(int slot, int function, PciDevice& device) {
  if (slot < 0 || slot >= SLOTS || function < 0 || function >= FUNCTIONS) {
    throw std::invalid_argument(fmt::format("PCI slot {}:{} out of range", slot, function));
  }
  std::lock_guard lock(mutex_);
  auto& entry = functions_[static_cast<size_t>(slot * FUNCTIONS + function)];
  if (entry != nullptr)
    throw std::invalid_argument(fmt::format("PCI slot {}:{} is already in use", slot, function));
  entry = &device;
}

PciDevice* PciHost::find(int bus, int slot, int function) const {
  if (bus != 0 || slot < 0 || slot >= SLOTS || function < 0 || function >= FUNCTIONS) return nullptr;
  std::lock_guard lock(mutex_);
  return functions_[static_cast<size_t>(slot * FUNCTIONS + function)];
}

uint32_t PciHost::readConfig(int bus, int slot, int function, uint16_t offset, uint8_t size) const {
  PciDevice* device = find(bus, slot, function);
  if (device == nullptr || !validAccess(offset, size)) return size == 4 ? 0xffffffff : (1u << (8 * size)) - 1;
  return device->readConfig(offset, size);
}

void PciHost::writeConfig(int bus, int slot, int function, uint16_t offset, uint8_t size, uint32_t value) {
  PciDevice* device = find(bus, slot, function);
  if (device == nullptr || !validAccess(offset, size)) return;
  device->writeConfig(offset, size, value);
}

void PciHost::AddressPort::read(uint64_t offset, std::span<uint8_t> data) {
  if (offset == 1 && data.size() == 1) return reset_.read(0, data);
  std::lock_guard lock(host_.mutex_);
  storeLittleEndian(data, data.size() == 4 ? host_.address_ : 0xffffffff);
}

void PciHost::AddressPort::write(uint64_t offset, std::span<const uint8_t> data) {
  if (offset == 1 && data.size() == 1) return reset_.write(0, data);
  if (offset != 0 || data.size() != 4) return;  // Only dword writes latch an address.
  std::lock_guard lock(host_.mutex_);
  host_.address_ = static_cast<uint32_t>(loadLittleEndian(data)) & 0x80ff'fffc;
}

void PciHost::DataPort::read(uint64_t offset, std::span<uint8_t> data) {
  uint32_t address;
  {
    std::lock_guard lock(host_.mutex_);
    address = host_.address_;
  }
  if (!(address & 0x8000'0000) || !validAccess(offset, data.size())) {
    storeLittleEndian(data, 0xffffffff);
    return;
  }
  storeLittleEndian(
      data,
      host_.readConfig((address >> 16) & 0xff, (address >> 11) & 0x1f, (address >> 8) & 0x7,
                       static_cast<uint16_t>((address & 0xfc) + offset), static_cast<uint8_t>(data.size())));
}

void PciHost::DataPort::write(uint64_t offset, std::span<const uint8_t> data) {
  uint32_t address;
  {
    std::lock_guard lock(host_.mutex_);
    address = host_.address_;
  }
  if (!(address & 0x8000'0000) || !validAccess(offset, data.size())) return;
  host_.writeConfig((address >> 16) & 0xff, (address >> 11) & 0x1f, (address >> 8) & 0x7,
                    static_cast<uint16_t>((address & 0xfc) + offset), static_cast<uint8_t>(data.size()),
                    static_cast<uint32_t>(loadLittleEndian(data)));
}

void PciHost::Ecam::read(uint64_t offset, std::span<uint8_t> data) {
  if (!validAccess(offset, data.size())) return storeLittleEndian(data, 0xffffffff);
  storeLittleEndian(
      data, host_.readConfig(static_cast<int>(offset >> 20), static_cast<int>((offset >> 15) & 0x1f),
                             static_cast<int>((offset >> 12) & 0x7), static_cast<uint16_t>(offset & 0xfff),
                             static_cast<uint8_t>(data.size())));
}

void PciHost::Ecam::write(uint64_t offset, std::span<const uint8_t> data) {
  if (!validAccess(offset, data.size())) return;
  host_.writeConfig(static_cast<int>(offset >> 20), static_cast<int>((offset >> 15) & 0x1f),
                    static_cast<int>((offset >> 12) & 0x7), static_cast<uint16_t>(offset & 0xfff),
                    static_cast<uint8_t>(data.size()), static_cast<uint32_t>(loadLittleEndian(data)));
}

}  // namespace cellvisor
