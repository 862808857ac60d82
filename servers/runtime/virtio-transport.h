// The virtio 1.x PCI transport, implemented once for every virtio server:
// the PCI function (identity, capabilities, BAR0), the common configuration
// registers, ISR, notify area, device config window, MSI-X table and PBA, and
// the queues. All guest-programmed state lives in the state segment.
//
// BAR0 (64-bit memory, 32 KiB):
//   0x0000 common config   0x1000 ISR           0x2000 device config
//   0x3000 notify (4 bytes per queue)           0x4000 MSI-X table
//   0x5000 MSI-X PBA
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <vector>

#include "pci/config-space.h"
#include "servers/runtime/state-segment.h"
#include "servers/runtime/virtio-device.h"
#include "servers/runtime/virtqueue.h"

namespace cellvisor {

class GuestMemory;

struct MsixUpdate {
  uint16_t vector;
  uint64_t address;
  uint32_t data;
};

class VirtioTransport {
 public:
  static constexpr uint64_t BAR0_SIZE = 0x8000;
  static constexpr uint64_t COMMON = 0x0000;
  static constexpr uint64_t ISR = 0x1000;
  static constexpr uint64_t DEVICE_CONFIG = 0x2000;
  static constexpr uint64_t NOTIFY = 0x3000;
  static constexpr uint32_t NOTIFY_MULTIPLIER = 4;
  static constexpr uint64_t MSIX_TABLE = 0x4000;
  static constexpr uint64_t MSIX_PBA = 0x5000;
  static constexpr uint16_t NO_VECTOR = 0xffff;

  // Feature bits the transport itself offers.
  static constexpr uint64_t F_INDIRECT_DESC = 1ull << 28;
  static constexpr uint64_t F_EVENT_IDX = 1ull << 29;
  static constexpr uint64_t F_VERSION_1 = 1ull << 32;

  // `signalVector(v)` raises MSI-X vector v (writes its irqfd).
  VirtioTransport(VirtioDevice& device, GuestMemory& memory, VirtioState& state,
                  std::function<void(uint16_t)> signalVector);

  // MSI-X vectors: one for configuration changes, one per queue.
  static uint16_t vectorsFor(const VirtioDevice& device) {
    return static_cast<uint16_t>(device.queueCount() + 1);
  }
  uint16_t vectorCount() const { return vectorsFor(device_); }

  uint32_t configRead(uint16_t offset, uint8_t size);
  std::vector<MsixUpdate> configWrite(uint16_t offset, uint8_t size, uint32_t value);
  uint64_t barRead(uint8_t bar, uint64_t offset, uint8_t size);
  std::vector<MsixUpdate> barWrite(uint8_t bar, uint64_t offset, uint8_t size, uint64_t value);
  // A doorbell eventfd fired for `queue`.
  void doorbell(uint16_t queue);
  // While paused no request is taken from any queue, whoever asks.
  void setPaused(bool paused) { paused_ = paused; }
  bool paused() const { return paused_; }

  // For device models, once activated.
  bool featureNegotiated(uint64_t bit) const { return (state_.driverFeatures & bit) != 0; }
  SplitVirtqueue* queue(uint16_t index);
  // Takes the next request, recording it as in flight.
  SplitVirtqueue::Pop pop(uint16_t queue, DescriptorChain& chain);
  // Completes a request and raises the queue's interrupt if the driver wants it.
  void complete(uint16_t queue, uint16_t head, uint32_t writtenBytes);
  // Requests of `queue` taken but not completed (after a restart), oldest first.
  std::vector<uint16_t> inflight(uint16_t queue) const;
  // The ring is broken beyond repair: tell the driver (DEVICE_NEEDS_RESET).
  void markBroken();
  bool live() const { return (state_.status & DRIVER_OK) && !(state_.status & NEEDS_RESET); }
  // All MSI-X vectors as programmed, for a core (re)connecting to us.
  std::vector<MsixUpdate> msixVectors() const;

  static constexpr uint8_t DRIVER_OK = 4;
  static constexpr uint8_t FEATURES_OK = 8;
  static constexpr uint8_t NEEDS_RESET = 64;

 private:
  void initializeConfigSpace();
  uint64_t offeredFeatures() const;
  uint64_t commonRead(uint64_t offset, uint8_t size);
  void commonWrite(uint64_t offset, uint8_t size, uint64_t value);
  void setStatus(uint8_t status);
  void resetDevice();
  void activateQueues();
  void recoverCompletions();
  void raise(uint16_t vector, uint8_t isrBits);
  std::optional<MsixUpdate> msixTableWrite(uint64_t offset, uint8_t size, uint64_t value);
  bool vectorMasked(uint16_t vector) const;
  void deliverPending();
  uint32_t pciCfgWindowAccess(bool write, uint8_t size, uint32_t value, std::vector<MsixUpdate>& effects);

  VirtioDevice& device_;
  GuestMemory& memory_;
  VirtioState& state_;
  std::function<void(uint16_t)> signalVector_;
  std::vector<std::optional<SplitVirtqueue>> queues_;
  std::optional<pci::ConfigSpace> config_;  // Over the state segment's pciConfig.
  bool paused_ = false;
};

}  // namespace cellvisor
