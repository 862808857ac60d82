// Guest RAM: one memfd, sealed so nobody can shrink it under a mapping, in
// one or two regions around an MMIO hole the architecture chooses. Device
// servers map this same memfd, so the regions (with memfd offsets) are what
// we hand to them, and every guest address they are given is translated
// with bounds checks here.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "base/mapping.h"
#include "base/unique-fd.h"

namespace cellvisor {

struct RamRegion {
  uint64_t guestPhysical;
  uint64_t size;
  uint64_t memfdOffset;
};

// Where RAM stops below the MMIO hole and where the rest continues (the
// default: no hole).
struct RamSplit {
  uint64_t lowLimit = ~uint64_t{0};
  uint64_t highBase = ~uint64_t{0};
};

// Guest RAM before anyone maps it: the sealed memfd and its layout around
// the MMIO hole. vmmd creates it and hands it to the core and every server.
struct GuestRamFile {
  UniqueFd memfd;
  std::vector<RamRegion> regions;
};
// `size` bytes of RAM: a multiple of 2 MiB, at least 2 MiB. Throws
// std::invalid_argument for a bad size, std::system_error if memfd fails.
GuestRamFile createGuestRam(uint64_t size, RamSplit split = {});

class GuestMemory {
 public:
  // Creates `size` bytes of RAM (a multiple of 2 MiB, at least 2 MiB).
  explicit GuestMemory(uint64_t size, RamSplit split = {});
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
