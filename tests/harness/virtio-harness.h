// A user-space virtio-pci driver that drives a real device server process
// through its real fds and shared memory, as a guest would: it stands in for
// both the guest driver and KVM (doorbells are written straight into the
// queue eventfds; interrupts are read straight from the irqfds).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "base/guest-memory.h"
#include "core/devices/device-channel.h"
#include "core/devices/device-wiring.h"
#include "core/devices/pci-server-proxy.h"
#include "host/device-resources.h"
#include "host/device-server-process.h"
#include "host/device-supervisor.h"

namespace cellvisor::testing {

// Records what the core would program into KVM.
class HarnessWiring : public DeviceWiring {
 public:
  void mapBar(uint64_t address, uint64_t, bool, IoDevice&) override { mappedBars.push_back(address); }
  void unmapBar(uint64_t address, bool) override { unmappedBars.push_back(address); }
  void mapSharedBar(uint64_t address, std::span<uint8_t> host) override { sharedBars[address] = host; }
  void unmapSharedBar(uint64_t address) override { sharedBars.erase(address); }
  void addDoorbell(int eventfd, uint64_t address, uint8_t, bool) override { doorbells[address] = eventfd; }
  void removeDoorbell(int, uint64_t address, uint8_t, bool) override { doorbells.erase(address); }
  void routeVector(uint16_t vector, int, uint64_t address, uint32_t data) override {
    routes[vector] = {address, data};
  }
  std::vector<uint64_t> mappedBars;
  std::vector<uint64_t> unmappedBars;
  std::map<uint64_t, int> doorbells;
  std::map<uint64_t, std::span<uint8_t>> sharedBars;
  std::map<uint16_t, std::pair<uint64_t, uint32_t>> routes;
};

// What is wrong with how server `pid` is confined (empty: nothing): seccomp
// filter, no_new_privs, no capabilities, uid nobody (as root), its own
// network and PID namespaces.
std::vector<std::string> confinementProblems(pid_t pid);

struct Buffer {
  uint64_t address;
  uint32_t length;
  bool writable;  // Device writes it.
};

struct Completion {
  uint16_t head;
  uint32_t length;
};

class VirtioHarness {
 public:
  static constexpr uint64_t BAR_ADDRESS = 0xc000'0000;
  static constexpr uint64_t F_VERSION_1 = 1ull << 32;
  static constexpr uint64_t F_INDIRECT = 1ull << 28;
  static constexpr uint64_t F_EVENT_IDX = 1ull << 29;

  // Spawns `server` ("virtio-blk") with `options` and `backend`.
  VirtioHarness(const std::string& server, const std::string& options, UniqueFd backend, uint16_t queues,
                uint64_t memoryBytes = 64ull << 20, const std::string& faultInjection = "");

  PciServerProxy& proxy() { return *proxy_; }
  DeviceServerProcess& process() { return *process_; }
  DeviceChannel& channel() { return *channel_; }
  HarnessWiring& wiring() { return wiring_; }
  GuestMemory& memory() { return memory_; }

  // Full virtio initialisation; returns the features the device offered.
  // `accept` is ANDed with the offer (VERSION_1 is always requested).
  uint64_t initialize(uint64_t accept, uint16_t queueSize = 128);
  uint8_t status();
  // Device reset as a driver does it: writes status 0 and waits for it to
  // read back 0. Returns false if it did not within `timeout`. initialize()
  // brings the device up again afterwards.
  bool reset(std::chrono::milliseconds timeout = std::chrono::seconds(5));
  uint64_t configRead(uint32_t offset, uint8_t size);

  // Guest-memory allocation for buffers and rings (bump allocator, 4 KiB aligned).
  uint64_t allocate(uint64_t bytes, uint64_t alignment = 4096);
  uint8_t* host(uint64_t address, uint64_t length = 1) { return memory_.translate(address, length); }

  // Puts a chain on `queue` (descriptors taken from a per-queue free list)
  // and returns its head; `indirect` builds it as an indirect table.
  uint16_t submit(uint16_t queue, const std::vector<Buffer>& buffers, bool indirect = false);
  // Writes raw descriptors (for hostile tests) and publishes `head`.
  void writeDescriptor(uint16_t queue, uint16_t index, uint64_t address, uint32_t length, uint16_t flags,
                       uint16_t next);
  void publish(uint16_t queue, uint16_t head);
  // Rings the doorbell unless the device said (EVENT_IDX) it needs no kick.
  void kick(uint16_t queue);
  // Waits for the queue's interrupt, then returns every new used element.
  std::vector<Completion> waitForCompletions(uint16_t queue, size_t atLeast = 1,
                                             std::chrono::milliseconds timeout = std::chrono::seconds(5));
  bool interruptPending(uint16_t vector, std::chrono::milliseconds timeout);
  uint16_t queueSize(uint16_t queue) const { return queues_.at(queue).size; }

 private:
  struct Queue {
    uint16_t size = 0;
    uint64_t descriptors = 0;
    uint64_t avail = 0;
    uint64_t used = 0;
    uint16_t availIdx = 0;
    uint16_t lastUsed = 0;
    uint16_t lastKickedAvail = 0;
    std::vector<uint16_t> freeDescriptors;
    std::map<uint16_t, std::vector<uint16_t>> chains;  // head -> descriptors to free
  };
  uint64_t barRead(uint64_t offset, uint8_t size) { return proxy_->readBar(0, offset, size); }
  void barWrite(uint64_t offset, uint8_t size, uint64_t value) { proxy_->writeBar(0, offset, size, value); }

  GuestMemory memory_;
  HarnessWiring wiring_;
  std::unique_ptr<DeviceResources> resources_;
  std::unique_ptr<DeviceServerProcess> process_;
  std::unique_ptr<DeviceChannel> channel_;
  std::unique_ptr<PciServerProxy> proxy_;
  uint64_t common_ = 0;
  uint64_t notify_ = 0;
  uint32_t notifyMultiplier_ = 0;
  uint64_t deviceConfig_ = 0;
  uint64_t msixTable_ = 0;
  uint64_t nextFree_ = 1 << 20;
  std::vector<Queue> queues_;
  bool eventIdx_ = false;
};

// A harness's server process supervised (restarted when it dies) by a
// DeviceSupervisor on its own loop thread, as the core runs it.
class SupervisedServer {
 public:
  explicit SupervisedServer(DeviceServerProcess& process);
  ~SupervisedServer();
  SupervisedServer(const SupervisedServer&) = delete;
  SupervisedServer& operator=(const SupervisedServer&) = delete;

 private:
  uv_loop_t loop_;
  uv_async_t stop_;
  std::atomic<bool> stopping_{false};
  std::unique_ptr<DeviceSupervisor> supervisor_;
  std::thread thread_;
};

// A crash loop: kills every new instance of a supervised server as soon as
// it appears (through the back-off) until the supervisor fails the device,
// or `timeout` passes. True once the device has failed.
bool killUntilFailed(DeviceServerProcess& process, std::chrono::seconds timeout = std::chrono::seconds(20));

}  // namespace cellvisor::testing
