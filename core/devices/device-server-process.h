// A device server process seen from the side that spawned it: the process,
// its request/reply channel, and the eventfds the core wires into KVM
// (doorbells as ioeventfds, interrupts as irqfds). `call` is synchronous: the
// slow path (config space, non-doorbell registers) waits for the reply.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/base/unique-fd.h"
#include "device.capnp.h"
#include "proto/message-channel.h"
#include "proto/ring-segment.h"
#include "servers/runtime/state-segment.h"

namespace cellvisor {

class GuestMemory;

struct ServerLaunch {
  std::string binary;
  std::string deviceName;
  std::string options;
  UniqueFd backend;
  uint16_t queues = 1;
  uint16_t vectors = 2;
};

class DeviceServerProcess {
 public:
  // Starts the server (fresh exec, empty environment, bootstrap socket on
  // fd 3) and hands it its resources.
  DeviceServerProcess(ServerLaunch launch, GuestMemory& memory);
  ~DeviceServerProcess();
  DeviceServerProcess(const DeviceServerProcess&) = delete;
  DeviceServerProcess& operator=(const DeviceServerProcess&) = delete;

  // Sends one request and waits for its reply. Throws DeviceUnavailable when
  // the server does not answer in time or breaks the protocol.
  template <typename Fill>
  ReceivedMessage call(Fill&& fill, std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    capnp::MallocMessageBuilder builder(128);
    fill(builder.initRoot<proto::Request>());
    return exchange(builder, timeout);
  }

  pid_t pid() const { return pid_; }
  const std::string& deviceName() const { return launch_.deviceName; }
  int queueDoorbell(uint16_t queue) const { return queueDoorbells_.at(queue).get(); }
  int interrupt(uint16_t vector) const { return interrupts_.at(vector).get(); }
  uint16_t queueCount() const { return launch_.queues; }
  uint16_t vectorCount() const { return launch_.vectors; }
  // Waits for the process to exit (after the channel is closed or on kill).
  int wait();

 private:
  ReceivedMessage exchange(capnp::MessageBuilder& request, std::chrono::milliseconds timeout);

  ServerLaunch launch_;
  GuestMemory& memory_;
  RingSegment rings_;
  StateSegment state_;
  UniqueFd requestDoorbell_;
  UniqueFd replyDoorbell_;
  std::vector<UniqueFd> queueDoorbells_;
  std::vector<UniqueFd> interrupts_;
  std::optional<MessageChannel> channel_;
  std::mutex callMutex_;  // One request in flight; replies come in order.
  pid_t pid_ = -1;
  bool exited_ = false;
  int status_ = 0;
};

class DeviceUnavailable : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Where a server binary lives: next to the core in the build tree, or in
// libexec when installed. Throws std::runtime_error if not found.
std::string findServerBinary(const std::string& name);

}  // namespace cellvisor
