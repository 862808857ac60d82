#include "pci/bar-placement.h"

#include <fmt/format.h>

#include <bit>
#include <stdexcept>

namespace cellvisor {
namespace {

constexpr uint8_t BAR_COUNT = 6;
constexpr uint8_t ROM_INDEX = 6;

}  // namespace

std::vector<uint64_t> placeBars(std::span<const BarRequest> bars, uint64_t& next, BarWindow window,
                                const std::string& device) {
  auto refuse = [&](const BarRequest& bar, const std::string& why) {
    return std::invalid_argument(
        fmt::format("{}: BAR {} ({:#x} bytes): {}", device, bar.index, bar.size, why));
  };
  // Validate every declaration first, so nothing is placed for a server
  // that lies about any of them.
  uint8_t used = 0;  // One bit per BAR register.
  for (const auto& bar : bars) {
    // Index 6 is the expansion ROM's register: 32-bit only.
    bool rom = bar.index == ROM_INDEX && !bar.is64;
    if ((bar.index >= BAR_COUNT && !rom) || (bar.is64 && bar.index + 1 >= BAR_COUNT)) {
      throw refuse(bar, "no such BAR register");
    }
    uint8_t registers = static_cast<uint8_t>((bar.is64 ? 3u : 1u) << bar.index);
    if ((used & registers) != 0) throw refuse(bar, "overlaps another BAR's register");
    used |= registers;
    if (bar.io) throw refuse(bar, "I/O BARs are not supported");
    if (!std::has_single_bit(bar.size)) throw refuse(bar, "a BAR's size must be a power of two");
    if (bar.size < MIN_MEMORY_BAR) throw refuse(bar, "a memory BAR is at least 16 bytes");
    if (bar.size > window.size) {
      throw refuse(bar, fmt::format("larger than the whole {:#x}-byte PCI window", window.size));
    }
  }
  std::vector<uint64_t> addresses;
  uint64_t end = window.base + window.size;
  uint64_t cursor = next < window.base ? window.base : next;
  for (const auto& bar : bars) {
    if (cursor > end) throw refuse(bar, "the PCI window is full");
    // cursor <= end and size <= window.size: the sum cannot wrap.
    uint64_t address = (cursor + bar.size - 1) & ~(bar.size - 1);
    if (address > end || bar.size > end - address) throw refuse(bar, "the PCI window is full");
    addresses.push_back(address);
    cursor = address + bar.size;
  }
  next = cursor;
  return addresses;
}

}  // namespace cellvisor
