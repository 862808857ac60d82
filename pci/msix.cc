#include "pci/msix.h"

#include <stdexcept>

#include "base/little-endian.h"

namespace cellvisor::pci {

Msix::Msix(ConfigSpace& config, std::span<MsixEntry> entries, std::span<uint64_t> pending)
    : config_(config), entries_(entries), pending_(pending) {
  if (entries.empty() || entries.size() > 2048 || pending.size() * 64 < entries.size()) {
    throw std::invalid_argument("MSI-X needs 1 to 2048 vectors and a pending bit for each");
  }
}

uint16_t Msix::addCapability(uint8_t bar, uint32_t tableOffset, uint32_t pbaOffset) {
  capability_ = config_.addCapability(CAPABILITY_MSIX, 12);
  config_.set16(static_cast<uint16_t>(capability_ + 2), static_cast<uint16_t>(vectorCount() - 1u),
                ENABLE | FUNCTION_MASK);
  config_.set32(static_cast<uint16_t>(capability_ + 4), tableOffset | bar);
  config_.set32(static_cast<uint16_t>(capability_ + 8), pbaOffset | bar);
  return capability_;
}

void Msix::reset() {
  for (auto& entry : entries_) entry = {0, 0, 0, 1};
  for (auto& word : pending_) word = 0;
}

uint16_t Msix::control() const {
  return static_cast<uint16_t>(config_.read(static_cast<uint16_t>(capability_ + 2), 2));
}

uint64_t Msix::tableRead(uint64_t offset, uint8_t size) const {
  if (offset >= entries_.size_bytes() || size > entries_.size_bytes() - offset) return 0;
  return loadLittleEndian(reinterpret_cast<const uint8_t*>(entries_.data()) + offset, size);
}

std::optional<MsixUpdate> Msix::tableWrite(uint64_t offset, uint8_t size, uint64_t value) {
  if ((size != 4 && size != 8) || offset % size) return std::nullopt;
  uint64_t vector = offset / sizeof(MsixEntry);
  if (vector >= vectorCount()) return std::nullopt;
  MsixEntry& entry = entries_[vector];
  storeLittleEndian(reinterpret_cast<uint8_t*>(&entry) + offset % sizeof(MsixEntry), size, value);
  entry.control &= 1;  // Only the mask bit exists.
  deliverPending();
  return MsixUpdate{static_cast<uint16_t>(vector), uint64_t{entry.addressHigh} << 32 | entry.addressLow,
                    entry.data};
}

uint64_t Msix::pbaRead(uint64_t offset, uint8_t size) const {
  uint64_t bytes = (uint64_t{vectorCount()} + 63) / 64 * 8;
  if (offset >= bytes || size > bytes - offset) return 0;
  return loadLittleEndian(reinterpret_cast<const uint8_t*>(pending_.data()) + offset, size);
}

bool Msix::masked(uint16_t vector) const {
  uint16_t bits = control();
  return !(bits & ENABLE) || (bits & FUNCTION_MASK) || (entries_[vector].control & 1);
}

void Msix::raise(uint16_t vector) {
  if (vector >= vectorCount()) return;
  if (masked(vector)) {
    pending_[vector / 64] |= 1ull << (vector % 64);
    return;
  }
  if (signal_) signal_(vector);
}

void Msix::deliverPending() {
  for (uint16_t vector = 0; vector < vectorCount(); ++vector) {
    uint64_t bit = 1ull << (vector % 64);
    if ((pending_[vector / 64] & bit) && !masked(vector)) {
      pending_[vector / 64] &= ~bit;
      if (signal_) signal_(vector);
    }
  }
}

std::vector<MsixUpdate> Msix::vectors() const {
  std::vector<MsixUpdate> all;
  for (uint16_t vector = 0; vector < vectorCount(); ++vector) {
    const MsixEntry& entry = entries_[vector];
    all.push_back({vector, uint64_t{entry.addressHigh} << 32 | entry.addressLow, entry.data});
  }
  return all;
}

}  // namespace cellvisor::pci
