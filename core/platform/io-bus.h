// Routes a guest port or MMIO address to the device that claimed it. Ranges
// may be added and removed at run time (PCI BAR moves) while vCPUs run.
#pragma once

#include <cstdint>
#include <map>
#include <shared_mutex>
#include <span>
#include <string>

#include "core/platform/io-device.h"

namespace cellvisor {

class IoBus {
 public:
  explicit IoBus(std::string name) : name_(std::move(name)) {}

  // Throws std::invalid_argument if the range overlaps a claimed one.
  void add(uint64_t base, uint64_t size, IoDevice& device, std::string owner);
  // Removes the range that starts at `base`; no-op if none.
  void remove(uint64_t base);

  // Return false for an unclaimed address: reads then see all-ones, as on a
  // real bus with nobody answering, and writes are dropped.
  bool read(uint64_t address, std::span<uint8_t> data) const;
  bool write(uint64_t address, std::span<const uint8_t> data) const;

 private:
  struct Range {
    uint64_t size;
    IoDevice* device;
    std::string owner;
  };
  // Finds the device for [address, address + length); the caller drops the
  // lock before calling it so a handler may itself change the bus.
  bool lookup(uint64_t address, uint64_t length, IoDevice*& device, uint64_t& offset) const;

  std::string name_;
  mutable std::shared_mutex mutex_;
  std::map<uint64_t, Range> ranges_;  // Keyed by base.
};

}  // namespace cellvisor
