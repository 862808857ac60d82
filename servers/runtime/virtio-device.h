// What a virtio device model (block, net, ...) supplies to the shared
// virtio-pci transport. The transport owns PCI, features, queues and
// interrupts; the model owns its config space and request processing.
#pragma once

#include <cstdint>
#include <span>

namespace cellvisor {

class VirtioTransport;

class VirtioDevice {
 public:
  virtual ~VirtioDevice() = default;
  virtual uint16_t deviceId() const = 0;  // Virtio device type (2 = block).
  virtual uint8_t pciClass() const = 0;
  virtual uint8_t pciSubclass() const = 0;
  virtual uint64_t deviceFeatures() const = 0;  // Device-specific bits only.
  virtual uint16_t queueCount() const = 0;
  virtual uint16_t queueMaxSize() const = 0;
  virtual void readConfig(uint32_t offset, std::span<uint8_t> data) = 0;
  virtual void writeConfig(uint32_t offset, std::span<const uint8_t> data) = 0;
  // DRIVER_OK: queues are live; the model may start processing.
  virtual void activate(VirtioTransport& transport) = 0;
  // The driver reset the device: drop everything in flight.
  virtual void reset() = 0;
  // The driver kicked `queue` (or a restart asks to look again).
  virtual void queueNotified(uint16_t queue) = 0;
  // Busy-polling hook: finish whatever completed without waiting. Returns
  // true if it did any work.
  virtual bool poll() { return false; }
  // Pause: finish every request already taken, so guest memory and the
  // state segment stop changing until resume.
  virtual void quiesce() {}
};

}  // namespace cellvisor
