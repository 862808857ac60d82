// A device server started the way the core starts a slot, for harnesses
// that drive it as a guest's driver would: the kind's launch descriptor
// parses the options and opens the backend, the server runs as its own
// process on the harness's guest RAM, its BAR is placed and decoded, and
// every MSI-X vector is routed and unmasked.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "tests/harness/virtio-harness.h"

namespace cellvisor::testing {

class ServerUnderTest {
 public:
  ServerUnderTest(const std::string& emulation, const std::string& options, GuestMemory& memory,
                  HarnessWiring& wiring, uint8_t bar, uint64_t barAddress);
  ~ServerUnderTest();
  ServerUnderTest(const ServerUnderTest&) = delete;
  ServerUnderTest& operator=(const ServerUnderTest&) = delete;

  PciServerProxy& proxy() { return *proxy_; }
  DeviceChannel& channel() { return *channel_; }
  DeviceServerProcess& process() { return *process_; }
  DeviceResources& resources() { return *resources_; }
  uint16_t vectors() const { return vectors_; }
  uint64_t msixTable() const { return msixTable_; }

 private:
  uint16_t vectors_ = 0;
  uint64_t msixTable_ = 0;
  std::unique_ptr<DeviceResources> resources_;
  std::unique_ptr<DeviceServerProcess> process_;
  std::unique_ptr<DeviceChannel> channel_;
  std::unique_ptr<PciServerProxy> proxy_;
};

}  // namespace cellvisor::testing
