// virtio-net's launch descriptor: the spawner opens (or creates) the tap for
// the server and gives it a receive and a transmit queue, each with its
// doorbell and vector, plus the configuration vector.
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <sys/ioctl.h>

#include <algorithm>
#include <cstring>

#include "base/system-error.h"
#include "host/server-kind.h"
#include "servers/virtio-net/net-options.h"
#include "virtio-net-policy.h"

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

PreparedServer prepare(const LaunchContext& context) {
  NetOptions options;
  try {
    options = parseNetOptions(context.options);
  } catch (const std::invalid_argument& error) {
    throw std::invalid_argument(context.where + ": " + error.what());
  }
  auto [tap, name] = openTap(options.tap, context.where);
  PreparedServer prepared;
  prepared.backends.push_back(std::move(tap));
  prepared.backendName = name;
  // The server is told the tap's actual name (the kernel may have numbered it).
  prepared.options =
      name + context.options.substr(std::min(context.options.size(), context.options.find(',')));
  prepared.doorbells = 2;
  prepared.vectors = 3;
  return prepared;
}

const ServerKindRegistration registration{ServerKind{
    .emulation = "virtio-net",
    .binary = "virtio-net-server",
    .policyName = "virtio-net.policy",
    .policyText = policies::VIRTIO_NET_POLICY,
    .role = ConfigRole::NETWORK,
    .configType = "virtio-net",
    .prepare = prepare,
}};

}  // namespace
}  // namespace cellvisor
