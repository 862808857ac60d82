// One `-s SLOT[:FUNCTION],EMULATION[,OPTIONS]` of bhyve's command line.
#pragma once

#include <string>

namespace cellvisor {

struct PciSlotConfig {
  int slot;
  int function;
  std::string emulation;  // hostbridge, lpc, or a device server's (virtio-blk, virtio-net, ...)
  std::string options;
};

}  // namespace cellvisor
