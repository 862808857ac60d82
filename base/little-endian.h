// Little-endian access of 1 to 8 bytes, the way guest registers, PCI config
// space and ring words are laid out. One copy for every device and the core.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace cellvisor {

// The value of `bytes` little-endian bytes (bytes past 8 are ignored).
inline uint64_t loadLittleEndian(const uint8_t* at, size_t bytes) {
  uint64_t value = 0;
  for (size_t i = 0; i < bytes && i < 8; ++i) value |= uint64_t{at[i]} << (8 * i);
  return value;
}
inline uint64_t loadLittleEndian(std::span<const uint8_t> data) {
  return loadLittleEndian(data.data(), data.size());
}

// Writes the low `bytes` bytes of `value`; bytes past 8 become zero.
inline void storeLittleEndian(uint8_t* at, size_t bytes, uint64_t value) {
  for (size_t i = 0; i < bytes; ++i) at[i] = i < 8 ? static_cast<uint8_t>(value >> (8 * i)) : 0;
}
inline void storeLittleEndian(std::span<uint8_t> data, uint64_t value) {
  storeLittleEndian(data.data(), data.size(), value);
}

// All ones in the low `bytes` bytes: what an access of that size can carry.
constexpr uint64_t accessMask(size_t bytes) {
  return bytes >= 8 ? ~uint64_t{0} : (uint64_t{1} << (8 * bytes)) - 1;
}

}  // namespace cellvisor
