// PCI configuration decoding through 0xCF8/0xCFC and ECAM, read-only
// identity, BAR sizing and relocation.
#include <gtest/gtest.h>

#include "core/arch/x86/address-map.h"
#include "core/arch/x86/resource-allocator.h"
#include "core/pci/pci-config-space.h"
#include "core/pci/pci-host.h"
#include "pci/bar-placement.h"
#include "pci/msi.h"
#include "tests/unit/fakes.h"

namespace cellvisor {
namespace {

class NullDevice : public IoDevice {
 public:
  void read(uint64_t, std::span<uint8_t> data) override { storeLittleEndian(data, 0x42); }
  void write(uint64_t, std::span<const uint8_t> data) override { last = data[0]; }
  uint8_t last = 0;
};

uint32_t read32(IoDevice& device, uint64_t offset, size_t size = 4) {
  uint8_t bytes[4] = {};
  device.read(offset, {bytes, size});
  return static_cast<uint32_t>(loadLittleEndian({bytes, size}));
}

void write32(IoDevice& device, uint64_t offset, uint32_t value, size_t size = 4) {
  uint8_t bytes[4];
  storeLittleEndian({bytes, size}, value);
  device.write(offset, {bytes, size});
}

struct PciTest : ::testing::Test {
  NullDevice reset;
  PciHost host{reset};
  PciConfigSpace bridge{PciIdentity{.vendor = 0x1275, .device = 0x1275, .classCode = 0x06}};
  PciConfigSpace nic{PciIdentity{.vendor = 0x1af4, .device = 0x1041, .subclass = 0x00, .classCode = 0x02}};

