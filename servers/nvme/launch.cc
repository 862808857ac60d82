// NVMe's launch descriptor: the spawner parses the slot's options, opens the
// namespace's backend (an image, or memory for ram=), and gives the server
// one MSI-X vector for the admin queue and one per I/O queue.
#include <stdexcept>
#include <string>

#include "host/server-kind.h"
#include "nvme-policy.h"
#include "servers/nvme/nvme-options.h"

namespace cellvisor {
namespace {

PreparedServer prepare(const LaunchContext& context) {
  NvmeOptions options;
  try {
    options = parseNvmeOptions(context.options);
  } catch (const std::invalid_argument& error) {
    throw std::invalid_argument(context.where + ": " + error.what());
  }
  PreparedServer prepared;
  prepared.backends.push_back(openNvmeBackend(
      options, context.where + ": " + (options.path.empty() ? std::string("ram") : options.path)));
  prepared.options = context.options;
  // An I/O queue's tail and head doorbells, as eventfds once the driver
  // uses shadow doorbells; until then the writes reach the server as
  // register writes.
  prepared.doorbells = static_cast<uint16_t>(2 * options.maxQueues);
  prepared.vectors = static_cast<uint16_t>(options.maxQueues + 1);
  return prepared;
}

const ServerKindRegistration registration{ServerKind{
    .emulation = "nvme",
    .binary = "nvme-server",
    .policyName = "nvme.policy",
    .policyText = policies::NVME_POLICY,
    .role = ConfigRole::DISK,
    .configType = "nvme",
    .prepare = prepare,
}};

}  // namespace
}  // namespace cellvisor
