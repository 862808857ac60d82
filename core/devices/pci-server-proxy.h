// The core's stand-in for a PCI function that lives in a device server:
// config space and BAR accesses are forwarded over the device protocol, BAR
// moves re-map the MMIO range and its doorbell ioeventfds, and MSI-X table
// changes re-route the interrupt. A BAR backed by the device's shared
// memory becomes a KVM memory slot. The fast path never comes through here.
#pragma once

#include <array>
#include <iostream>
#include <memory>
#include <mutex>
#include <vector>

#include "base/mapping.h"
#include "core/devices/device-channel.h"
#include "core/devices/device-wiring.h"
#include "core/pci/pci-device.h"

namespace cellvisor {

struct ProxyBar {
  uint8_t index = 0;
  uint64_t size = 0;
  bool io = false;
  bool is64 = false;
  bool shared = false;        // Contents in the device's BAR memory ...
  uint64_t sharedOffset = 0;  // ... from here.
  uint64_t mappedAt = 0;      // 0: not mapped.
};

struct ProxyDoorbell {
  uint8_t bar;
  uint64_t offset;
  uint8_t length;
  uint16_t queue;
  bool on;                 // An ioeventfd while its BAR is mapped (the server switches it).
  bool installed = false;  // KVM holds it now.
};

class PciServerProxy : public PciDevice {
 public:
  // Says hello to the server and learns its BARs and doorbells. Throws
  // DeviceUnavailable (or std::runtime_error on a version mismatch).
  PciServerProxy(DeviceChannel& server, DeviceWiring& wiring);
  ~PciServerProxy() override;

  const std::vector<ProxyBar>& bars() const { return bars_; }
  const std::string& serverName() const { return serverName_; }
  // Firmware's job: place BAR `index` and enable decoding (and bus mastering).
  void assignBar(uint8_t index, uint64_t address);
  void enableDecoding();

  uint32_t readConfig(uint16_t offset, uint8_t size) override;
  void writeConfig(uint16_t offset, uint8_t size, uint32_t value) override;
  uint64_t readBar(uint8_t bar, uint64_t offset, uint8_t size);
  void writeBar(uint8_t bar, uint64_t offset, uint8_t size, uint64_t value);

 private:
  class BarWindow : public IoDevice {
   public:
    BarWindow(PciServerProxy& proxy, uint8_t bar) : proxy_(proxy), bar_(bar) {}
    void read(uint64_t offset, std::span<uint8_t> data) override;
    void write(uint64_t offset, std::span<const uint8_t> data) override;

   private:
    PciServerProxy& proxy_;
    uint8_t bar_;
  };

  // Sends one request and hands its reply to `onReply`. A device that does
  // not answer is logged and reported as false: the access then behaves as
  // on a bus where nobody answers.
  template <typename Fill, typename OnReply>
  bool forward(Fill&& fill, OnReply&& onReply) {
    try {
      auto reply = server_.call(std::forward<Fill>(fill));
      onReply(reply.template root<proto::Reply>());
      return true;
    } catch (const DeviceUnavailable& error) {
      std::cerr << "vmm-core: " << error.what() << '\n';
      return false;
    } catch (const kj::Exception& error) {
      // A reply of the wrong shape (a list where a struct belongs): the
      // server broke the protocol; the access fails, the core goes on.
      std::cerr << "vmm-core: " << server_.deviceName()
                << ": malformed reply: " << error.getDescription().cStr() << '\n';
      return false;
    }
  }
  // The server's hello: its BARs and doorbells, checked before any is used.
  void takeHello(proto::HelloReply::Reader hello);
  void mapSharedMemory();
  void map(ProxyBar& bar, uint64_t address);
  void unmap(ProxyBar& bar);
  void applyEffects(proto::WriteEffects::Reader effects);
  // A register read of a device that failed for good, answered from its
  // failure notice.
  uint64_t failedDeviceRead(uint8_t bar, uint64_t offset, uint8_t size);
  void refreshMappings();
  void mapDoorbells(const ProxyBar& bar, bool add);
  void switchDoorbell(ProxyDoorbell& doorbell, bool on);

  DeviceChannel& server_;
  DeviceWiring& wiring_;
  std::string serverName_;
  std::vector<ProxyBar> bars_;
  std::vector<ProxyDoorbell> doorbells_;
  std::vector<std::unique_ptr<BarWindow>> windows_;
  Mapping barMemory_;  // The device's shared BAR memory, when it has some.
  std::mutex mappingMutex_;
};

}  // namespace cellvisor
