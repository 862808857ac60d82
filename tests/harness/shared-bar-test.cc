// BARs backed by shared memory, end to end: a real server process declares
// one in its hello, the core's proxy checks it against the memory the
// supervisor made and maps it where the guest put the BAR (a KVM memory slot
// in the core; recorded by the harness wiring here), and both sides see the
// same bytes without a request crossing the channel. The contents outlive a
// server restart; a server that declares more than its memory is refused.
#include <gtest/gtest.h>
#include <signal.h>

#include <cstring>
#include <numeric>
#include <tuple>

#include "tests/harness/virtio-harness.h"

namespace cellvisor::testing {
namespace {

constexpr uint64_t MEMORY = 64 << 10;
constexpr uint64_t REGISTERS = 0xc000'0000;
constexpr uint64_t SHARED = 0xd000'0000;

struct SharedBarRig {
  explicit SharedBarRig(const std::string& options, uint16_t doorbells = 0) : memory(16 << 20) {
    ServerLaunch launch;
    launch.binary = SHARED_BAR_SERVER;
    launch.deviceName = "shared-bar";
    launch.options = options;
    launch.queues = doorbells;
    launch.vectors = 0;
    launch.barMemoryBytes = MEMORY;
    resources = std::make_unique<DeviceResources>(launch.deviceName, doorbells, 0, MEMORY);
    process = std::make_unique<DeviceServerProcess>(std::move(launch), *resources, memory.memfd(),
                                                    memory.regions());
    channel = std::make_unique<DeviceChannel>(*resources);
    channel->setServerGone([this] { return !process->supervised() && process->exited(); });
  }
  void connect() { proxy = std::make_unique<PciServerProxy>(*channel, wiring); }
  void placeAndEnable(uint64_t shared) {
    proxy->assignBar(0, REGISTERS);
    proxy->assignBar(2, shared);
    proxy->enableDecoding();
  }
  std::span<uint8_t> mapped(uint64_t at) { return wiring.sharedBars.at(at); }

  GuestMemory memory;
  HarnessWiring wiring;
  std::unique_ptr<DeviceResources> resources;
  std::unique_ptr<DeviceServerProcess> process;
  std::unique_ptr<DeviceChannel> channel;
  std::unique_ptr<PciServerProxy> proxy;
};

uint64_t sum(std::span<const uint8_t> bytes) {
  return std::accumulate(bytes.begin(), bytes.end(), uint64_t{0});
}

TEST(SharedBar, GuestAndServerShareTheBytesWithNoRequest) {
  SharedBarRig rig("");
  rig.connect();
  rig.placeAndEnable(SHARED);
  ASSERT_EQ(rig.wiring.sharedBars.size(), 1u) << "the shared BAR is a memory slot, not an MMIO window";
  EXPECT_EQ(rig.wiring.mappedBars, std::vector<uint64_t>{REGISTERS}) << "only the register BAR traps";
  std::span<uint8_t> bar = rig.mapped(SHARED);
  ASSERT_EQ(bar.size(), MEMORY);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(bar.data())), "shared BAR") << "the server's write";

  // The guest writes; the server sums what it sees.
  std::memset(bar.data(), 3, bar.size());
  EXPECT_EQ(rig.proxy->readBar(0, 0, 8), 3 * MEMORY);
  // The server writes; the guest sees it.
  rig.proxy->writeBar(0, 8, 1, 7);
  EXPECT_EQ(sum(bar), 7 * MEMORY);
}

TEST(SharedBar, FollowsTheBarWhenTheGuestMovesOrDisablesIt) {
  SharedBarRig rig("");
  rig.connect();
  rig.placeAndEnable(SHARED);
  rig.proxy->assignBar(2, SHARED + MEMORY);
  ASSERT_EQ(rig.wiring.sharedBars.size(), 1u);
  EXPECT_EQ(rig.wiring.sharedBars.begin()->first, SHARED + MEMORY);
  uint32_t command = rig.proxy->readConfig(0x04, 2);
  rig.proxy->writeConfig(0x04, 2, command & ~2u);  // Memory decoding off.
  EXPECT_TRUE(rig.wiring.sharedBars.empty());
  rig.proxy->writeConfig(0x04, 2, command);
  EXPECT_EQ(rig.wiring.sharedBars.size(), 1u);
}

TEST(SharedBar, ContentsAndPlacementOutliveAServerRestart) {
  SharedBarRig rig("");
  rig.connect();
  rig.placeAndEnable(SHARED);
  std::span<uint8_t> bar = rig.mapped(SHARED);
  std::memset(bar.data(), 5, bar.size());
  ::kill(rig.process->pid(), SIGKILL);
  rig.process->reap();
  rig.process->restart();
  EXPECT_EQ(rig.proxy->readBar(0, 0, 8), 5 * MEMORY) << "the new instance sees the old contents";
  EXPECT_EQ(rig.proxy->readConfig(0x18, 4) & ~0xfu, static_cast<uint32_t>(SHARED))
      << "and the BAR where the guest put it";
}

TEST(SharedBar, AServerDeclaringMoreThanItsMemoryIsRefused) {
  for (const char* options : {"offset=4096", "offset=61440", "offset=18446744073709547520", "offset=100"}) {
    SCOPED_TRACE(options);
    SharedBarRig rig(options);
    EXPECT_THROW(rig.connect(), DeviceUnavailable);
    EXPECT_TRUE(rig.wiring.sharedBars.empty());
  }
}

// Doorbells KVM would refuse (or take once and then fail to give back) are
// refused at hello, by name, before anything is wired.
TEST(SharedBar, DoorbellsNoBusCanHaveAreRefused) {
  for (auto [options, doorbells, message] :
       {std::tuple{"doorbells=size3", 1, "access size"},
        std::tuple{"doorbells=twice", 2, "two doorbells at one address"}}) {
    SCOPED_TRACE(options);
    SharedBarRig rig(options, static_cast<uint16_t>(doorbells));
    try {
      rig.connect();
      ADD_FAILURE() << "accepted";
    } catch (const DeviceUnavailable& error) {
      EXPECT_NE(std::string(error.what()).find(message), std::string::npos) << error.what();
    }
    EXPECT_TRUE(rig.wiring.doorbells.empty());
  }
}

}  // namespace
}  // namespace cellvisor::testing
