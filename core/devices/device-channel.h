// The core's side of a device server: synchronous requests over the shared
// rings. `call` is the slow path (config space, non-doorbell registers): it
// waits for the reply. Whoever supervises the server (vmmd or a standalone
// core) is not involved: a restarted server announces itself by bumping the
// generation in the state segment, and the call re-sends what was in flight.
// The request ledger in the ring segment makes that re-send safe: a server
// executes only the request the core still waits for, and answers a second
// copy of one it executed from its record (see RequestLedger).
#pragma once

#include <chrono>
#include <functional>
#include <mutex>
#include <optional>
#include <stdexcept>

#include "host/device-resources.h"
#include "host/device-timeouts.h"
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
  // The timeout counts from the call, including a wait for another call
  // that holds the channel.
  template <typename Fill>
  ReceivedMessage call(Fill&& fill, std::chrono::milliseconds timeout = SERVER_REPLY_TIMEOUT) {
    capnp::MallocMessageBuilder builder(128);
    fill(builder.initRoot<proto::Request>());
    return *exchange(builder, timeout, Resend::TO_SUCCESSOR);
  }

  // Quiesce (in-flight requests finish, nothing new is taken), within
  // QUIESCE_TIMEOUT. A pause is meant for the instance that runs now: if it
  // is replaced before it answers, the pause is not passed on (the
  // successor must run) and the device counts as quiesced. Throws
  // DeviceUnavailable when the server did not answer in time.
  void pause();
  void resume();

  DeviceResources& resources() { return resources_; }
  const std::string& deviceName() const { return resources_.deviceName(); }
  uint16_t queueCount() const { return resources_.queueCount(); }
  uint16_t vectorCount() const { return resources_.vectorCount(); }
  int queueDoorbell(uint16_t queue) const { return resources_.queueDoorbell(queue); }
  int interrupt(uint16_t vector) const { return resources_.interrupt(vector); }

 private:
  enum class Resend { TO_SUCCESSOR, NEVER };
  // The reply; nothing when the server was replaced before answering and
  // `resend` is NEVER.
  std::optional<ReceivedMessage> exchange(capnp::MessageBuilder& request, std::chrono::milliseconds timeout,
                                          Resend resend);

  DeviceResources& resources_;
  MessageChannel channel_;
  std::function<bool()> serverGone_;
  std::timed_mutex callMutex_;  // One request in flight; replies come in order.
  uint64_t sequence_ = 0;
};

}  // namespace cellvisor
