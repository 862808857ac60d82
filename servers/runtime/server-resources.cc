#include "servers/runtime/server-resources.h"

#include <string>

#include "device.capnp.h"
#include "proto/bootstrap-fds.h"
#include "proto/fd-passing.h"

namespace cellvisor {

UniqueFd takeOnlyBackend(ServerResources& resources, const std::string& what) {
  if (resources.backends.size() != 1) {
    throw ProtocolError("expected one " + what + " descriptor, got " +
                        std::to_string(resources.backends.size()));
  }
  UniqueFd backend = std::move(resources.backends.front());
  resources.backends.clear();
  return backend;
}

ServerResources receiveServerResources(int socket) {
  MessageWithFds received = receiveWithFds(socket);
  ReceivedMessage message(received.bytes);
  auto bootstrap = message.root<proto::Bootstrap>();
  BootstrapFds fds = sortBootstrapFds(bootstrap, received.fds);
  ServerResources resources;
  resources.lifeline = socket;
  resources.deviceName = bootstrap.getDeviceName();
  resources.options = bootstrap.getOptions();
  resources.restart = bootstrap.getRestart();
  resources.sandbox = bootstrap.getSandbox();
  resources.faultInjection = bootstrap.getFaultInjection();
  resources.requestDoorbell = std::move(fds.requestDoorbell);
  resources.replyDoorbell = std::move(fds.replyDoorbell);
  resources.queueDoorbells = std::move(fds.queueDoorbells);
  resources.interrupts = std::move(fds.interrupts);
  resources.backends = std::move(fds.backends);
  resources.barMemory = std::move(fds.barMemory);
  try {
    resources.memory = std::make_unique<GuestMemory>(std::move(fds.memory), bootstrapRamRegions(bootstrap));
  } catch (const std::invalid_argument& error) {
    throw ProtocolError(std::string("bootstrap RAM layout: ") + error.what());
  }
  resources.rings.emplace(RingSegment::open(std::move(fds.rings)));
  resources.state.emplace(StateSegment::open(std::move(fds.state)));
  if (fds.inputSegment) resources.input.emplace(InputSegment::open(std::move(fds.inputSegment)));
  resources.inputDoorbell = std::move(fds.inputDoorbell);
  if (fds.pointerSegment) resources.pointer.emplace(InputSegment::open(std::move(fds.pointerSegment)));
  resources.pointerDoorbell = std::move(fds.pointerDoorbell);
  return resources;
}

}  // namespace cellvisor
