#include "proto/bootstrap-fds.h"

#include <string>

#include "proto/message-channel.h"

namespace cellvisor {

BootstrapFds sortBootstrapFds(proto::Bootstrap::Reader bootstrap, std::vector<UniqueFd>& fds) {
  if (bootstrap.getProtocolVersion() != proto::PROTOCOL_VERSION) {
    throw ProtocolError("the other side speaks device protocol " +
                        std::to_string(bootstrap.getProtocolVersion()) + ", this one speaks " +
                        std::to_string(proto::PROTOCOL_VERSION));
  }
  auto roles = bootstrap.getFds();
  if (roles.size() != fds.size()) {
    throw ProtocolError("bootstrap names " + std::to_string(roles.size()) + " descriptors but carries " +
                        std::to_string(fds.size()));
  }
  BootstrapFds sorted;
  auto single = [](UniqueFd& slot, UniqueFd fd, const char* what) {
    if (slot) throw ProtocolError(std::string("bootstrap carries two ") + what);
    slot = std::move(fd);
  };
  for (size_t i = 0; i < roles.size(); ++i) {
    UniqueFd fd = std::move(fds[i]);
    switch (roles[i]) {
      case proto::FdRole::GUEST_MEMORY:
        single(sorted.memory, std::move(fd), "guest memories");
        break;
      case proto::FdRole::RING_SEGMENT:
        single(sorted.rings, std::move(fd), "ring segments");
        break;
      case proto::FdRole::STATE_SEGMENT:
        single(sorted.state, std::move(fd), "state segments");
        break;
      case proto::FdRole::REQUEST_DOORBELL:
        single(sorted.requestDoorbell, std::move(fd), "request doorbells");
        break;
      case proto::FdRole::REPLY_DOORBELL:
        single(sorted.replyDoorbell, std::move(fd), "reply doorbells");
        break;
      case proto::FdRole::QUEUE_DOORBELL:
        sorted.queueDoorbells.push_back(std::move(fd));
        break;
      case proto::FdRole::INTERRUPT:
        sorted.interrupts.push_back(std::move(fd));
        break;
      case proto::FdRole::BACKEND:
        if (sorted.backends.size() == MAX_BACKENDS)
          throw ProtocolError("bootstrap carries too many backends");
        sorted.backends.push_back(std::move(fd));
        break;
      case proto::FdRole::BAR_MEMORY:
        single(sorted.barMemory, std::move(fd), "BAR memories");
        break;
      case proto::FdRole::INPUT_SEGMENT:
        single(sorted.inputSegment, std::move(fd), "input links");
        break;
      case proto::FdRole::INPUT_DOORBELL:
        single(sorted.inputDoorbell, std::move(fd), "input doorbells");
        break;
      case proto::FdRole::POINTER_SEGMENT:
        single(sorted.pointerSegment, std::move(fd), "pointer links");
        break;
      case proto::FdRole::POINTER_DOORBELL:
        single(sorted.pointerDoorbell, std::move(fd), "pointer doorbells");
        break;
      default:
        throw ProtocolError("bootstrap names a descriptor role this side does not know");
    }
  }
  fds.clear();
  if (!sorted.memory || !sorted.rings || !sorted.state || !sorted.requestDoorbell || !sorted.replyDoorbell) {
    throw ProtocolError("bootstrap lacks guest memory, rings, state or doorbells");
  }
  if (static_cast<bool>(sorted.inputSegment) != static_cast<bool>(sorted.inputDoorbell)) {
    throw ProtocolError("bootstrap carries an input link without its doorbell, or the reverse");
  }
  if (static_cast<bool>(sorted.pointerSegment) != static_cast<bool>(sorted.pointerDoorbell)) {
    throw ProtocolError("bootstrap carries a pointer link without its doorbell, or the reverse");
  }
  if (sorted.queueDoorbells.size() != bootstrap.getQueueCount() ||
      sorted.interrupts.size() != bootstrap.getVectorCount()) {
    throw ProtocolError("bootstrap queue/vector counts do not match its descriptors");
  }
  return sorted;
}

std::vector<RamRegion> bootstrapRamRegions(proto::Bootstrap::Reader bootstrap) {
  std::vector<RamRegion> regions;
  for (auto region : bootstrap.getRamRegions()) {
    regions.push_back({region.getGuestPhysical(), region.getSize(), region.getMemfdOffset()});
  }
  return regions;
}

}  // namespace cellvisor
