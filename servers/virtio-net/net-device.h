// The virtio-net device model (virtio 1.x, 5.1): one receive and one
// transmit queue, backed by a tap. Frames the guest sends are written to
// the tap straight from guest memory; frames read from the tap are copied
// into the guest's receive buffers. No offloads are offered, so every frame
// is a plain Ethernet frame behind a zeroed virtio-net header.
// Hostile drivers: undersized or oversized buffers, chains in the wrong
// direction, bad addresses drop that frame (counted); the device goes on.
#pragma once

#include <array>
#include <deque>
#include <vector>

#include "base/unique-fd.h"
#include "servers/runtime/device-stats.h"
#include "servers/runtime/virtio-device.h"
#include "servers/runtime/virtio-transport.h"
#include "servers/virtio-net/net-options.h"

namespace cellvisor {

class NetDevice : public VirtioDevice {
 public:
  static constexpr uint16_t RX = 0;
  static constexpr uint16_t TX = 1;
  static constexpr size_t HEADER = 12;             // struct virtio_net_hdr (VERSION_1)
  static constexpr size_t MAX_FRAME = 65535 + 14;  // The largest frame a tap carries.

  // `tap`: the opened tap (non-blocking). `mac`: the address the guest sees.
  NetDevice(const NetOptions& options, int tap, std::array<uint8_t, 6> mac);

  // Connects the model to its transport and counters; `setReading` stops or
  // resumes the event loop's reading of the tap (no receive buffers: let the
  // kernel hold the frames). On a restart, takes up what was in flight.
  void attach(VirtioTransport& transport, DeviceStats& stats, std::function<void(bool)> setReading);
  // The tap has frames for the guest.
  void onTapReadable();

  uint16_t deviceId() const override { return 1; }
  uint8_t pciClass() const override { return 0x02; }
  uint8_t pciSubclass() const override { return 0x00; }
  uint64_t deviceFeatures() const override;
  uint16_t queueCount() const override { return 2; }
  uint16_t queueMaxSize() const override { return options_.queueSize; }
  void readConfig(uint32_t offset, std::span<uint8_t> data) override;
  void writeConfig(uint32_t offset, std::span<const uint8_t> data) override;
  void activate(VirtioTransport& transport) override;
  void reset() override;
  void queueNotified(uint16_t queue) override;
  // Busy polling: frames waiting on the tap. True if any was received.
  bool poll() override;

 private:
  void transmit();
  void transmitChain(const DescriptorChain& chain);
  // Takes the next receive buffer (those left in flight by a previous
  // instance first); false when the guest has none.
  bool nextReceiveBuffer(DescriptorChain& chain);

  NetOptions options_;
  int tap_;
  std::array<uint8_t, 12> config_{};
  DeviceStats ownStats_;
  DeviceStats* stats_ = &ownStats_;
  VirtioTransport* transport_ = nullptr;
  std::function<void(bool)> setReading_;
  bool reading_ = true;
  std::deque<uint16_t> heldReceiveBuffers_;  // Taken by a previous instance, never filled.
  std::vector<uint8_t> frame_;               // One received frame, reused.
  std::vector<iovec> iov_;                   // One transmitted frame, reused.
  DescriptorChain chain_;
};

}  // namespace cellvisor
