#include "core/devices/device-catalog.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <sys/ioctl.h>

#include <algorithm>
#include <cstring>

#include "base/system-error.h"
#include "servers/virtio-blk/blk-options.h"
#include "servers/virtio-net/net-options.h"

namespace cellvisor {

namespace {

// Opens tap `name` (created if it does not exist; a name with "%d" lets the
// kernel pick the number) and returns its fd and its actual name.
std::pair<UniqueFd, std::string> openTap(const std::string& name, const std::string& where) {
  UniqueFd fd(::open("/dev/net/tun", O_RDWR | O_CLOEXEC));
  if (!fd) throwSystemError(where + ": /dev/net/tun");
  ifreq request{};
  request.ifr_flags = IFF_TAP | IFF_NO_PI;
  std::strncpy(request.ifr_name, name.c_str(), IFNAMSIZ - 1);
  if (::ioctl(fd.get(), TUNSETIFF, &request) != 0) throwSystemError(where + ": tap " + name);
  return {std::move(fd), request.ifr_name};
}

}  // namespace

const std::vector<std::string>& serverEmulations() {
  static const std::vector<std::string> names = {"virtio-blk", "virtio-net"};
  return names;
}

bool isServerDevice(const std::string& emulation) {
  const auto& names = serverEmulations();
  return std::find(names.begin(), names.end(), emulation) != names.end();
}

std::string serverDeviceName(const PciSlotConfig& slot) {
  return fmt::format("{}-{}.{}", slot.emulation, slot.slot, slot.function);
}

ServerLaunch prepareServerLaunch(const PciSlotConfig& slot, uint32_t vcpus, const std::string& sandbox,
                                 std::string where) {
  if (where.empty()) where = fmt::format("-s {}:{},{}", slot.slot, slot.function, slot.emulation);
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
    launch.backend = openBlkImage(options, where + ": " + options.path);
    launch.policy = "virtio-blk.policy";
    launch.options = text;
    launch.queues = options.queues;
    launch.vectors = static_cast<uint16_t>(options.queues + 1);
    return launch;
  }
  if (slot.emulation == "virtio-net") {
    NetOptions options;
    try {
      options = parseNetOptions(slot.options);
    } catch (const std::invalid_argument& error) {
      throw std::invalid_argument(where + ": " + error.what());
    }
    auto [tap, name] = openTap(options.tap, where);
    launch.backend = std::move(tap);
    launch.backendName = name;
    launch.policy = "virtio-net.policy";
    // The server is told the tap's actual name (the kernel may have numbered it).
    launch.options = name + slot.options.substr(std::min(slot.options.size(), slot.options.find(',')));
    launch.queues = 2;
    launch.vectors = 3;
    return launch;
  }
  throw std::invalid_argument(where + ": not a device server");
}

}  // namespace cellvisor
