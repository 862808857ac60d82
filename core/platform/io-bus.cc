#include "core/platform/io-bus.h"

#include <fmt/format.h>

#include <algorithm>
#include <mutex>
#include <stdexcept>

namespace cellvisor {

void IoBus::add(uint64_t base, uint64_t size, IoDevice& device, std::string owner) {
  if (size == 0 || base + size < base) throw std::invalid_argument("bad I/O range for " + owner);
  std::unique_lock lock(mutex_);
  auto next = ranges_.lower_bound(base);
  if (next != ranges_.end() && next->first < base + size) {
    throw std::invalid_argument(
        fmt::format("{} range {:#x}+{:#x} for {} overlaps {}", name_, base, size, owner, next->second.owner));
  }
  if (next != ranges_.begin()) {
    auto previous = std::prev(next);
    if (previous->first + previous->second.size > base) {
      throw std::invalid_argument(fmt::format("{} range {:#x}+{:#x} for {} overlaps {}", name_, base, size,
                                              owner, previous->second.owner));
    }
  }
  ranges_.emplace(base, Range{size, &device, std::move(owner)});
}

void IoBus::remove(uint64_t base) {
  std::unique_lock lock(mutex_);
  ranges_.erase(base);
}

bool IoBus::lookup(uint64_t address, uint64_t length, IoDevice*& device, uint64_t& offset) const {
  std::shared_lock lock(mutex_);
  auto it = ranges_.upper_bound(address);
  if (it == ranges_.begin()) return false;
  --it;
  offset = address - it->first;
  if (offset >= it->second.size || length > it->second.size - offset) return false;
  device = it->second.device;
  return true;
}

bool IoBus::read(uint64_t address, std::span<uint8_t> data) const {
  IoDevice* device = nullptr;
  uint64_t offset = 0;
  if (!lookup(address, data.size(), device, offset)) {
    std::fill(data.begin(), data.end(), 0xff);
    return false;
  }
  device->read(offset, data);
  return true;
}

bool IoBus::write(uint64_t address, std::span<const uint8_t> data) const {
  IoDevice* device = nullptr;
  uint64_t offset = 0;
  if (!lookup(address, data.size(), device, offset)) return false;
  device->write(offset, data);
  return true;
}

}  // namespace cellvisor
