// Where the core puts a device server's BARs, as firmware would: naturally
// aligned, one after another, in a window of guest-physical space. The
// sizes come from the server's hello, so they are untrusted input: each is
// checked before any arithmetic is done with it.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace cellvisor {

struct BarRequest {
  uint8_t index = 0;
  uint64_t size = 0;
  bool io = false;
  bool is64 = false;
};

struct BarWindow {
  uint64_t base;
  uint64_t size;
};

// Smallest memory BAR the PCI specification allows.
constexpr uint64_t MIN_MEMORY_BAR = 16;

// Places `bars` from `next` (updated past the last one) inside `window` and
// returns their addresses in the same order. Throws std::invalid_argument,
// prefixed with `device`, for a BAR no PCI function can have or one that
// does not fit.
std::vector<uint64_t> placeBars(std::span<const BarRequest> bars, uint64_t& next, BarWindow window,
                                const std::string& device);

}  // namespace cellvisor
