#include "servers/virtio-blk/blk-options.h"

#include <fcntl.h>

#include <stdexcept>

#include "servers/runtime/disk-image.h"
#include "servers/runtime/slot-options.h"

namespace cellvisor {
namespace {

template <typename T>
T number(const std::string& key, const std::string& text) {
  return slotOptionNumber<T>("virtio-blk", key, text);
}

bool validSectorSize(uint32_t size) {
  return size >= 512 && size <= 65536 && (size & (size - 1)) == 0;
}

}  // namespace

BlkOptions parseBlkOptions(const std::string& text) {
  BlkOptions options;
  SlotOptions slot = splitSlotOptions(text);
  if (slot.first.empty()) throw std::invalid_argument("virtio-blk: no disk image path");
  options.path = slot.first;
  for (const auto& [key, value] : slot.settings) {
    if (key == "ro")
      options.readOnly = true;
    else if (key == "nocache")
      options.noCache = true;
    else if (key == "direct")
      options.direct = true;
    else if (key == "nodelete")
      options.noDelete = true;
    else if (key == "ser") {
      if (value.size() > 20) throw std::invalid_argument("virtio-blk: ser: at most 20 characters");
      options.serial = value;
    } else if (key == "sectorsize") {
      auto slash = value.find('/');
      options.logicalSectorSize = number<uint32_t>(key, value.substr(0, slash));
      options.physicalSectorSize = slash == std::string::npos
                                       ? options.logicalSectorSize
                                       : number<uint32_t>(key, value.substr(slash + 1));
      if (!validSectorSize(options.logicalSectorSize) || !validSectorSize(options.physicalSectorSize) ||
          options.physicalSectorSize < options.logicalSectorSize) {
        throw std::invalid_argument(
            "virtio-blk: sectorsize: powers of two from 512 to 65536, physical >= logical");
      }
    } else if (key == "queues") {
      options.queues = number<uint16_t>(key, value);
      if (options.queues < 1 || options.queues > 64)
        throw std::invalid_argument("virtio-blk: queues: 1 to 64");
    } else if (key == "queue-size") {
      options.queueSize = number<uint16_t>(key, value);
      if (options.queueSize < 2 || options.queueSize > 1024 ||
          (options.queueSize & (options.queueSize - 1))) {
        throw std::invalid_argument("virtio-blk: queue-size: a power of two from 2 to 1024");
      }
    } else if (key == "poll-us") {
      options.pollMicros = number<uint32_t>(key, value);
      if (options.pollMicros > 1000) throw std::invalid_argument("virtio-blk: poll-us: at most 1000");
    } else {
      throw std::invalid_argument("virtio-blk: unknown option '" + key + "'");
    }
  }
  return options;
}

int blkOpenFlags(const BlkOptions& options) {
  int flags = (options.readOnly ? O_RDONLY : O_RDWR) | O_CLOEXEC;
  if (options.noCache) flags |= O_DIRECT;
  if (options.direct) flags |= O_SYNC;
  return flags;
}

UniqueFd openBlkImage(const BlkOptions& options, const std::string& name) {
  return openDiskImage(options.path, blkOpenFlags(options), name);
}

}  // namespace cellvisor
