#include "core/devices/device-channel.h"

namespace cellvisor {

DeviceChannel::DeviceChannel(DeviceResources& resources)
    : resources_(resources),
      channel_(resources.rings().requestWriter(), resources.rings().replyReader(),
               resources.requestDoorbell(), resources.replyDoorbell()) {}

void DeviceChannel::pause() {
  auto reply = call([](proto::Request::Builder request) { request.setPause(); });
  if (!reply.root<proto::Reply>().isDone()) throw DeviceUnavailable(deviceName() + ": pause refused");
}

void DeviceChannel::resume() {
  auto reply = call([](proto::Request::Builder request) { request.setResume(); });
  if (!reply.root<proto::Reply>().isDone()) throw DeviceUnavailable(deviceName() + ": resume refused");
}

ReceivedMessage DeviceChannel::exchange(capnp::MessageBuilder& request, std::chrono::milliseconds timeout) {
  std::lock_guard lock(callMutex_);
  if (resources_.failed()) throw DeviceUnavailable(deviceName() + ": device has failed");
  uint64_t sequence = ++sequence_;
  request.getRoot<proto::Request>().setSequence(sequence);
  auto deadline = std::chrono::steady_clock::now() + timeout;
  auto remaining = [&] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  };
  // Replies carrying an older sequence are leftovers (e.g. the answer to a
  // request that was re-sent) and are skipped.
  auto ourReply = [&]() -> std::optional<ReceivedMessage> {
    try {
      while (auto reply = channel_.tryReceive()) {
        if (reply->root<proto::Reply>().getSequence() == sequence) return std::move(*reply);
      }
    } catch (const ProtocolError& error) {
      throw DeviceUnavailable(deviceName() + ": " + error.what());
    }
    return std::nullopt;
  };
  for (;;) {
    uint32_t generation = resources_.serverGeneration();
    if (!channel_.send(request, std::max(remaining(), std::chrono::milliseconds(1)))) {
      throw DeviceUnavailable(deviceName() + ": request ring stayed full");
    }
    // Wait for our reply. If a new server instance takes over meanwhile, the
    // request may have died with the old one: send it again.
    while (generation == resources_.serverGeneration()) {
      if (auto reply = ourReply()) return std::move(*reply);
      if (resources_.failed()) throw DeviceUnavailable(deviceName() + ": device has failed");
      if (serverGone_ && serverGone_()) throw DeviceUnavailable(deviceName() + ": its server exited");
      if (remaining().count() <= 0) throw DeviceUnavailable(deviceName() + ": no reply from its server");
      channel_.waitForDoorbell(std::min(remaining(), std::chrono::milliseconds(20)));
    }
    if (auto reply = ourReply()) return std::move(*reply);
  }
}

}  // namespace cellvisor
