// How a proxied device's BARs, doorbells and interrupts reach the guest. The
// core implements it with KVM (MMIO bus, ioeventfd, irqfd + MSI routes); the
// driver harness implements it by hand, standing in for KVM.
#pragma once

#include <cstdint>
#include <span>

#include "core/platform/io-device.h"

namespace cellvisor {

class DeviceWiring {
 public:
  virtual ~DeviceWiring() = default;
  virtual void mapBar(uint64_t address, uint64_t size, bool io, IoDevice& window) = 0;
  virtual void unmapBar(uint64_t address, bool io) = 0;
  // A BAR whose contents are memory (`host`, shared with the server): guest
  // accesses go straight to it, with no exit.
  virtual void mapSharedBar(uint64_t address, std::span<uint8_t> host) = 0;
  virtual void unmapSharedBar(uint64_t address) = 0;
  // Guest writes at `address` signal `eventfd` without an exit (length 0: any size).
  virtual void addDoorbell(int eventfd, uint64_t address, uint8_t length, bool io) = 0;
  virtual void removeDoorbell(int eventfd, uint64_t address, uint8_t length, bool io) = 0;
  // Signalling `eventfd` delivers the MSI (address, data).
  virtual void routeVector(uint16_t vector, int eventfd, uint64_t address, uint32_t data) = 0;
};

}  // namespace cellvisor
