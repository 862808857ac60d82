#include "core/devices/device-channel.h"

namespace cellvisor {

DeviceChannel::DeviceChannel(DeviceResources& resources)
    : resources_(resources),
      channel_(resources.rings().requestWriter(), resources.rings().replyReader(),
               resources.requestDoorbell(), resources.replyDoorbell()) {}

void DeviceChannel::pause() {
  capnp::MallocMessageBuilder builder(128);
  builder.initRoot<proto::Request>().setPause();
  auto reply = exchange(builder, QUIESCE_TIMEOUT, Resend::NEVER);
  if (reply && !reply->root<proto::Reply>().isDone())
    throw DeviceUnavailable(deviceName() + ": pause refused");
}

void DeviceChannel::resume() {
  auto reply = call([](proto::Request::Builder request) { request.setResume(); });
  if (!reply.root<proto::Reply>().isDone()) throw DeviceUnavailable(deviceName() + ": resume refused");
}

std::optional<ReceivedMessage> DeviceChannel::exchange(capnp::MessageBuilder& request,
                                                       std::chrono::milliseconds timeout, Resend resend) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::unique_lock lock(callMutex_, std::defer_lock);
  if (!lock.try_lock_until(deadline)) {
    throw DeviceUnavailable(deviceName() + ": busy: an earlier request is still waiting for its server");
  }
  if (resources_.failed()) throw DeviceUnavailable(deviceName() + ": device has failed");
  uint64_t sequence = ++sequence_;
  request.getRoot<proto::Request>().setSequence(sequence);
  // Only this request may be executed now; when we stop waiting for it
  // (answered or not), no copy of it left in the ring may run later.
  std::atomic<uint64_t>& awaited = resources_.rings().rings().ledger.awaited;
  awaited.store(sequence, std::memory_order_release);
  struct GiveUp {
    std::atomic<uint64_t>& awaited;
    ~GiveUp() { awaited.store(0, std::memory_order_release); }
  } giveUp{awaited};
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
    } catch (const kj::Exception& error) {
      throw DeviceUnavailable(deviceName() + ": malformed reply: " + error.getDescription().cStr());
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
      if (auto reply = ourReply()) return reply;
      if (resources_.failed()) throw DeviceUnavailable(deviceName() + ": device has failed");
      if (serverGone_ && serverGone_()) throw DeviceUnavailable(deviceName() + ": its server exited");
      if (remaining().count() <= 0) throw DeviceUnavailable(deviceName() + ": no reply from its server");
      channel_.waitForDoorbell(std::min(remaining(), std::chrono::milliseconds(20)));
    }
    if (auto reply = ourReply()) return reply;
    if (resend == Resend::NEVER) return std::nullopt;
  }
}

}  // namespace cellvisor
