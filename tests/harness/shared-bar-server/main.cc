// A PCI function for the runtime's own tests of BARs backed by shared
// memory (what a framebuffer's VRAM and an NVMe controller memory buffer
// are). BAR0 holds registers, BAR2 is the device's shared BAR memory:
//   BAR0 + 0 (read):  the sum of every byte of the shared memory, so a test
//                     sees that the server reads what the guest wrote there
//   BAR0 + 8 (write): fills the shared memory with the low byte written
// A first instance writes "shared BAR" at the memory's beginning; a
// restarted one leaves the contents alone. The option
// "offset=N" declares the BAR at N in the memory: a server lying about its
// memory, which the core must refuse; "doorbells=size3|twice" declares
// doorbells KVM cannot take (an access size no bus has, one address twice).
#include <sys/mman.h>
#include <sys/stat.h>

#include <cstring>
#include <numeric>
#include <stdexcept>
#include <string>

#include "base/mapping.h"
#include "base/system-error.h"
#include "servers/runtime/pci-function.h"
#include "servers/runtime/serve-device.h"

namespace cellvisor {
namespace {

constexpr uint32_t MAGIC = 0x43565342;  // "CVSB"
constexpr char GREETING[] = "shared BAR";

struct SharedBarState {
  uint8_t pciConfig[256];
};

class SharedBarFunction : public PciFunction {
 public:
  SharedBarFunction(ServerResources& resources, uint64_t declaredOffset, std::string doorbells)
      : state_(resources.state->body<SharedBarState>()),
        declaredOffset_(declaredOffset),
        doorbells_(std::move(doorbells)) {
    if (!resources.barMemory) throw std::runtime_error("no BAR memory");
    struct stat st {};
    checkSyscall(::fstat(resources.barMemory.get(), &st), "fstat BAR memory");
    memory_ = Mapping::map(resources.barMemory.get(), static_cast<size_t>(st.st_size), PROT_READ | PROT_WRITE,
                           MAP_SHARED);
    StateHeader& header = resources.state->header();
    bool restored = claimState(header, MAGIC, 1) == StateOrigin::RESTORED;
    config_.emplace(std::span<uint8_t>(state_.pciConfig),
                    restored ? pci::ConfigSpace::Contents::RESTORED : pci::ConfigSpace::Contents::FRESH);
    config_->setIdentity({.vendor = 0x1b36, .device = 0x0005, .classCode = 0xff});
    config_->setBar(0, {pci::BarKind::MEMORY32, 4096, false}, 0);
    config_->setBar(2, {pci::BarKind::MEMORY64, memory_.size(), true}, 0);
    if (restored) return;  // The memory holds what the guest left there.
    std::memcpy(memory_.data(), GREETING, sizeof(GREETING));
    publishState(header, MAGIC, 1);
  }

  FunctionLayout layout() const override {
    FunctionLayout layout;
    layout.bars.push_back({0, 4096, pci::BarKind::MEMORY32});
    layout.bars.push_back({2, memory_.size(), pci::BarKind::MEMORY64, true, true, declaredOffset_});
    // Doorbells no core can install, for the core to refuse at hello.
    if (doorbells_ == "size3") layout.doorbells.push_back({0, 0x100, 3, 0});
    if (doorbells_ == "twice") {
      layout.doorbells.push_back({0, 0x100, 4, 0});
      layout.doorbells.push_back({0, 0x100, 4, 1});
    }
    layout.doorbellCount = static_cast<uint16_t>(doorbells_ == "size3" ? 1 : doorbells_ == "twice" ? 2 : 0);
    return layout;
  }
  void start(std::function<void(uint16_t)>) override {}
  FailureNotice failureNotice() const override { return FailureNotice{}; }
  uint32_t configRead(uint16_t offset, uint8_t size) override { return config_->read(offset, size); }
  std::vector<MsixUpdate> configWrite(uint16_t offset, uint8_t size, uint32_t value) override {
    config_->write(offset, size, value);
    return {};
  }
  uint64_t barRead(uint8_t bar, uint64_t offset, uint8_t) override {
    if (bar != 0 || offset != 0) return 0;
    return std::accumulate(memory_.data(), memory_.data() + memory_.size(), uint64_t{0});
  }
  std::vector<MsixUpdate> barWrite(uint8_t bar, uint64_t offset, uint8_t, uint64_t value) override {
    if (bar == 0 && offset == 8) std::memset(memory_.data(), static_cast<uint8_t>(value), memory_.size());
    return {};
  }
  void doorbell(uint16_t) override {}
  bool live() const override { return true; }
  std::vector<MsixUpdate> reset() override { return {}; }
  void pause() override {}
  void resume() override {}
  std::vector<MsixUpdate> msixVectors() const override { return {}; }

 private:
  SharedBarState& state_;
  uint64_t declaredOffset_;
  std::string doorbells_;
  Mapping memory_;
  std::optional<pci::ConfigSpace> config_;
};

}  // namespace
}  // namespace cellvisor

int main() {
  using namespace cellvisor;
  return serveDevice("shared-bar", "shared-bar.policy", "include common-device.policy\n",
                     [](ServerResources& resources, SandboxedServe& serve) {
                       uint64_t offset = 0;
                       std::string doorbells;
                       if (resources.options.rfind("offset=", 0) == 0)
                         offset = std::stoull(resources.options.substr(7));
                       if (resources.options.rfind("doorbells=", 0) == 0)
                         doorbells = resources.options.substr(10);
                       SharedBarFunction function(resources, offset, doorbells);
                       DeviceServer server("shared-bar:" + resources.deviceName, resources, function);
                       return serve(server);
                     });
}
