// What the AHCI harness tests write and how they read IDENTIFY pages back.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace cellvisor::testing {

// Each sector's bytes say which sector and which version they are.
inline std::vector<uint8_t> sectorPattern(uint64_t lba, uint32_t sectors, uint32_t version) {
  std::vector<uint8_t> bytes(size_t{sectors} * 512);
  for (uint32_t s = 0; s < sectors; ++s) {
    std::mt19937 random(static_cast<unsigned>((lba + s) * 2654435761u ^ version));
    for (size_t i = 0; i < 512; ++i) bytes[s * 512 + i] = static_cast<uint8_t>(random());
  }
  return bytes;
}

inline uint16_t identifyWord(const uint8_t* identify, int index) {
  return static_cast<uint16_t>(identify[2 * index] | identify[2 * index + 1] << 8);
}

// An ATA string field: two characters a word, the first in the high byte.
inline std::string identifyString(const uint8_t* identify, int first, int words) {
  std::string text;
  for (int i = 0; i < words; ++i) {
    text += static_cast<char>(identify[2 * (first + i) + 1]);
    text += static_cast<char>(identify[2 * (first + i)]);
  }
  return text.substr(0, text.find_last_not_of(' ') + 1);
}

}  // namespace cellvisor::testing
