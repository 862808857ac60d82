#include "core/devices/device-catalog.h"

#include <fcntl.h>
#include <fmt/format.h>

#include "core/base/system-error.h"
#include "servers/virtio-blk/blk-options.h"

namespace cellvisor {

bool isServerDevice(const std::string& emulation) { return emulation == "virtio-blk"; }

std::string serverDeviceName(const PciSlotConfig& slot) {
  return fmt::format("{}-{}.{}", slot.emulation, slot.slot, slot.function);
}

ServerLaunch prepareServerLaunch(const PciSlotConfig& slot, uint32_t vcpus, const std::string& sandbox) {
  std::string where = fmt::format("-s {}:{},{}", slot.slot, slot.function, slot.emulation);
  ServerLaunch launch;
  launch.sandbox = sandbox;
  launch.deviceName = serverDeviceName(slot);
  launch.binary = findServerBinary(slot.emulation);
  if (slot.emulation == "virtio-blk") {
    BlkOptions options;
    std::string text = slot.options;
    try {
      options = parseBlkOptions(text);
    } catch (const std::invalid_argument& error) {
      throw std::invalid_argument(where + ": " + error.what());
    }
    // One queue per vCPU unless the user chose (the MQ default).
    if (text.find(",queues=") == std::string::npos) {
      options.queues = static_cast<uint16_t>(std::min<uint32_t>(vcpus, 64));
      text += fmt::format(",queues={}", options.queues);
    }
    int fd = ::open(options.path.c_str(), blkOpenFlags(options));
    if (fd < 0) throwSystemError(where + ": " + options.path);
    launch.backend = UniqueFd(fd);
    launch.policy = "virtio-blk.policy";
    launch.options = text;
    launch.queues = options.queues;
    launch.vectors = static_cast<uint16_t>(options.queues + 1);
    return launch;
  }
  throw std::invalid_argument(where + ": not a device server");
}

}  // namespace cellvisor
