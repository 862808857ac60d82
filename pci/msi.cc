#include "pci/msi.h"

namespace cellvisor::pci {
namespace {

constexpr uint16_t CONTROL = 2;
constexpr uint16_t ADDRESS_LOW = 4;
constexpr uint16_t ADDRESS_HIGH = 8;
constexpr uint16_t DATA = 12;
constexpr uint8_t LENGTH = 14;

}  // namespace

uint16_t Msi::addCapability() {
  capability_ = config_.addCapability(CAPABILITY_MSI, LENGTH);
  // One message (MMC 0), only it may be enabled (MME stays 0).
  config_.set16(static_cast<uint16_t>(capability_ + CONTROL), ADDRESS_64, ENABLE);
  config_.set32(static_cast<uint16_t>(capability_ + ADDRESS_LOW), 0, 0xffff'fffc);
  config_.set32(static_cast<uint16_t>(capability_ + ADDRESS_HIGH), 0, 0xffff'ffff);
  config_.set16(static_cast<uint16_t>(capability_ + DATA), 0, 0xffff);
  return capability_;
}

bool Msi::enabled() const {
  return capability_ != 0 && (config_.read(static_cast<uint16_t>(capability_ + CONTROL), 2) & ENABLE) != 0;
}

bool Msi::touches(uint16_t offset, uint8_t size) const {
  return capability_ != 0 && offset < capability_ + LENGTH && offset + size > capability_;
}

MsixUpdate Msi::route() const {
  if (!enabled()) return {0, 0, 0};
  uint64_t address = config_.read(static_cast<uint16_t>(capability_ + ADDRESS_LOW), 4) |
                     uint64_t{config_.read(static_cast<uint16_t>(capability_ + ADDRESS_HIGH), 4)} << 32;
  return {0, address, config_.read(static_cast<uint16_t>(capability_ + DATA), 2)};
}

}  // namespace cellvisor::pci
