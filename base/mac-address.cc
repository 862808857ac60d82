#include "base/mac-address.h"

#include <cstdio>

namespace cellvisor {

std::string formatMac(const MacAddress& mac) {
  char text[18];
  std::snprintf(text, sizeof(text), "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4],
                mac[5]);
  return text;
}

MacAddress derivedMac(const std::string& seed) {
  // FNV-1a: the same MAC on every host and build, for the same seed.
  uint64_t hash = 0xcbf29ce484222325ull;
  for (unsigned char c : seed) hash = (hash ^ c) * 0x100000001b3ull;
  // 0x02: locally administered, unicast.
  return {0x02,
          0x63,
          static_cast<uint8_t>(hash >> 24),
          static_cast<uint8_t>(hash >> 16),
          static_cast<uint8_t>(hash >> 8),
          static_cast<uint8_t>(hash)};
}

}  // namespace cellvisor
