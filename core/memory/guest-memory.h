// Guest RAM: one memfd, sealed so nobody can shrink it under a mapping, laid
// out around the 32-bit PCI hole. Device servers map this same memfd, so the
// layout (regions with memfd offsets) is what we hand to them.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/base/mapping.h"
#include "core/base/unique-fd.h"

namespace cellvisor {

// Fixed guest-physical layout shared by core, loaders and ACPI tables.
namespace layout {
constexpr uint64_t KiB = 1024;
constexpr uint64_t MiB = 1024 * KiB;
constexpr uint64_t GiB = 1024 * MiB;
// RAM below 4 GiB ends here; the rest is the PCI hole.
constexpr uint64_t LOW_RAM_LIMIT = 3 * GiB;
constexpr uint64_t PCI_MMIO32_BASE = 3 * GiB;
constexpr uint64_t PCI_MMIO32_SIZE = 512 * MiB;
constexpr uint64_t ECAM_BASE = 0xE000'0000;
constexpr uint64_t ECAM_SIZE = 256 * MiB;  // Bus 0-255.
constexpr uint64_t IOAPIC_BASE = 0xFEC0'0000;
constexpr uint64_t LAPIC_BASE = 0xFEE0'0000;
constexpr uint64_t HIGH_RAM_BASE = 4 * GiB;
// Legacy holes inside low RAM reported as reserved in e820.
constexpr uint64_t EBDA_BASE = 0x9'FC00;
constexpr uint64_t BIOS_END = 1 * MiB;
}  // namespace layout

struct RamRegion {
  uint64_t guestPhysical;
  uint64_t size;
  uint64_t memfdOffset;
};

// Guest RAM before anyone maps it: the sealed memfd and its layout around
// the PCI hole. vmmd creates it and hands it to the core and every server.
struct GuestRamFile {
  UniqueFd memfd;
  std::vector<RamRegion> regions;
};
// `size` bytes of RAM: a multiple of 2 MiB, at least 2 MiB. Throws
// std::invalid_argument for a bad size, std::system_error if memfd fails.
GuestRamFile createGuestRam(uint64_t size);

class GuestMemory {
 public:
  // Creates `size` bytes of RAM (a multiple of 2 MiB, at least 2 MiB).
  explicit GuestMemory(uint64_t size);
  explicit GuestMemory(GuestRamFile file);
  // Maps RAM someone else created (a device server mapping the VM's memfd).
  // Throws if the regions do not fit the memfd.
  GuestMemory(UniqueFd memfd, std::vector<RamRegion> regions);

  uint64_t size() const { return size_; }
  int memfd() const { return memfd_.get(); }
  const std::vector<RamRegion>& regions() const { return regions_; }
  uint8_t* base() const { return mapping_.data(); }

  // Host pointer for [address, address+length) or nullptr when any byte falls
  // outside RAM. Never faults: the check is done before any access.
  uint8_t* translate(uint64_t address, uint64_t length) const;
  bool contains(uint64_t address, uint64_t length) const { return translate(address, length) != nullptr; }

  // Copies with bounds checks; throw std::out_of_range (host-controlled data
  // such as kernel images only; guest-controlled paths use translate()).
  void write(uint64_t address, std::span<const uint8_t> data);
  void read(uint64_t address, std::span<uint8_t> out) const;
  template <typename T>
  void writeObject(uint64_t address, const T& value) {
    write(address, {reinterpret_cast<const uint8_t*>(&value), sizeof(T)});
  }

  // Highest usable guest-physical address below 4 GiB, exclusive.
  uint64_t lowRamEnd() const { return regions_.front().size; }

 private:
  uint64_t size_;
  UniqueFd memfd_;
  Mapping mapping_;
  std::vector<RamRegion> regions_;
};

}  // namespace cellvisor
