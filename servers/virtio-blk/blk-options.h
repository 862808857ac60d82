// virtio-blk options, bhyve's spelling: PATH[,ro][,nocache][,direct]
// [,sectorsize=LOGICAL[/PHYSICAL]][,nodelete][,ser=SERIAL][,queues=N]
// [,queue-size=N][,poll-us=N]. Parsed by the spawner (which opens the image) and by the
// server (which serves it), from this one definition.
#pragma once

#include <cstdint>
#include <string>

#include "base/unique-fd.h"

namespace cellvisor {

struct BlkOptions {
  std::string path;
  bool readOnly = false;
  bool noCache = false;  // O_DIRECT, as bhyve's "nocache".
  bool direct = false;   // O_SYNC, as bhyve's "direct".
  bool noDelete = false;
  uint32_t logicalSectorSize = 512;
  uint32_t physicalSectorSize = 512;
  std::string serial;
  uint16_t queues = 1;
  uint16_t queueSize = 256;
  uint32_t pollMicros = 0;  // Busy-poll after a kick (poll-us=N).
};

// Throws std::invalid_argument naming the bad option.
BlkOptions parseBlkOptions(const std::string& text);
// The open(2) flags the options ask for.
int blkOpenFlags(const BlkOptions& options);
// Opens the image with those flags and checks that it is a disk (see
// disk-image.h); errors start with `name`.
UniqueFd openBlkImage(const BlkOptions& options, const std::string& name);

}  // namespace cellvisor
