#include "tests/harness/server-under-test.h"

#include <stdexcept>

#include "host/server-kind.h"

namespace cellvisor::testing {

ServerUnderTest::ServerUnderTest(const std::string& emulation, const std::string& options,
                                 GuestMemory& memory, HarnessWiring& wiring, uint8_t bar,
                                 uint64_t barAddress) {
  const ServerKind* kind = findServerKind(emulation);
  if (kind == nullptr) throw std::runtime_error("no " + emulation + " server kind registered");
  std::string name = emulation + "-harness";
  PreparedServer prepared = kind->prepare({options, 1, name});
  vectors_ = prepared.vectors;
  ServerLaunch launch;
  launch.binary = findServerBinary(kind->folder.empty() ? kind->emulation : kind->folder, kind->binary);
  launch.deviceName = name;
  launch.options = prepared.options;
  launch.backends = std::move(prepared.backends);
  launch.queues = prepared.doorbells;
  launch.vectors = prepared.vectors;
  launch.barMemoryBytes = prepared.barMemoryBytes;
  launch.input = inputRoleOf(prepared);
  launch.policy = kind->policyName;
  resources_ = makeDeviceResources(launch);
  process_ =
      std::make_unique<DeviceServerProcess>(std::move(launch), *resources_, memory.memfd(), memory.regions());
  channel_ = std::make_unique<DeviceChannel>(*resources_);
  // Unless a test supervises it, a dead server stays dead: fail at once.
  channel_->setServerGone([this] { return !process_->supervised() && process_->exited(); });
  proxy_ = std::make_unique<PciServerProxy>(*channel_, wiring);
  proxy_->assignBar(bar, barAddress);
  proxy_->enableDecoding();
  uint16_t msix = 0;
  for (uint32_t at = proxy_->readConfig(0x34, 1), steps = 0; at != 0 && steps < 48; ++steps) {
    if (proxy_->readConfig(static_cast<uint16_t>(at), 1) == 0x11) msix = static_cast<uint16_t>(at);
    at = proxy_->readConfig(static_cast<uint16_t>(at + 1), 1);
  }
  if (msix == 0) throw std::runtime_error("no MSI-X capability");
  uint32_t table = proxy_->readConfig(static_cast<uint16_t>(msix + 4), 4);
  if ((table & 7) != bar) throw std::runtime_error("MSI-X table not in the harness's BAR");
  msixTable_ = table & ~7u;
  for (uint16_t vector = 0; vector < vectors_; ++vector) {
    uint64_t entry = msixTable_ + 16ull * vector;
    proxy_->writeBar(bar, entry + 0, 4, 0xfee00000);
    proxy_->writeBar(bar, entry + 4, 4, 0);
    proxy_->writeBar(bar, entry + 8, 4, 0x40u + vector);
    proxy_->writeBar(bar, entry + 12, 4, 0);  // Unmasked.
  }
  uint32_t control = proxy_->readConfig(static_cast<uint16_t>(msix + 2), 2);
  proxy_->writeConfig(static_cast<uint16_t>(msix + 2), 2, control | 0x8000);  // MSI-X enable.
}

ServerUnderTest::~ServerUnderTest() = default;

}  // namespace cellvisor::testing
