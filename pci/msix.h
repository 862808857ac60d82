// MSI-X (PCI 3.0, 6.8.2) for any PCI function: the capability, the vector
// table and pending-bit array in a BAR, masking, and pending delivery. Its
// entries live in storage the caller chooses (a device server's state
// segment), so a restarted server keeps what the guest programmed.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <vector>

#include "pci/config-space.h"

namespace cellvisor::pci {

struct MsixEntry {
  uint32_t addressLow;
  uint32_t addressHigh;
  uint32_t data;
  uint32_t control;  // Bit 0: masked.
};

// An entry the guest changed: the core reprograms that vector's route.
struct MsixUpdate {
  uint16_t vector;
  uint64_t address;
  uint32_t data;
};

class Msix {
 public:
  static constexpr uint16_t ENABLE = 1u << 15;
  static constexpr uint16_t FUNCTION_MASK = 1u << 14;
  static constexpr uint16_t NO_VECTOR = 0xffff;

  // `entries` (one per vector) and `pending` (a bit per vector) are the
  // caller's storage.
  Msix(ConfigSpace& config, std::span<MsixEntry> entries, std::span<uint64_t> pending);

  // Adds the capability for every entry: the table at `tableOffset` and the
  // PBA at `pbaOffset` in BAR `bar`. Returns the capability's offset.
  uint16_t addCapability(uint8_t bar, uint32_t tableOffset, uint32_t pbaOffset);
  // Every vector masked and nothing pending: the state after reset.
  void reset();
  // Where raised vectors go (the vector's irqfd).
  void setSignal(std::function<void(uint16_t)> signal) { signal_ = std::move(signal); }

  uint16_t vectorCount() const { return static_cast<uint16_t>(entries_.size()); }
  uint16_t control() const;
  // Guest accesses relative to the table and the PBA. Table writes take 4
  // or 8 bytes, aligned; anything else is ignored.
  uint64_t tableRead(uint64_t offset, uint8_t size) const;
  std::optional<MsixUpdate> tableWrite(uint64_t offset, uint8_t size, uint64_t value);
  uint64_t pbaRead(uint64_t offset, uint8_t size) const;
  // After the guest wrote the capability's control word: unmasking
  // delivers what is pending.
  void controlWritten() { deliverPending(); }

  // Raises `vector`, or records it pending while it is masked. A vector the
  // function does not have (NO_VECTOR: the driver polls) is ignored.
  void raise(uint16_t vector);
  bool masked(uint16_t vector) const;
  std::vector<MsixUpdate> vectors() const;

 private:
  void deliverPending();

  ConfigSpace& config_;
  std::span<MsixEntry> entries_;
  std::span<uint64_t> pending_;
  std::function<void(uint16_t)> signal_;
  uint16_t capability_ = 0;
};

}  // namespace cellvisor::pci
