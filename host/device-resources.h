// What one device server works with, apart from guest RAM and its backend:
// the request/reply ring segment, the state segment, the doorbell eventfds
// (one per queue, wired into KVM as ioeventfds) and the interrupt eventfds
// (one per MSI-X vector, irqfds). Whoever supervises the server creates them
// (vmmd, or a standalone vmm-core); the core adopts vmmd's over a socket.
// Every instance of the server gets the same set, which is what lets a
// restarted server carry on where the last one stopped.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/guest-memory.h"
#include "base/unique-fd.h"
#include "device.capnp.h"
#include "proto/bootstrap-fds.h"
#include "proto/fd-passing.h"
#include "proto/input-segment.h"
#include "proto/ring-segment.h"
#include "proto/state-segment.h"

namespace cellvisor {

class DeviceResources {
 public:
  // Fresh resources for a device with `queues` doorbells, `vectors` vectors,
  // `barMemoryBytes` of shared BAR memory (0: none) and, for a display, an
  // input link.
  DeviceResources(std::string deviceName, uint16_t queues, uint16_t vectors, uint64_t barMemoryBytes = 0,
                  bool inputLink = false);
  // Takes over the resources of an unpacked bootstrap message (the core,
  // from vmmd); guest RAM and the backend stay in `fds`.
  DeviceResources(std::string deviceName, BootstrapFds& fds);

  const std::string& deviceName() const { return deviceName_; }
  uint16_t queueCount() const { return static_cast<uint16_t>(queueDoorbells_.size()); }
  uint16_t vectorCount() const { return static_cast<uint16_t>(interrupts_.size()); }
  RingSegment& rings() { return rings_; }
  StateHeader& stateHeader() const { return state_.header(); }
  // The device's body of the segment (tests that stage a server's state).
  template <typename Body>
  Body& stateBody() const {
    return state_.body<Body>();
  }
  // The whole segment, for snapshots.
  std::span<uint8_t> stateBytes() const { return state_.bytes(); }
  // -1 when the device has no shared BAR memory.
  int barMemory() const { return barMemory_ ? barMemory_.get() : -1; }
  int requestDoorbell() const { return requestDoorbell_.get(); }
  int replyDoorbell() const { return replyDoorbell_.get(); }
  int queueDoorbell(uint16_t queue) const { return queueDoorbells_.at(queue).get(); }
  int interrupt(uint16_t vector) const { return interrupts_.at(vector).get(); }
  // nullptr (and -1) when the device has no input link. The doorbell is
  // the read end of the link's pipe: the core's.
  const InputSegment* inputLink() const { return input_ ? &*input_ : nullptr; }
  int inputDoorbell() const { return inputDoorbell_ ? inputDoorbell_.get() : -1; }

  // Who a bootstrap message is for: the input link's pipe has an end each.
  enum class Recipient { SERVER, CORE };

  // Fills the device's part of a bootstrap message (name, counts, RAM
  // layout, the role of each fd) and returns the fds to send with it, guest
  // RAM first, the `backends` (disks, a tap) last, in their order.
  std::vector<int> describe(proto::Bootstrap::Builder bootstrap, int memfd,
                            const std::vector<RamRegion>& regions, std::span<const int> backends = {},
                            Recipient recipient = Recipient::SERVER) const;

  // Past the crash-loop limit: marks the device failed for the core and
  // tells the guest in the device's own terms, as its server described them
  // in the state header (virtio: DEVICE_NEEDS_RESET plus a configuration
  // interrupt), which needs no server.
  void markFailed();
  bool failed() const;
  // Bumped by every server instance when it takes over (the core re-sends
  // a request that was in flight when the generation changes).
  uint32_t serverGeneration() const;

 private:
  std::string deviceName_;
  RingSegment rings_;
  StateSegment state_;
  UniqueFd requestDoorbell_;
  UniqueFd replyDoorbell_;
  std::vector<UniqueFd> queueDoorbells_;
  std::vector<UniqueFd> interrupts_;
  UniqueFd barMemory_;
  std::optional<InputSegment> input_;
  UniqueFd inputDoorbell_;  // The pipe's read end (the core's)...
  UniqueFd inputBell_;      // ...and its write end (the server's), where we made the pipe.
};

// What vmmd sends a core for each device it serves: the device's resources
// and the guest RAM they refer to. Throws ProtocolError (or
// std::system_error when the socket fails).
struct AdoptedDevice {
  std::unique_ptr<DeviceResources> resources;
  UniqueFd memory;
  std::vector<RamRegion> regions;
};
AdoptedDevice receiveDeviceResources(int socket);
// The sending side: `resources` and guest RAM (no backend: a core never
// touches a disk or a tap).
void sendDeviceResources(int socket, const DeviceResources& resources, int memfd,
                         const std::vector<RamRegion>& regions);

}  // namespace cellvisor
