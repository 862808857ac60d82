// The part of a fuzz input every virtio target shares: one split
// virtqueue's descriptor table and avail entries, written into guest RAM.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace cellvisor {

// Copies the descriptor table (zero-padded when the input is short) to
// `descriptors`, folds its addresses so most land inside RAM (deep paths)
// and some just outside (the bounds checks), appends `count` avail entries
// and publishes them. Returns how many bytes of `data` it used.
inline size_t loadFuzzedQueue(uint8_t* guest, uint64_t ramBytes, uint16_t queueSize, uint64_t descriptors,
                              uint64_t avail, uint8_t count, const uint8_t* data, size_t size) {
  const size_t table = 16u * queueSize;
  std::memset(guest + descriptors, 0, table);
  std::memcpy(guest + descriptors, data, std::min(size, table));
  for (size_t i = 0; i < queueSize; ++i) {
    uint64_t address;
    std::memcpy(&address, guest + descriptors + 16 * i, 8);
    if (!(address >> 63)) address %= ramBytes + 8192;
    std::memcpy(guest + descriptors + 16 * i, &address, 8);
  }
  size_t at = std::min(size, table);
  uint16_t availIdx;
  std::memcpy(&availIdx, guest + avail + 2, 2);
  for (uint8_t i = 0; i < count && at + 2 <= size; ++i, at += 2) {
    std::memcpy(guest + avail + 4 + 2 * ((availIdx + i) % queueSize), data + at, 2);
  }
  availIdx = static_cast<uint16_t>(availIdx + count);
  std::memcpy(guest + avail + 2, &availIdx, 2);
  return at;
}

}  // namespace cellvisor
