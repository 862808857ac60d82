// The virtio-blk device model (virtio 1.x, 5.2): its config space and its
// requests, served by a BlockBackend. Hostile requests (bad addresses, wrong
// directions, sectors past the end, writes to a read-only disk, oversize
// transfers) complete with IOERR or UNSUPP; the device keeps serving.
#pragma once

#include <sys/uio.h>

#include <array>
#include <memory>
#include <vector>

#include "servers/runtime/block-backend.h"
#include "servers/runtime/device-stats.h"
#include "servers/runtime/virtio-device.h"
#include "servers/runtime/virtio-transport.h"
#include "servers/virtio-blk/blk-options.h"

namespace cellvisor {

class BlkDevice : public VirtioDevice {
 public:
  static constexpr uint32_t SEG_MAX = 254;
  static constexpr uint32_t SEGMENT_SIZE_MAX = 1u << 20;
  static constexpr uint32_t MAX_DISCARD_SEGMENTS = 32;

  BlkDevice(const BlkOptions& options, BlockBackend& backend);

  // Connects the model to its transport and counters; on a restart, takes
  // up the requests the previous instance left in flight.
  void attach(VirtioTransport& transport, DeviceStats& stats);
  // Readable when backend operations have completed; then call onCompletions().
  int completionFd() const { return backend_.completionFd(); }
  void onCompletions();
  // Blocks until no backend operation is outstanding (reset, pause, tests).
  void drain();

  uint16_t deviceId() const override { return 2; }
  uint8_t pciClass() const override { return 0x01; }
  uint8_t pciSubclass() const override { return 0x80; }
  uint64_t deviceFeatures() const override;
  uint16_t queueCount() const override { return options_.queues; }
  uint16_t queueMaxSize() const override { return options_.queueSize; }
  void readConfig(uint32_t offset, std::span<uint8_t> data) override;
  void writeConfig(uint32_t offset, std::span<const uint8_t> data) override;
  void activate(VirtioTransport& transport) override;
  void reset() override;
  void queueNotified(uint16_t queue) override;
  bool poll() override;
  void quiesce() override { drain(); }

 private:
  struct Request {
    bool busy = false;
    uint8_t* status = nullptr;
    uint32_t written = 0;     // Bytes the device wrote to driver buffers (incl. status).
    uint32_t operations = 0;  // Backend operations still outstanding.
    bool failed = false;
    std::vector<iovec> iov;
    uint64_t bytes = 0;
    bool isRead = false;
  };

  void handle(uint16_t queue, const DescriptorChain& chain);
  // Returns the status to complete with now, or -1 when the backend took it.
  int start(uint16_t queue, const DescriptorChain& chain, Request& request);
  void finish(uint16_t queue, uint16_t head, uint8_t status);
  void resubmitInflight();
  // A backend tag: the reset generation, the queue and the head. A
  // completion from before a reset carries an older generation and touches
  // nothing, whatever request sits in its slot now.
  uint64_t tagFor(uint16_t queue, uint16_t head) const {
    return (uint64_t{generation_} << 32) | (uint64_t{queue} << 16) | head;
  }

  BlkOptions options_;
  BlockBackend& backend_;
  DeviceStats ownStats_;
  DeviceStats* stats_ = &ownStats_;  // The server's, once attached.
  uint32_t generation_ = 0;          // Bumped by every reset.
  VirtioTransport* transport_ = nullptr;
  std::array<uint8_t, 60> config_{};
  bool writeback_ = true;
  std::vector<std::vector<Request>> requests_;  // [queue][head]: a head is in flight at most once.
  DescriptorChain chain_;                       // Reused for every pop.
};

}  // namespace cellvisor
