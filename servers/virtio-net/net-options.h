// virtio-net's slot options, bhyve-style:
// `virtio-net,TAP[,mac=xx:xx:xx:xx:xx:xx][,queue-size=N][,poll-us=N]`.
// The spawner opens (or creates) tap TAP and hands the server its fd; the
// server gets the options string and never opens anything.
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "base/mac-address.h"

namespace cellvisor {

struct NetOptions {
  std::string tap;               // Interface name; "cvtap%d" lets the kernel number it.
  std::array<uint8_t, 6> mac{};  // Zero: derived from the device name.
  bool macGiven = false;
  uint16_t queueSize = 256;
  uint32_t pollMicros = 0;  // Busy-poll this long after work (0: sleep at once).
};

// Throws std::invalid_argument naming the bad option.
NetOptions parseNetOptions(const std::string& text);

}  // namespace cellvisor
