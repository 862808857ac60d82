#include "servers/virtio-net/net-options.h"

#include <fmt/format.h>

#include <cstdio>
#include <regex>
#include <stdexcept>

#include "servers/runtime/slot-options.h"

namespace cellvisor {

NetOptions parseNetOptions(const std::string& text) {
  NetOptions options;
  SlotOptions slot = splitSlotOptions(text);
  if (slot.first.empty()) throw std::invalid_argument("virtio-net: no tap interface given");
  static const std::regex tapName(R"([A-Za-z0-9][A-Za-z0-9._%-]{0,14})");
  if (!std::regex_match(slot.first, tapName))
    throw std::invalid_argument("virtio-net: bad tap name '" + slot.first + "'");
  options.tap = slot.first;
  for (const auto& [key, value] : slot.settings) {
    if (key == "mac") {
      unsigned bytes[6];
      char end;
      if (std::sscanf(value.c_str(), "%2x:%2x:%2x:%2x:%2x:%2x%c", &bytes[0], &bytes[1], &bytes[2], &bytes[3],
                      &bytes[4], &bytes[5], &end) != 6 ||
          (bytes[0] & 1) != 0) {
        throw std::invalid_argument("virtio-net: mac=" + value + " is not a unicast MAC address");
      }
      for (int i = 0; i < 6; ++i) options.mac[i] = static_cast<uint8_t>(bytes[i]);
      options.macGiven = true;
    } else if (key == "queue-size") {
      auto size = slotOptionNumber<uint32_t>("virtio-net", key, value);
      if (size < 16 || size > 1024 || (size & (size - 1)) != 0) {
        throw std::invalid_argument("virtio-net: queue-size must be a power of two, 16-1024");
      }
      options.queueSize = static_cast<uint16_t>(size);
    } else if (key == "poll-us") {
      auto micros = slotOptionNumber<uint32_t>("virtio-net", key, value);
      if (micros > 1000) throw std::invalid_argument("virtio-net: poll-us must be 0-1000");
      options.pollMicros = static_cast<uint32_t>(micros);
    } else {
      throw std::invalid_argument("virtio-net: unknown option '" + key + "'");
    }
  }
  return options;
}

}  // namespace cellvisor
