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

// An input link (proto/input-segment.h) and both ends of its pipe. Shared
// by the resources of its two ends where neither is the core: a display's
// pointer link to a tablet is made with the tablet's resources.
struct InputLink {
  InputSegment segment;
  UniqueFd readEnd;
  UniqueFd writeEnd;  // Absent where only the reader's end was handed over (a core from vmmd).
  static std::shared_ptr<InputLink> create();
};

// A device's part in the input links.
enum class InputRole : uint8_t {
  NONE,
  SOURCE,  // A display: its clients' keys and pointer go to the core (the pointer to a tablet, if linked).
  POINTER_SINK,  // A tablet (xHCI): reads the pointer a display sends it.
};

class DeviceResources {
 public:
  // Fresh resources for a device with `queues` doorbells, `vectors` vectors,
  // `barMemoryBytes` of shared BAR memory (0: none) and its input link.
  DeviceResources(std::string deviceName, uint16_t queues, uint16_t vectors, uint64_t barMemoryBytes = 0,
                  InputRole input = InputRole::NONE);
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
  // The core's ends of the channel's doorbells (proto/doorbell-pipe.h):
  // it rings requests and waits on replies.
  int requestDoorbell() const { return requestRing_.get(); }
  int replyDoorbell() const { return replyWait_.get(); }
  // The server's ends, where these resources were made here (tests that
  // play the server). Throw std::logic_error otherwise.
  int serverRequestDoorbell() const;
  int serverReplyDoorbell() const;
  int queueDoorbell(uint16_t queue) const { return queueDoorbells_.at(queue).get(); }
  int interrupt(uint16_t vector) const { return interrupts_.at(vector).get(); }
  // The input link the core reads (a display's), and the read end of its
  // pipe; nullptr (and -1) when the device has none: a tablet's link is read
  // by its server, not the core.
  const InputSegment* coreInputLink() const {
    return input_ && !serverReadsInput_ ? &input_->segment : nullptr;
  }
  int coreInputDoorbell() const { return coreInputLink() != nullptr ? input_->readEnd.get() : -1; }
  InputRole inputRole() const { return role_; }
  // A display sends its pointer to `tablet` (a POINTER_SINK) instead of the
  // core. Before the display's server first starts.
  void sendPointerTo(const DeviceResources& tablet);

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
  // Each doorbell a pipe: the core rings requests and waits on replies, the
  // server the reverse. Adopted resources (a core's) hold only the core's
  // ends; the supervisor's hold all four.
  UniqueFd requestRing_;  // Core: write end.
  UniqueFd requestWait_;  // Server: read end.
  UniqueFd replyRing_;    // Server: write end (the supervisor's markFailed rings it too).
  UniqueFd replyWait_;    // Core: read end.
  std::vector<UniqueFd> queueDoorbells_;
  std::vector<UniqueFd> interrupts_;
  UniqueFd barMemory_;
  InputRole role_ = InputRole::NONE;
  std::shared_ptr<InputLink> input_;
  bool serverReadsInput_ = false;       // A tablet's link: the server holds the read end.
  std::shared_ptr<InputLink> pointer_;  // A display's link to a tablet.
};

// Resources are made one device at a time; this connects them once all
// are made, before any server starts: every display's pointer goes to the
// first tablet, when the VM has one (as bhyve's console prefers an
// absolute pointer to the PS/2 mouse).
void linkInputDevices(const std::vector<DeviceResources*>& devices);

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
