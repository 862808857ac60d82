#include "servers/runtime/server-resources.h"

#include "device.capnp.h"
#include "proto/fd-passing.h"

namespace cellvisor {

ServerResources receiveServerResources(int socket) {
  MessageWithFds received = receiveWithFds(socket);
  ReceivedMessage message(received.bytes);
  auto bootstrap = message.root<proto::Bootstrap>();
  if (bootstrap.getProtocolVersion() != proto::PROTOCOL_VERSION) {
    throw ProtocolError("spawner speaks device protocol " + std::to_string(bootstrap.getProtocolVersion()) +
                        ", this server speaks " + std::to_string(proto::PROTOCOL_VERSION));
  }
  auto roles = bootstrap.getFds();
  if (roles.size() != received.fds.size()) throw ProtocolError("bootstrap names more descriptors than it carries");

  ServerResources resources;
  resources.lifeline = socket;
  resources.deviceName = bootstrap.getDeviceName();
  resources.options = bootstrap.getOptions();
  resources.restart = bootstrap.getRestart();
  resources.sandbox = bootstrap.getSandbox();
  resources.faultInjection = bootstrap.getFaultInjection();
  UniqueFd memoryFd;
  UniqueFd ringFd;
  UniqueFd stateFd;
  for (size_t i = 0; i < roles.size(); ++i) {
    UniqueFd fd = std::move(received.fds[i]);
    switch (roles[i]) {
      case proto::FdRole::GUEST_MEMORY: memoryFd = std::move(fd); break;
      case proto::FdRole::RING_SEGMENT: ringFd = std::move(fd); break;
      case proto::FdRole::STATE_SEGMENT: stateFd = std::move(fd); break;
      case proto::FdRole::REQUEST_DOORBELL: resources.requestDoorbell = std::move(fd); break;
      case proto::FdRole::REPLY_DOORBELL: resources.replyDoorbell = std::move(fd); break;
      case proto::FdRole::QUEUE_DOORBELL: resources.queueDoorbells.push_back(std::move(fd)); break;
      case proto::FdRole::INTERRUPT: resources.interrupts.push_back(std::move(fd)); break;
      case proto::FdRole::BACKEND: resources.backend = std::move(fd); break;
    }
  }
  if (!memoryFd || !ringFd || !stateFd || !resources.requestDoorbell || !resources.replyDoorbell) {
    throw ProtocolError("bootstrap lacks guest memory, rings, state or doorbells");
  }
  if (resources.queueDoorbells.size() != bootstrap.getQueueCount() ||
      resources.interrupts.size() != bootstrap.getVectorCount()) {
    throw ProtocolError("bootstrap queue/vector counts do not match its descriptors");
  }
  std::vector<RamRegion> regions;
  for (auto region : bootstrap.getRamRegions()) {
    regions.push_back({region.getGuestPhysical(), region.getSize(), region.getMemfdOffset()});
  }
  try {
    resources.memory = std::make_unique<GuestMemory>(std::move(memoryFd), std::move(regions));
  } catch (const std::invalid_argument& error) {
    throw ProtocolError(std::string("bootstrap RAM layout: ") + error.what());
  }
  resources.rings.emplace(RingSegment::open(std::move(ringFd)));
  resources.state.emplace(StateSegment::open(std::move(stateFd)));
  return resources;
}

}  // namespace cellvisor
