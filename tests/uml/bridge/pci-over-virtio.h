// UML's "PCI over virtio" (virt-pci, include/uapi/linux/virtio_pcidev.h):
// queue 0 carries the driver's config-space and BAR accesses, queue 1
// carries the device's interrupts back as MSI writes. Here each access goes
// to a PciServerProxy, the core's own stand-in for a device server, so
// UML's PCI drivers reach the real server the way a KVM guest's do; the
// wiring stands in for KVM's doorbell ioeventfds and MSI routes.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <span>
#include <utility>

#include "core/devices/device-wiring.h"
#include "core/devices/pci-server-proxy.h"
#include "tests/uml/bridge/vhost-user-device.h"

namespace cellvisor::uml {

// What the proxy would program into KVM, kept for the bridge to act on.
class BridgeWiring : public DeviceWiring {
 public:
  void mapBar(uint64_t, uint64_t, bool, IoDevice&) override {}
  void unmapBar(uint64_t, bool) override {}
  void mapSharedBar(uint64_t address, std::span<uint8_t> host) override { sharedBars[address] = host; }
  void unmapSharedBar(uint64_t address) override { sharedBars.erase(address); }
  void addDoorbell(int eventfd, uint64_t address, uint8_t, bool) override { doorbells[address] = eventfd; }
  void removeDoorbell(int, uint64_t address, uint8_t, bool) override { doorbells.erase(address); }
  void routeVector(uint16_t vector, int eventfd, uint64_t, uint32_t data) override {
    routes[vector] = {eventfd, data};
  }

  std::map<uint64_t, std::span<uint8_t>> sharedBars;
  std::map<uint64_t, int> doorbells;
  std::map<uint16_t, std::pair<int, uint32_t>> routes;  // vector -> (eventfd, MSI data)
};

class PciOverVirtio {
 public:
  static constexpr size_t COMMAND_QUEUE = 0;
  static constexpr size_t INTERRUPT_QUEUE = 1;

  PciOverVirtio(VhostUserDevice& link, PciServerProxy& proxy, BridgeWiring& wiring)
      : link_(link), proxy_(proxy), wiring_(wiring) {}

  // Answers every access waiting on the command queue.
  void serveCommands();
  // Vector `vector`'s interrupt fired: sends its MSI (now, or as soon as the
  // driver gives the interrupt queue a buffer).
  void raise(uint16_t vector);
  // Sends what waited for interrupt-queue buffers.
  void deliverInterrupts();

 private:
  // Executes one access; returns how many bytes of `reply` it filled.
  uint32_t execute(uint8_t op, uint8_t bar, uint32_t size, uint64_t address, std::span<const uint8_t> data,
                   std::span<uint8_t> reply);
  void readBar(uint8_t bar, uint64_t offset, std::span<uint8_t> out);
  void writeBar(uint8_t bar, uint64_t offset, std::span<const uint8_t> data);
  // The BAR's contents when they are shared memory, else an empty span.
  std::span<uint8_t> sharedContents(uint8_t bar);

  VhostUserDevice& link_;
  PciServerProxy& proxy_;
  BridgeWiring& wiring_;
  std::deque<uint32_t> pendingMsi_;
};

}  // namespace cellvisor::uml
