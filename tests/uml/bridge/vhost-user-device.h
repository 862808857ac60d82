// The device side of one vhost-user socket, as User-Mode Linux's virtio_uml
// driver speaks it (vhost-user with only the back-channel protocol feature:
// eventfd kicks, pipe calls, one or two memory regions). It owns what the
// driver hands over: the RAM file, mapped as a GuestMemory, and each
// queue's layout, kick and call fds, and serves the queues with the device
// servers' own SplitVirtqueue.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "base/guest-memory.h"
#include "base/unique-fd.h"
#include "servers/runtime/virtqueue.h"

namespace cellvisor::uml {

class VhostUserDevice {
 public:
  static constexpr size_t MAX_QUEUES = 2;

  struct Queue {
    VirtqueueLayout layout;
    VirtqueuePosition position{};
    UniqueFd kick;
    UniqueFd call;
    std::unique_ptr<SplitVirtqueue> ring;  // Once size, addresses and kick are known.
  };

  // `connection`: the accepted socket; `features`: the virtio features
  // offered.
  VhostUserDevice(UniqueFd connection, uint64_t features, std::string name);

  int fd() const { return connection_.get(); }
  // Reads and answers one message. False when the driver hung up; throws
  // std::runtime_error for a message this side cannot honour.
  bool handleMessage();

  // Called once the driver's RAM has arrived (SET_MEM_TABLE).
  std::function<void(GuestMemory&)> onMemory;

  GuestMemory* memory() { return memory_.get(); }
  Queue& queue(size_t index) { return queues_.at(index); }
  // Tells the driver its used ring moved (writes its call pipe).
  void notify(size_t index);
  // Empties queue `index`'s kick eventfd.
  void drainKick(size_t index);

 private:
  struct Region {
    uint64_t guestPhysical;
    uint64_t size;
    uint64_t userAddress;
  };
  void setMemTable(const uint8_t* payload, uint32_t size, std::vector<UniqueFd>& fds);
  std::optional<uint64_t> toGuestPhysical(uint64_t userAddress) const;
  void startIfReady(size_t index);
  void reply(uint32_t request, const void* payload, uint32_t size);

  UniqueFd connection_;
  UniqueFd backChannel_;
  uint64_t features_;
  std::string name_;
  std::unique_ptr<GuestMemory> memory_;
  std::vector<Region> regions_;
  std::array<Queue, MAX_QUEUES> queues_;
  std::array<std::array<uint64_t, 3>, MAX_QUEUES> userRings_{};  // desc, used, avail
};

}  // namespace cellvisor::uml
