// The virtio 1.x PCI transport, implemented once for every virtio server as
// the PciFunction the runtime serves: identity, capabilities, BAR0, the common configuration
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
#include "pci/msix.h"
#include "proto/state-segment.h"
#include "servers/runtime/pci-function.h"
#include "servers/runtime/virtio-device.h"
#include "servers/runtime/virtio-state.h"
#include "servers/runtime/virtqueue.h"

namespace cellvisor {

class GuestMemory;

class VirtioTransport : public PciFunction {
 public:
  static constexpr uint64_t BAR0_SIZE = 0x8000;
  static constexpr uint64_t COMMON = 0x0000;
  static constexpr uint64_t ISR = 0x1000;
  static constexpr uint64_t DEVICE_CONFIG = 0x2000;
  static constexpr uint64_t NOTIFY = 0x3000;
  static constexpr uint32_t NOTIFY_MULTIPLIER = 4;
  static constexpr uint64_t MSIX_TABLE = 0x4000;
  static constexpr uint64_t MSIX_PBA = 0x5000;
  static constexpr uint16_t NO_VECTOR = pci::Msix::NO_VECTOR;

  // Feature bits the transport itself offers.
  static constexpr uint64_t F_INDIRECT_DESC = 1ull << 28;
  static constexpr uint64_t F_EVENT_IDX = 1ull << 29;
  static constexpr uint64_t F_VERSION_1 = 1ull << 32;

  // Takes over `state` (the state segment's body) for `device`: a fresh one
  // is set up, a restored one (a restart) keeps what the guest programmed.
  VirtioTransport(VirtioDevice& device, GuestMemory& memory, StateHeader& header, VirtioState& state);

  // MSI-X vectors: one for configuration changes, one per queue.
  static uint16_t vectorsFor(const VirtioDevice& device) {
    return static_cast<uint16_t>(device.queueCount() + 1);
  }
  uint16_t vectorCount() const { return vectorsFor(device_); }

  // PciFunction. Doorbell i is queue i's; while paused no request is taken
  // from any queue, whoever asks.
  FunctionLayout layout() const override;
  void start(std::function<void(uint16_t)> signal) override;
  FailureNotice failureNotice() const override;
  uint32_t configRead(uint16_t offset, uint8_t size) override;
  std::vector<MsixUpdate> configWrite(uint16_t offset, uint8_t size, uint32_t value) override;
  uint64_t barRead(uint8_t bar, uint64_t offset, uint8_t size) override;
  std::vector<MsixUpdate> barWrite(uint8_t bar, uint64_t offset, uint8_t size, uint64_t value) override;
  void doorbell(uint16_t queue) override;
  bool live() const override { return (state_.status & DRIVER_OK) && !(state_.status & NEEDS_RESET); }
  std::vector<MsixUpdate> reset() override;
  void pause() override;
  void resume() override;
  bool poll() override;
  std::vector<MsixUpdate> msixVectors() const override;
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
  void skipEntriesTakenBefore();
  void raise(uint16_t vector, uint8_t isrBits);
  uint32_t pciCfgWindowAccess(bool write, uint8_t size, uint32_t value, std::vector<MsixUpdate>& effects);

  VirtioDevice& device_;
  GuestMemory& memory_;
  StateHeader& header_;
  VirtioState& state_;
  std::vector<std::optional<SplitVirtqueue>> queues_;
  std::optional<pci::ConfigSpace> config_;  // Over the state segment's pciConfig ...
  std::optional<pci::Msix> msix_;           // ... and its MSI-X table.
  bool paused_ = false;
};

}  // namespace cellvisor
