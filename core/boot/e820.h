// The guest's physical memory map as firmware would report it (e820).
#pragma once

#include <cstdint>
#include <vector>

namespace cellvisor {

class GuestMemory;

enum class E820Type : uint32_t { RAM = 1, RESERVED = 2, ACPI = 3 };

struct E820Entry {
  uint64_t address;
  uint64_t size;
  E820Type type;
};

std::vector<E820Entry> buildE820Map(const GuestMemory& memory);

}  // namespace cellvisor
