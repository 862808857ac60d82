// The core's side of a device server: synchronous requests over the shared
// rings. `call` is the slow path (config space, non-doorbell registers): it
// waits for the reply. Whoever supervises the server (vmmd or a standalone
// core) is not involved: a restarted server announces itself by bumping the
// generation in the state segment, and the call re-sends what was in flight.
#pragma once

#include <chrono>
#include <functional>
#include <mutex>
#include <stdexcept>

#include "core/devices/device-resources.h"
#include "proto/message-channel.h"

namespace cellvisor {

class DeviceUnavailable : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class DeviceChannel {
 public:
  explicit DeviceChannel(DeviceResources& resources);

  // Says whether the server is gone for good (no supervisor will restart it):
  // a call then fails at once instead of waiting for a successor.
  void setServerGone(std::function<bool()> gone) { serverGone_ = std::move(gone); }

  // Sends one request and waits for its reply. While the server is down and
  // being restarted the call waits (bounded by `timeout`) and re-sends to the
  // new instance. Throws DeviceUnavailable when no reply comes in time, the
  // device has failed, or the server breaks the protocol.
  template <typename Fill>
  ReceivedMessage call(Fill&& fill, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    capnp::MallocMessageBuilder builder(128);
    fill(builder.initRoot<proto::Request>());
    return exchange(builder, timeout);
  }

  // Quiesce (in-flight requests finish, nothing new is taken) and go on.
  void pause();
  void resume();

  DeviceResources& resources() { return resources_; }
  const std::string& deviceName() const { return resources_.deviceName(); }
  uint16_t queueCount() const { return resources_.queueCount(); }
  uint16_t vectorCount() const { return resources_.vectorCount(); }
  int queueDoorbell(uint16_t queue) const { return resources_.queueDoorbell(queue); }
  int interrupt(uint16_t vector) const { return resources_.interrupt(vector); }

 private:
  ReceivedMessage exchange(capnp::MessageBuilder& request, std::chrono::milliseconds timeout);

  DeviceResources& resources_;
  MessageChannel channel_;
  std::function<bool()> serverGone_;
  std::mutex callMutex_;  // One request in flight; replies come in order.
  uint64_t sequence_ = 0;
};

}  // namespace cellvisor
