// virtio-blk's launch descriptor: the spawner parses the slot's options,
// opens the image for the server, and gives it one doorbell per queue and
// one vector per queue plus the configuration vector.
#include <fmt/format.h>

#include <algorithm>

#include "host/server-kind.h"
#include "servers/virtio-blk/blk-options.h"
#include "virtio-blk-policy.h"

namespace cellvisor {
namespace {

PreparedServer prepare(const LaunchContext& context) {
  BlkOptions options;
  std::string text = context.options;
  try {
    options = parseBlkOptions(text);
  } catch (const std::invalid_argument& error) {
    throw std::invalid_argument(context.where + ": " + error.what());
  }
  // One queue per vCPU unless the user chose (the MQ default).
  if (text.find(",queues=") == std::string::npos) {
    options.queues = static_cast<uint16_t>(std::min<uint32_t>(context.vcpus, 64));
    text += fmt::format(",queues={}", options.queues);
  }
  PreparedServer prepared;
  prepared.backends.push_back(openBlkImage(options, context.where + ": " + options.path));
  prepared.options = text;
  prepared.doorbells = options.queues;
  prepared.vectors = static_cast<uint16_t>(options.queues + 1);
  return prepared;
}

const ServerKindRegistration registration{ServerKind{
    .emulation = "virtio-blk",
    .binary = "virtio-blk-server",
    .policyName = "virtio-blk.policy",
    .policyText = policies::VIRTIO_BLK_POLICY,
    .role = ConfigRole::DISK,
    .configType = "virtio-blk",
    .prepare = prepare,
}};

}  // namespace
}  // namespace cellvisor
