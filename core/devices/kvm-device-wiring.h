// DeviceWiring on KVM: BARs on the core's buses (or, backed by shared
// memory, as KVM memory slots), doorbells as ioeventfds,
// MSI-X vectors as irqfds on MSI routes (one GSI per vector).
#pragma once

#include <map>
#include <mutex>
#include <string>

#include "core/arch/x86/resource-allocator.h"
#include "core/devices/device-wiring.h"
#include "core/kvm/vm.h"
#include "core/platform/io-bus.h"

namespace cellvisor {

class KvmDeviceWiring : public DeviceWiring {
 public:
  KvmDeviceWiring(Vm& vm, IoBus& portBus, IoBus& mmioBus, ResourceAllocator& resources, std::string owner)
      : vm_(vm), portBus_(portBus), mmioBus_(mmioBus), resources_(resources), owner_(std::move(owner)) {}

  void mapBar(uint64_t address, uint64_t size, bool io, IoDevice& window) override {
    (io ? portBus_ : mmioBus_).add(address, size, window, owner_);
  }
  void unmapBar(uint64_t address, bool io) override { (io ? portBus_ : mmioBus_).remove(address); }
  void mapSharedBar(uint64_t address, std::span<uint8_t> host) override {
    uint32_t slot = vm_.addMemorySlot(address, host.size(), host.data());
    std::lock_guard lock(mutex_);
    sharedBarSlots_[address] = slot;
  }
  void unmapSharedBar(uint64_t address) override {
    std::lock_guard lock(mutex_);
    auto found = sharedBarSlots_.find(address);
    if (found == sharedBarSlots_.end()) return;
    vm_.removeMemorySlot(found->second);
    sharedBarSlots_.erase(found);
  }
  void addDoorbell(int eventfd, uint64_t address, uint8_t length, bool io) override {
    vm_.addIoEventfd(eventfd, address, length, io);
  }
  void removeDoorbell(int eventfd, uint64_t address, uint8_t length, bool io) override {
    vm_.removeIoEventfd(eventfd, address, length, io);
  }
  void routeVector(uint16_t vector, int eventfd, uint64_t address, uint32_t data) override {
    std::lock_guard lock(mutex_);
    auto found = gsis_.find(vector);
    if (found != gsis_.end()) {
      vm_.updateMsiRoute(found->second, address, data);
      return;
    }
    uint32_t gsi = resources_.allocateGsi();
    vm_.addMsiRoute(gsi, address, data);
    vm_.addIrqfd(eventfd, gsi);
    gsis_[vector] = gsi;
  }

 private:
  Vm& vm_;
  IoBus& portBus_;
  IoBus& mmioBus_;
  ResourceAllocator& resources_;
  std::string owner_;
  std::mutex mutex_;
  std::map<uint16_t, uint32_t> gsis_;
  std::map<uint64_t, uint32_t> sharedBarSlots_;  // Guest address -> KVM memory slot.
};

}  // namespace cellvisor
