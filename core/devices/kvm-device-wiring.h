// DeviceWiring on KVM: BARs on the core's buses, doorbells as ioeventfds,
// MSI-X vectors as irqfds on MSI routes (one GSI per vector).
#pragma once

#include <map>
#include <mutex>
#include <string>

#include "core/devices/device-wiring.h"
#include "core/kvm/vm.h"
#include "core/platform/io-bus.h"

namespace cellvisor {

class KvmDeviceWiring : public DeviceWiring {
 public:
  KvmDeviceWiring(Vm& vm, IoBus& portBus, IoBus& mmioBus, std::string owner)
      : vm_(vm), portBus_(portBus), mmioBus_(mmioBus), owner_(std::move(owner)) {}

  void mapBar(uint64_t address, uint64_t size, bool io, IoDevice& window) override {
    (io ? portBus_ : mmioBus_).add(address, size, window, owner_);
  }
  void unmapBar(uint64_t address, bool io) override { (io ? portBus_ : mmioBus_).remove(address); }
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
    uint32_t gsi = vm_.addMsiRoute(address, data);
    vm_.addIrqfd(eventfd, gsi);
    gsis_[vector] = gsi;
  }

 private:
  Vm& vm_;
  IoBus& portBus_;
  IoBus& mmioBus_;
  std::string owner_;
  std::mutex mutex_;
  std::map<uint16_t, uint32_t> gsis_;
};

}  // namespace cellvisor
