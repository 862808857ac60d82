// A device server process seen from the side that spawned it: the process,
// its request/reply channel, and the eventfds the core wires into KVM
// (doorbells as ioeventfds, interrupts as irqfds). `call` is synchronous: the
// slow path (config space, non-doorbell registers) waits for the reply.
#pragma once

#include <sys/types.h>

#include <atomic>
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
  std::string policy;             // e.g. "virtio-blk.policy", for reports
  std::string sandbox = "enforce";  // off | log | enforce
  std::string faultInjection;     // tests only
};

class DeviceServerProcess {
 public:
  // Starts the server (fresh exec, empty environment, bootstrap socket on
  // fd 3) and hands it its resources.
  DeviceServerProcess(ServerLaunch launch, GuestMemory& memory);

  // Crash-restart, driven by the supervisor: a new instance gets the same
  // fds and the same state segment and continues where the last one stopped.
  // reap() collects the dead process and describes how it ended.
  std::string reap();
  void restart();
  // Live upgrade / restart on request: quiesce, switch binary (if given),
  // end this instance; the supervisor starts the next one at once and does
  // not count it as a crash. Throws if the binary is not executable.
  void requestRestart(const std::string& binary);
  // True once after a requestRestart()-caused exit.
  bool takeRequestedExit() { return requestedExit_.exchange(false); }
  // Snapshot and restore through the state segment: pause() quiesces the
  // server (in-flight requests finish, nothing new is taken), saveState()
  // copies the segment, resume() lets it go on. restoreState() loads a saved
  // copy and restarts the server on it (e.g. a fresh process, a new binary).
  void pause();
  void resume();
  std::vector<uint8_t> saveState() const;
  void restoreState(const std::vector<uint8_t>& saved);

  // Past the crash-loop limit: the guest is told (DEVICE_NEEDS_RESET) and
  // register accesses answer as if nobody were there.
  void markFailed();
  bool failed() const { return failed_; }
  // Whether a supervisor restarts this server when it dies; if not, a call
  // to a dead server fails at once instead of waiting for a new instance.
  void setSupervised(bool supervised) { supervised_ = supervised; }
  // A pidfd that becomes readable when the current instance exits.
  int pidfd() const { return pidfd_.get(); }
  uint32_t restarts() const { return restarts_; }
  std::string lastExit() const;
  // The syscall that broke the sandbox last, empty if none ever did.
  std::string lastViolation() const;
  const ServerLaunch& launch() const { return launch_; }
  ~DeviceServerProcess();
  DeviceServerProcess(const DeviceServerProcess&) = delete;
  DeviceServerProcess& operator=(const DeviceServerProcess&) = delete;

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

  pid_t pid() const { return pid_.load(); }
  const std::string& deviceName() const { return launch_.deviceName; }
  int queueDoorbell(uint16_t queue) const { return queueDoorbells_.at(queue).get(); }
  int interrupt(uint16_t vector) const { return interrupts_.at(vector).get(); }
  uint16_t queueCount() const { return launch_.queues; }
  uint16_t vectorCount() const { return launch_.vectors; }

 private:
  ReceivedMessage exchange(capnp::MessageBuilder& request, std::chrono::milliseconds timeout);
  void spawn(bool restart);
  bool exited() const;

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
  uint64_t sequence_ = 0;
  mutable std::mutex processMutex_;  // pid, pidfd and exit bookkeeping.
  std::atomic<pid_t> pid_{-1};
  UniqueFd pidfd_;
  std::atomic<uint32_t> generation_{0};  // Bumped by every (re)start.
  std::atomic<bool> failed_{false};
  std::atomic<bool> supervised_{false};
  std::atomic<bool> requestedExit_{false};
  uint32_t restarts_ = 0;
  std::string lastExit_;
  std::string lastViolation_;
  // The first instance's mount, network, IPC and UTS namespaces, kept open so
  // restarts join them instead of paying for new ones (a network namespace
  // costs milliseconds to create).
  // Our end of the current instance's bootstrap socket, held open for its
  // life: when the core dies, the server sees the hang-up and exits (a PID
  // namespace's init ignores the parent-death signal).
  UniqueFd lifeline_;
  UniqueFd mountNamespace_;
  UniqueFd netNamespace_;
  UniqueFd ipcNamespace_;
  UniqueFd utsNamespace_;
};

class DeviceUnavailable : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Where a server binary lives: next to the core in the build tree, or in
// libexec when installed. Throws std::runtime_error if not found.
std::string findServerBinary(const std::string& name);

}  // namespace cellvisor
