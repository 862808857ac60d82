// Counters every device server keeps and reports through the stats request.
#pragma once

#include <cstdint>

namespace cellvisor {

struct DeviceStats {
  uint64_t requests = 0;
  uint64_t readBytes = 0;
  uint64_t writtenBytes = 0;
  uint64_t errors = 0;
  uint64_t interrupts = 0;
};

}  // namespace cellvisor
