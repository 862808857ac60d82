// The device server's runtime, the same for every PCI function it serves: an
// event loop (libuv) that answers the core's requests from the ring, turns
// doorbell eventfds into the function's doorbells, raises its MSI-X vectors
// through the interrupt eventfds, keeps the state segment's header, and
// watches whatever fds the device model adds (its I/O completions).
#pragma once

#include <uv.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "device.capnp.h"
#include "proto/message-channel.h"
#include "servers/runtime/device-stats.h"
#include "servers/runtime/pci-function.h"
#include "servers/runtime/server-resources.h"

namespace cellvisor {

class DeviceServer {
 public:
  // How run() ends when the server cannot go on (any exit restarts it).
  static constexpr int EXIT_PROTOCOL_ERROR = 3;
  static constexpr int EXIT_BACKEND_FAILED = 4;

  // Checks the handed fds against the function's layout (throws before
  // anything is touched when they do not fit), then starts the function.
  DeviceServer(std::string serverName, ServerResources& resources, PciFunction& function);
  ~DeviceServer();

  DeviceStats& stats() { return stats_; }
  uv_loop_t* loop() { return &loop_; }
  // Calls `ready` on the loop whenever `fd` is readable.
  void watch(int fd, std::function<void()> ready);
  // Stops (false) or resumes (true) calling back for a watched fd: e.g. a
  // network device stops reading its tap while the guest gives it no
  // receive buffers, leaving the backlog to the kernel.
  void setWatching(int fd, bool watching);
  // After handling a kick, keep polling queues and completions this long
  // before sleeping again (0: never poll). Saves two wakeups per request
  // under load, at the price of CPU time.
  void setPollMicros(uint32_t micros) { pollMicros_ = micros; }
  // After work that did not come from a kick (a frame from a tap): poll for
  // the configured time, as after a kick.
  void busyPoll();
  // Test-only: the device model's own faults (e.g. in its backend), tried
  // when the spawner asked for one this runtime does not know. `inject`
  // returns what happened, for the ping's reply ("" for a fault it does not
  // know either).
  void setFaultInjector(std::function<std::string(const std::string& fault)> inject) {
    faultInjector_ = std::move(inject);
  }
  // Runs until the core closes the channel or breaks the protocol; returns
  // the process exit status.
  int run();

 private:
  struct Watch {
    uv_poll_t poll;
    DeviceServer* server;
    int fd;
    std::function<void()> ready;
  };
  static void readable(uv_poll_t* poll, int status, int events);
  // Leaves the loop; run() returns `exitStatus` (the first one given).
  void stop(int exitStatus, const std::string& why);
  void serveRequests();
  void describeLayout(proto::HelloReply::Builder hello) const;
  // The request ledger's server side (proto/ring-segment.h).
  void recordReply(RequestLedger& ledger, uint64_t sequence, capnp::MessageBuilder& reply);
  bool resendRecordedReply(RequestLedger& ledger);
  void kicked(uint16_t doorbell);
  std::string injectFault();
  void signalVector(uint16_t vector);

  std::string serverName_;
  ServerResources& resources_;
  PciFunction& function_;
  FunctionLayout layout_;
  DeviceStats stats_;
  uv_loop_t loop_{};
  std::unique_ptr<MessageChannel> channel_;
  std::vector<std::unique_ptr<Watch>> watches_;
  std::function<std::string(const std::string&)> faultInjector_;
  bool paused_ = false;
  uint32_t pollMicros_ = 0;
  int exitStatus_ = 0;
};

}  // namespace cellvisor