  void SetUp() override {
    host.attach(0, 0, bridge);
    host.attach(3, 0, nic);
  }
  uint32_t cf8Read(int slot, int function, uint16_t offset, size_t size = 4) {
    write32(host.addressPort(), 0, 0x80000000u | slot << 11 | function << 8 | (offset & 0xfc));
    return read32(host.dataPort(), offset & 3, size);
  }
  void cf8Write(int slot, uint16_t offset, uint32_t value, size_t size = 4) {
    write32(host.addressPort(), 0, 0x80000000u | slot << 11 | (offset & 0xfc));
    write32(host.dataPort(), offset & 3, value, size);
  }
};

TEST_F(PciTest, MechanismOneDecodesSlotsAndOffsets) {
  EXPECT_EQ(cf8Read(0, 0, 0), 0x12751275u);
  EXPECT_EQ(cf8Read(3, 0, 0), 0x10411af4u);
  EXPECT_EQ(cf8Read(3, 0, 2, 2), 0x1041u) << "word access at offset 2";
  EXPECT_EQ(cf8Read(3, 0, 0xb, 1), 0x02u) << "class code byte";
  EXPECT_EQ(cf8Read(5, 0, 0), 0xffffffffu) << "empty slot";
  EXPECT_EQ(cf8Read(3, 1, 0), 0xffffffffu) << "empty function";
}

TEST_F(PciTest, DisabledAddressReadsAllOnes) {
  write32(host.addressPort(), 0, 0x00000000);
  EXPECT_EQ(read32(host.dataPort(), 0), 0xffffffffu);
}

TEST_F(PciTest, ResetRegisterSharesTheAddressDword) {
  uint8_t value = 0x06;
  host.addressPort().write(1, {&value, 1});
  EXPECT_EQ(reset.last, 0x06);
  EXPECT_EQ(cf8Read(0, 0, 0), 0x12751275u) << "the byte write did not latch an address";
}

TEST_F(PciTest, EcamMatchesMechanismOne) {
  EXPECT_EQ(read32(host.ecam(), (3u << 15) | 0), 0x10411af4u);
  EXPECT_EQ(read32(host.ecam(), (1u << 20) | (3u << 15)), 0xffffffffu) << "bus 1 is empty";
  EXPECT_EQ(read32(host.ecam(), (3u << 15) | 1), 0xffffffffu) << "misaligned access";
}

TEST_F(PciTest, IdentityIsReadOnlyAndCommandIsWritable) {
  cf8Write(3, 0, 0xdeadbeef);
  EXPECT_EQ(cf8Read(3, 0, 0), 0x10411af4u);
  cf8Write(3, 4, 0xffff, 2);
  EXPECT_EQ(cf8Read(3, 0, 4, 2), 0x0407u) << "only IO, memory, bus master and INTx disable stick";
}

TEST_F(PciTest, SlotConflictsAreRefused) {
  PciConfigSpace other{PciIdentity{.vendor = 1, .device = 2}};
  EXPECT_THROW(host.attach(3, 0, other), std::invalid_argument);
  EXPECT_THROW(host.attach(32, 0, other), std::invalid_argument);
}

// A device server's hello is untrusted: the BAR sizes it declares are
// checked before any address arithmetic, so none can wrap past the window.
std::string placementError(std::vector<BarRequest> bars, uint64_t next = 0) {
  try {
    placeBars(bars, next, {3ull << 30, 512ull << 20}, "virtio-blk-4.0");
  } catch (const std::invalid_argument& error) {
    return error.what();
  }
  return "";
}

TEST(BarPlacement, HostileSizesAreRefusedBeforeAnyArithmetic) {
  EXPECT_EQ(
      placementError({{0, 1ull << 63, false, true}}),
      "virtio-blk-4.0: BAR 0 (0x8000000000000000 bytes): larger than the whole 0x20000000-byte PCI window");
  EXPECT_NE(placementError({{0, ~0ull, false, false}}).find("power of two"), std::string::npos);
  EXPECT_NE(placementError({{0, 0, false, false}}).find("power of two"), std::string::npos);
  EXPECT_NE(placementError({{0, 3 << 12, false, false}}).find("power of two"), std::string::npos);
  EXPECT_NE(placementError({{0, 8, false, false}}).find("at least 16 bytes"), std::string::npos);
  EXPECT_NE(placementError({{7, 4096, false, false}}).find("no such BAR register"), std::string::npos);
  EXPECT_NE(placementError({{6, 4096, false, true}}).find("no such BAR register"), std::string::npos)
      << "the expansion ROM is 32-bit";
  EXPECT_EQ(placementError({{6, 4096, false, false}}), "") << "the expansion ROM";
  EXPECT_NE(placementError({{5, 4096, false, true}}).find("no such BAR register"), std::string::npos);
  EXPECT_NE(placementError({{0, 4096, false, true}, {1, 4096, false, false}}).find("overlaps another BAR"),
            std::string::npos);
  EXPECT_NE(placementError({{0, 256, true, false}}).find("I/O BARs are not supported"), std::string::npos);
  // Each fits alone; together they do not.
  EXPECT_NE(placementError({{0, 256ull << 20, false, false}, {1, 512ull << 20, false, false}})
                .find("window is full"),
            std::string::npos);
  // A cursor already at the end of the window.
  EXPECT_NE(placementError({{0, 4096, false, false}}, (3ull << 30) + (512ull << 20)).find("window is full"),
            std::string::npos);
}

TEST(BarPlacement, NaturallyAlignedOneAfterAnother) {
  uint64_t next = 0;
  std::vector<BarRequest> bars = {
      {0, 0x1000, false, false}, {2, 0x4000, false, true}, {4, 0x20, false, false}};
  auto addresses = placeBars(bars, next, {3ull << 30, 512ull << 20}, "dev");
  EXPECT_EQ(addresses, (std::vector<uint64_t>{0xc000'0000, 0xc000'4000, 0xc000'8000}));
  EXPECT_EQ(next, 0xc000'8020u);
  auto whole = placeBars(std::vector<BarRequest>{{0, 512ull << 20, false, false}}, next = 0,
                         {3ull << 30, 512ull << 20}, "dev");
  EXPECT_EQ(whole, (std::vector<uint64_t>{3ull << 30}));
}

TEST(PciBar, SizingAndRelocation) {
  PciConfigSpace device{PciIdentity{.vendor = 0x1af4, .device = 0x1042}};
  device.setBar(0, {PciBarKind::MEMORY64, 0x4000, true}, 0xc0000000);
  std::vector<std::tuple<int, uint64_t, bool>> changes;
  device.setBarCallback(
      [&](int bar, uint64_t address, bool enabled) { changes.emplace_back(bar, address, enabled); });

  EXPECT_EQ(device.readConfig(0x10, 4), 0xc000000cu) << "64-bit prefetchable flags";
  device.writeConfig(0x10, 4, 0xffffffff);
  device.writeConfig(0x14, 4, 0xffffffff);
  EXPECT_EQ(device.readConfig(0x10, 4), 0xffffc00cu) << "size mask";
  EXPECT_EQ(device.readConfig(0x14, 4), 0xffffffffu);
  device.writeConfig(0x10, 4, 0xd0000000);
  device.writeConfig(0x14, 4, 0x1);
  EXPECT_EQ(device.barAddress(0), 0x1d0000000u);
  EXPECT_FALSE(device.decodes(0));
  device.writeConfig(0x04, 2, PciConfigSpace::COMMAND_MEMORY);
  ASSERT_FALSE(changes.empty());
  EXPECT_EQ(changes.back(), std::make_tuple(0, uint64_t{0x1d0000000}, true));
}

}  // namespace
}  // namespace cellvisor

namespace cellvisor {
namespace {

TEST(ResourceAllocator, BarsFillTheLowWindowThenSixtyFourBitOnesGoAboveRam) {
  ResourceAllocator resources(6ull << 30);  // RAM up to 6 GiB: the 64-bit window starts at 6 GiB.
  EXPECT_EQ(resources.mmio64Window().base, 6ull << 30);
  std::vector<BarRequest> small{{0, 0x8000, false, true}};
  EXPECT_EQ(resources.placeBars(small, "a"), std::vector<uint64_t>{layout::PCI_MMIO32_BASE});
  std::vector<BarRequest> huge{{0, 256ull << 20, false, true}, {2, 256ull << 20, false, true}};
  auto placed = resources.placeBars(huge, "vram");
  EXPECT_EQ(placed, (std::vector<uint64_t>{6ull << 30, (6ull << 30) + (256ull << 20)}))
      << "no room below 4 GiB for 512 MiB more";
  std::vector<BarRequest> thirtyTwo{{0, 512ull << 20, false, false}};
  EXPECT_THROW(resources.placeBars(thirtyTwo, "old"), std::invalid_argument)
      << "32-bit BARs stay below 4 GiB";
  EXPECT_EQ(resources.placeBars(small, "b"), std::vector<uint64_t>{layout::PCI_MMIO32_BASE + 0x8000})
      << "a failed placement takes nothing";
}

TEST(ResourceAllocator, GsisStartAfterTheIoapicPins) {
  ResourceAllocator resources(1 << 30);
  EXPECT_EQ(resources.allocateGsi(), layout::FIRST_MSI_GSI);
  EXPECT_EQ(resources.allocateGsi(), layout::FIRST_MSI_GSI + 1);
}

}  // namespace
}  // namespace cellvisor

namespace cellvisor {
namespace {

// MSI's registers are the config space's; the route follows them, with the
// reserved bits (address 1:0, multiple messages) not taking writes.
TEST(Msi, RouteFollowsTheCapabilityRegisters) {
  pci::ConfigSpace config;
  config.setIdentity({.vendor = 0x8086, .device = 0x2922});
  pci::Msi msi(config);
  uint16_t cap = msi.addCapability();
  EXPECT_EQ(config.read(cap, 1), pci::CAPABILITY_MSI);
  EXPECT_EQ(config.read(pci::CAPABILITIES, 1), cap);
  EXPECT_FALSE(msi.enabled());
  EXPECT_EQ(msi.route().address, 0u);
  config.write(static_cast<uint16_t>(cap + 4), 4, 0xfee01003);
  config.write(static_cast<uint16_t>(cap + 8), 4, 0);
  config.write(static_cast<uint16_t>(cap + 12), 2, 0x4041);
  config.write(static_cast<uint16_t>(cap + 2), 2, 0x0071);  // Enable, and ask for 8 messages.
  EXPECT_EQ(config.read(static_cast<uint16_t>(cap + 2), 2), pci::Msi::ADDRESS_64 | pci::Msi::ENABLE);
  ASSERT_TRUE(msi.enabled());
  auto route = msi.route();
  EXPECT_EQ(route.vector, 0);
  EXPECT_EQ(route.address, 0xfee01000u);
  EXPECT_EQ(route.data, 0x4041u);
  EXPECT_TRUE(msi.touches(static_cast<uint16_t>(cap + 12), 2));
  EXPECT_FALSE(msi.touches(static_cast<uint16_t>(cap + 14), 2));
}

}  // namespace
}  // namespace cellvisor
