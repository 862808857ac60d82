// The size suffixes bhyve, vm-bhyve and rctl share: K, M, G and T, in either
// case, as powers of 1024.
#pragma once

#include <cctype>
#include <cstdint>
#include <optional>

namespace cellvisor {

// The multiplier `suffix` stands for, or nothing when it is none of them.
inline std::optional<uint64_t> binarySuffixMultiplier(char suffix) {
  switch (std::toupper(static_cast<unsigned char>(suffix))) {
    case 'K':
      return uint64_t{1} << 10;
    case 'M':
      return uint64_t{1} << 20;
    case 'G':
      return uint64_t{1} << 30;
    case 'T':
      return uint64_t{1} << 40;
    default:
      return std::nullopt;
  }
}

}  // namespace cellvisor
