// The virtio-pci transport seen by a driver: PCI identity and capabilities,
// BAR0 sizing, feature negotiation, queue setup and activation, MSI-X, reset,
// a restart on the same state segment, and hostile accesses that must
// neither crash it nor corrupt what it presents.
#include "servers/runtime/virtio-transport.h"

#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <random>
#include <vector>

#include "base/guest-memory.h"
#include "core/arch/x86/address-map.h"
#include "proto/state-segment.h"

namespace cellvisor {
namespace {

constexpr uint64_t RAM = 4 * layout::MiB;
constexpr uint8_t ACKNOWLEDGE = 1;
constexpr uint8_t DRIVER = 2;
constexpr uint8_t DRIVER_OK = VirtioTransport::DRIVER_OK;
constexpr uint8_t FEATURES_OK = VirtioTransport::FEATURES_OK;
constexpr uint8_t NEEDS_RESET = VirtioTransport::NEEDS_RESET;

// Common configuration registers (virtio 1.x, 4.1.4.3).
constexpr uint64_t DEVICE_FEATURE_SELECT = 0x00;
constexpr uint64_t DEVICE_FEATURE = 0x04;
constexpr uint64_t DRIVER_FEATURE_SELECT = 0x08;
constexpr uint64_t DRIVER_FEATURE = 0x0c;
constexpr uint64_t CONFIG_MSIX_VECTOR = 0x10;
constexpr uint64_t NUM_QUEUES = 0x12;
constexpr uint64_t DEVICE_STATUS = 0x14;
constexpr uint64_t QUEUE_SELECT = 0x16;
constexpr uint64_t QUEUE_SIZE = 0x18;
constexpr uint64_t QUEUE_MSIX_VECTOR = 0x1a;
constexpr uint64_t QUEUE_ENABLE = 0x1c;
constexpr uint64_t QUEUE_NOTIFY_OFF = 0x1e;
constexpr uint64_t QUEUE_DESC = 0x20;
constexpr uint64_t QUEUE_DRIVER = 0x28;
constexpr uint64_t QUEUE_DEVICE = 0x30;

constexpr uint64_t DESCRIPTORS = 0x1000;
constexpr uint64_t AVAIL = 0x2000;
constexpr uint64_t USED = 0x3000;
constexpr uint64_t BUFFERS = 0x10000;

class FakeDevice : public VirtioDevice {
 public:
  static constexpr uint64_t FEATURES = (1ull << 1) | (1ull << 9);

  uint16_t deviceId() const override { return 2; }
  uint8_t pciClass() const override { return 0x01; }
  uint8_t pciSubclass() const override { return 0x80; }
  uint64_t deviceFeatures() const override { return FEATURES; }
  uint16_t queueCount() const override { return 2; }
  uint16_t queueMaxSize() const override { return 16; }
  void readConfig(uint32_t offset, std::span<uint8_t> data) override {
    for (size_t i = 0; i < data.size(); ++i) data[i] = offset + i < sizeof(config) ? config[offset + i] : 0;
  }
  void writeConfig(uint32_t offset, std::span<const uint8_t> data) override {
    configWrites.emplace_back(offset, std::vector<uint8_t>(data.begin(), data.end()));
  }
  void activate(VirtioTransport&) override { ++activations; }
  void reset() override { ++resets; }
  void queueNotified(uint16_t queue) override { notified.push_back(queue); }

  uint8_t config[8] = {0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88};
  std::vector<std::pair<uint32_t, std::vector<uint8_t>>> configWrites;
  int activations = 0;
  int resets = 0;
  std::vector<uint16_t> notified;
};

struct Descriptor {
  uint64_t address;
  uint32_t length;
  uint16_t flags;
  uint16_t next;
};

struct VirtioTransportTest : ::testing::Test {
  GuestMemory memory{RAM};
  StateSegment segment = StateSegment::create();
  FakeDevice device;
  std::vector<uint16_t> signalled;
  std::unique_ptr<VirtioTransport> transport = makeTransport();

  std::unique_ptr<VirtioTransport> makeTransport() {
    auto made = std::make_unique<VirtioTransport>(device, memory, segment.header(), state());
    made->start([this](uint16_t vector) { signalled.push_back(vector); });
    return made;
  }
  VirtioState& state() { return segment.body<VirtioState>(); }

  uint32_t config(uint16_t offset, uint8_t size) { return transport->configRead(offset, size); }
  std::vector<MsixUpdate> setConfig(uint16_t offset, uint8_t size, uint32_t value) {
    return transport->configWrite(offset, size, value);
  }
  uint64_t common(uint64_t offset, uint8_t size) {
    return transport->barRead(0, VirtioTransport::COMMON + offset, size);
  }
  void setCommon(uint64_t offset, uint8_t size, uint64_t value) {
    transport->barWrite(0, VirtioTransport::COMMON + offset, size, value);
  }
  uint8_t status() { return static_cast<uint8_t>(common(DEVICE_STATUS, 1)); }
  void setStatus(uint8_t value) { setCommon(DEVICE_STATUS, 1, value); }

  // Walks the capability list as a driver does; ids and where they are.
  std::vector<std::pair<uint8_t, uint16_t>> capabilities() {
    std::vector<std::pair<uint8_t, uint16_t>> found;
    if (!(config(0x06, 2) & 0x10)) return found;
    for (uint32_t at = config(0x34, 1) & ~3u; at != 0 && found.size() < 48; at = config(at + 1, 1) & ~3u) {
      found.emplace_back(static_cast<uint8_t>(config(static_cast<uint16_t>(at), 1)),
                         static_cast<uint16_t>(at));
    }
    return found;
  }
  uint16_t capability(uint8_t id, uint8_t virtioType = 0) {
    for (auto [capId, at] : capabilities()) {
      if (capId == id && (id != 0x09 || config(at + 3, 1) == virtioType)) return at;
    }
    return 0;
  }
  uint16_t msixControlOffset() { return static_cast<uint16_t>(capability(0x11) + 2); }

  void negotiate(uint64_t features = VirtioTransport::F_VERSION_1) {
    setStatus(ACKNOWLEDGE);
    setStatus(ACKNOWLEDGE | DRIVER);
    setCommon(DRIVER_FEATURE_SELECT, 4, 0);
    setCommon(DRIVER_FEATURE, 4, features & 0xffffffff);
    setCommon(DRIVER_FEATURE_SELECT, 4, 1);
    setCommon(DRIVER_FEATURE, 4, features >> 32);
    setStatus(ACKNOWLEDGE | DRIVER | FEATURES_OK);
  }
  void setUpQueue(uint16_t queue, uint16_t size, uint64_t descriptors, uint64_t avail, uint64_t used,
                  uint16_t vector = VirtioTransport::NO_VECTOR) {
    setCommon(QUEUE_SELECT, 2, queue);
    setCommon(QUEUE_SIZE, 2, size);
    // 64-bit addresses in two 32-bit halves, as Linux writes them.
    setCommon(QUEUE_DESC, 4, descriptors & 0xffffffff);
    setCommon(QUEUE_DESC + 4, 4, descriptors >> 32);
    setCommon(QUEUE_DRIVER, 4, avail & 0xffffffff);
    setCommon(QUEUE_DRIVER + 4, 4, avail >> 32);
    setCommon(QUEUE_DEVICE, 8, used);
    setCommon(QUEUE_MSIX_VECTOR, 2, vector);
    setCommon(QUEUE_ENABLE, 2, 1);
  }
  // A driver that negotiated `features`, set up queue 0 (8 entries, MSI-X
  // vector 1) and set DRIVER_OK.
  void bringUp(uint64_t features = VirtioTransport::F_VERSION_1) {
    negotiate(features);
    setUpQueue(0, 8, DESCRIPTORS, AVAIL, USED, 1);
    setStatus(ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK);
  }
  void enableMsix() {
    setConfig(msixControlOffset(), 2, 0x8000);
    for (uint16_t vector = 0; vector < transport->vectorCount(); ++vector) {
      transport->barWrite(0, VirtioTransport::MSIX_TABLE + 16ull * vector + 12, 4, 0);  // Unmask.
    }
  }
  // One readable and one writable descriptor at `head`, offered to queue 0.
  void offer(uint16_t head) {
    memory.writeObject(DESCRIPTORS + 16ull * head,
                       Descriptor{BUFFERS, 16, 1, static_cast<uint16_t>(head + 1)});
    memory.writeObject(DESCRIPTORS + 16ull * (head + 1), Descriptor{BUFFERS + 0x100, 32, 2, 0});
    uint16_t idx;
    memory.read(AVAIL + 2, {reinterpret_cast<uint8_t*>(&idx), 2});
    memory.writeObject<uint16_t>(AVAIL + 4 + 2ull * (idx % 8), head);
    memory.writeObject<uint16_t>(AVAIL + 2, static_cast<uint16_t>(idx + 1));
  }
  uint16_t usedIdx() {
    uint16_t idx;
    memory.read(USED + 2, {reinterpret_cast<uint8_t*>(&idx), 2});
    return idx;
  }
  std::pair<uint32_t, uint32_t> usedElement(uint16_t slot) {
    uint32_t element[2];
    memory.read(USED + 4 + 8ull * slot, {reinterpret_cast<uint8_t*>(element), 8});
    return {element[0], element[1]};
  }
  std::vector<uint8_t> stateBytes() {
    auto* bytes = reinterpret_cast<const uint8_t*>(&state());
    return {bytes, bytes + sizeof(VirtioState)};
  }
};

TEST_F(VirtioTransportTest, IdentifiesAsAModernVirtioDevice) {
  EXPECT_EQ(config(0x00, 2), 0x1af4u);
  EXPECT_EQ(config(0x02, 2), 0x1040u + 2);
  EXPECT_EQ(config(0x00, 4), 0x10421af4u);
  EXPECT_EQ(config(0x08, 1), 1u) << "revision 1: modern only";
  EXPECT_EQ(config(0x09, 1), 0u) << "programming interface";
  EXPECT_EQ(config(0x0a, 1), 0x80u) << "subclass";
  EXPECT_EQ(config(0x0b, 1), 0x01u) << "class";
  EXPECT_EQ(config(0x0e, 1) & 0x7f, 0u) << "type 0 header";
  EXPECT_EQ(config(0x2c, 2), 0x1af4u) << "subsystem vendor";
  EXPECT_NE(config(0x06, 2) & 0x10, 0u) << "capability list present";
  EXPECT_EQ(transport->vectorCount(), 3) << "one config vector and one per queue";
}

TEST_F(VirtioTransportTest, CapabilityListLeadsToEveryVirtioStructure) {
  auto caps = capabilities();
  ASSERT_LT(caps.size(), 48u) << "the capability list loops";
  std::map<uint8_t, uint16_t> virtio;
  for (auto [id, at] : caps) {
    EXPECT_GE(at, 0x40) << "capabilities live after the header";
    EXPECT_LE(at + config(at + 2, 1), 0x100u);
    if (id != 0x09) continue;
    uint8_t type = static_cast<uint8_t>(config(at + 3, 1));
    EXPECT_EQ(virtio.count(type), 0u) << "one capability of each type";
    virtio[type] = at;
  }
  for (uint8_t type = 1; type <= 5; ++type) ASSERT_TRUE(virtio.count(type)) << "virtio cap type " << +type;

  struct Expected {
    uint8_t type;
    uint64_t offset;
  };
  for (Expected want : {Expected{1, VirtioTransport::COMMON}, Expected{2, VirtioTransport::NOTIFY},
                        Expected{3, VirtioTransport::ISR}, Expected{4, VirtioTransport::DEVICE_CONFIG}}) {
    uint16_t at = virtio[want.type];
    SCOPED_TRACE(+want.type);
    EXPECT_GE(config(at + 2, 1), 16u);
    EXPECT_EQ(config(at + 4, 1), 0u) << "in BAR0";
    EXPECT_EQ(config(at + 8, 4), want.offset);
    uint32_t length = config(at + 12, 4);
    EXPECT_GT(length, 0u);
    EXPECT_LE(want.offset + length, VirtioTransport::BAR0_SIZE);
  }
  EXPECT_GE(config(virtio[1] + 12, 4), 0x38u) << "common config covers every register";
  uint16_t notify = virtio[2];
  EXPECT_GE(config(notify + 2, 1), 20u);
  EXPECT_EQ(config(notify + 16, 4), VirtioTransport::NOTIFY_MULTIPLIER);
  EXPECT_GE(config(virtio[5] + 2, 1), 20u) << "PCI configuration access capability";

  uint16_t msix = capability(0x11);
  ASSERT_NE(msix, 0);
  EXPECT_EQ(config(msix + 2, 2) & 0x7ff, transport->vectorCount() - 1u) << "table size, minus one";
  EXPECT_EQ(config(msix + 2, 2) & 0xc000, 0u) << "disabled and unmasked at reset";
  EXPECT_EQ(config(msix + 4, 4), VirtioTransport::MSIX_TABLE) << "table in BAR0";
  EXPECT_EQ(config(msix + 8, 4), VirtioTransport::MSIX_PBA) << "PBA in BAR0";
}

TEST_F(VirtioTransportTest, Bar0SizesAs32KiB64BitMemory) {
  EXPECT_EQ(config(0x10, 4), 0x4u);
  setConfig(0x10, 4, 0xffffffff);
  setConfig(0x14, 4, 0xffffffff);
  uint32_t low = config(0x10, 4);
  EXPECT_EQ(low & 0xf, 0x4u) << "64-bit, non-prefetchable memory";
  uint64_t mask = uint64_t{config(0x14, 4)} << 32 | (low & ~0xfu);
  EXPECT_EQ(~mask + 1, VirtioTransport::BAR0_SIZE);

  setConfig(0x10, 4, 0xc0001234);
  setConfig(0x14, 4, 0x1);
  EXPECT_EQ(config(0x10, 4), 0xc0000004u) << "bits below the size read as zero";
  EXPECT_EQ(config(0x14, 4), 0x1u);
  for (uint16_t bar = 0x18; bar <= 0x24; bar += 4) {
    setConfig(bar, 4, 0xffffffff);
    EXPECT_EQ(config(bar, 4), 0u) << "BAR at " << bar << " is not implemented";
  }
}

TEST_F(VirtioTransportTest, OnlyWritableConfigBitsChange) {
  setConfig(0x00, 4, 0);
  EXPECT_EQ(config(0x00, 4), 0x10421af4u);
  setConfig(0x08, 4, 0);
  EXPECT_EQ(config(0x0b, 1), 0x01u);
  setConfig(0x04, 2, 0xffff);
  EXPECT_EQ(config(0x04, 2), 0x0407u) << "I/O, memory, bus master, INTx disable";
  setConfig(0x3c, 1, 0x0b);
  EXPECT_EQ(config(0x3c, 1), 0x0bu) << "interrupt line is scratch";
  uint16_t control = msixControlOffset();
  setConfig(control, 2, 0xffff);
  EXPECT_EQ(config(control, 2), 0xc000u | (transport->vectorCount() - 1u)) << "table size is read-only";
}

TEST_F(VirtioTransportTest, OffersDeviceFeaturesPlusTransportFeatures) {
  setCommon(DEVICE_FEATURE_SELECT, 4, 0);
  EXPECT_EQ(common(DEVICE_FEATURE, 4),
            FakeDevice::FEATURES | VirtioTransport::F_INDIRECT_DESC | VirtioTransport::F_EVENT_IDX);
  setCommon(DEVICE_FEATURE_SELECT, 4, 1);
  EXPECT_EQ(common(DEVICE_FEATURE, 4), VirtioTransport::F_VERSION_1 >> 32);
  EXPECT_EQ(common(DEVICE_FEATURE_SELECT, 4), 1u);
  setCommon(DEVICE_FEATURE_SELECT, 4, 2);
  EXPECT_EQ(common(DEVICE_FEATURE, 4), 0u);
  setCommon(DEVICE_FEATURE_SELECT, 4, 0xffffffff);
  EXPECT_EQ(common(DEVICE_FEATURE, 4), 0u);
}

TEST_F(VirtioTransportTest, FeaturesOkNeedsVersion1) {
  negotiate(FakeDevice::FEATURES);  // A legacy driver.
  EXPECT_EQ(status() & FEATURES_OK, 0) << "the device refuses the feature set";
  setStatus(ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK);
  EXPECT_EQ(status() & DRIVER_OK, 0);
  EXPECT_EQ(device.activations, 0);
}

TEST_F(VirtioTransportTest, FeaturesOkRefusesBitsNotOffered) {
  negotiate(VirtioTransport::F_VERSION_1 | (1ull << 5));
  EXPECT_EQ(status() & FEATURES_OK, 0);
  negotiate(VirtioTransport::F_VERSION_1 | (1ull << 40));
  EXPECT_EQ(status() & FEATURES_OK, 0);
}

TEST_F(VirtioTransportTest, AcceptedFeaturesAreFrozen) {
  uint64_t wanted = VirtioTransport::F_VERSION_1 | VirtioTransport::F_EVENT_IDX | (1ull << 9);
  negotiate(wanted);
  ASSERT_NE(status() & FEATURES_OK, 0);
  setCommon(DRIVER_FEATURE_SELECT, 4, 0);
  EXPECT_EQ(common(DRIVER_FEATURE, 4), wanted & 0xffffffff);
  setCommon(DRIVER_FEATURE, 4, 0xffffffff);  // Too late.
  EXPECT_EQ(common(DRIVER_FEATURE, 4), wanted & 0xffffffff);
  setCommon(DRIVER_FEATURE_SELECT, 4, 1);
  EXPECT_EQ(common(DRIVER_FEATURE, 4), 1u);

  setUpQueue(0, 8, DESCRIPTORS, AVAIL, USED);
  setStatus(ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK);
  EXPECT_TRUE(transport->featureNegotiated(VirtioTransport::F_EVENT_IDX));
  EXPECT_TRUE(transport->featureNegotiated(1ull << 9));
  EXPECT_FALSE(transport->featureNegotiated(VirtioTransport::F_INDIRECT_DESC));
  EXPECT_FALSE(transport->featureNegotiated(1ull << 1));
}

TEST_F(VirtioTransportTest, DriverOkWithoutFeaturesOkIsRefused) {
  setStatus(ACKNOWLEDGE | DRIVER);
  setUpQueue(0, 8, DESCRIPTORS, AVAIL, USED);
  setStatus(ACKNOWLEDGE | DRIVER | DRIVER_OK);
  EXPECT_EQ(status() & DRIVER_OK, 0);
  EXPECT_FALSE(transport->live());
  EXPECT_EQ(device.activations, 0);
}

TEST_F(VirtioTransportTest, QueuesAreSetUpAndActivatedOnDriverOk) {
  EXPECT_EQ(common(NUM_QUEUES, 2), 2u);
  for (uint16_t queue = 0; queue < 2; ++queue) {
    setCommon(QUEUE_SELECT, 2, queue);
    EXPECT_EQ(common(QUEUE_SELECT, 2), queue);
    EXPECT_EQ(common(QUEUE_SIZE, 2), 16u) << "the maximum until the driver picks";
    EXPECT_EQ(common(QUEUE_NOTIFY_OFF, 2), queue);
    EXPECT_EQ(common(QUEUE_ENABLE, 2), 0u);
    EXPECT_EQ(common(QUEUE_MSIX_VECTOR, 2), VirtioTransport::NO_VECTOR);
  }
  negotiate();
  setUpQueue(0, 8, 0x1'0000'0000ull | DESCRIPTORS, AVAIL, USED, 1);
  setCommon(QUEUE_SELECT, 2, 0);
  EXPECT_EQ(common(QUEUE_DESC, 8), 0x1'0000'0000ull | DESCRIPTORS) << "both halves";
  setCommon(QUEUE_DESC + 4, 4, 0);
  setCommon(QUEUE_SELECT, 2, 0);
  EXPECT_EQ(common(QUEUE_SIZE, 2), 8u);
  EXPECT_EQ(common(QUEUE_DESC, 8), DESCRIPTORS);
  EXPECT_EQ(common(QUEUE_DRIVER, 4), AVAIL);
  EXPECT_EQ(common(QUEUE_DRIVER + 4, 4), 0u);
  EXPECT_EQ(common(QUEUE_DEVICE, 8), USED);
  EXPECT_EQ(common(QUEUE_MSIX_VECTOR, 2), 1u);
  EXPECT_EQ(common(QUEUE_ENABLE, 2), 1u);
  EXPECT_EQ(device.activations, 0);
  EXPECT_EQ(transport->queue(0), nullptr) << "no live queue before DRIVER_OK";

  setStatus(ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK);
  EXPECT_EQ(status(), ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK);
  EXPECT_TRUE(transport->live());
  EXPECT_EQ(device.activations, 1);
  ASSERT_NE(transport->queue(0), nullptr);
  EXPECT_EQ(transport->queue(0)->size(), 8);
  EXPECT_EQ(transport->queue(1), nullptr) << "queue 1 was never enabled";
  EXPECT_EQ(transport->queue(2), nullptr);
  setStatus(ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK);
  EXPECT_EQ(device.activations, 1) << "DRIVER_OK written again activates nothing";
}

TEST_F(VirtioTransportTest, QueueSizeMustBeAPowerOfTwoWithinTheMaximum) {
  setCommon(QUEUE_SELECT, 2, 1);
  for (uint64_t bad : {0u, 3u, 12u, 32u, 0x8000u}) {
    setCommon(QUEUE_SIZE, 2, bad);
    EXPECT_EQ(common(QUEUE_SIZE, 2), 16u) << bad;
  }
  setCommon(QUEUE_SIZE, 2, 4);
  EXPECT_EQ(common(QUEUE_SIZE, 2), 4u);
}

TEST_F(VirtioTransportTest, QueueProgrammingIsFrozenWhileLive) {
  bringUp();
  setCommon(QUEUE_SELECT, 2, 0);
  setCommon(QUEUE_SIZE, 2, 4);
  setCommon(QUEUE_DESC, 8, 0x4000);
  setCommon(QUEUE_DRIVER, 8, 0x5000);
  setCommon(QUEUE_DEVICE, 8, 0x6000);
  setCommon(QUEUE_ENABLE, 2, 0);
  EXPECT_EQ(common(QUEUE_SIZE, 2), 8u);
  EXPECT_EQ(common(QUEUE_DESC, 8), DESCRIPTORS);
  EXPECT_EQ(common(QUEUE_DRIVER, 8), AVAIL);
  EXPECT_EQ(common(QUEUE_DEVICE, 8), USED);
  EXPECT_EQ(common(QUEUE_ENABLE, 2), 1u);
  setCommon(QUEUE_SELECT, 2, 1);
  setCommon(QUEUE_ENABLE, 2, 1);
  EXPECT_EQ(common(QUEUE_ENABLE, 2), 0u) << "no queue is added while live";
}

TEST_F(VirtioTransportTest, UnmappableQueueVectorReadsNoVector) {
  setCommon(QUEUE_SELECT, 2, 0);
  setCommon(QUEUE_MSIX_VECTOR, 2, 2);
  EXPECT_EQ(common(QUEUE_MSIX_VECTOR, 2), 2u);
  setCommon(QUEUE_MSIX_VECTOR, 2, 3);  // Vectors are 0-2.
  EXPECT_EQ(common(QUEUE_MSIX_VECTOR, 2), VirtioTransport::NO_VECTOR);
}

TEST_F(VirtioTransportTest, UnmappableConfigVectorReadsNoVector) {
  setCommon(CONFIG_MSIX_VECTOR, 2, 0);
  EXPECT_EQ(common(CONFIG_MSIX_VECTOR, 2), 0u);
  setCommon(CONFIG_MSIX_VECTOR, 2, 3);
  EXPECT_EQ(common(CONFIG_MSIX_VECTOR, 2), VirtioTransport::NO_VECTOR);
}

TEST_F(VirtioTransportTest, SelectingAMissingQueueReadsZeroAndWritesNothing) {
  setCommon(QUEUE_SELECT, 2, 7);
  EXPECT_EQ(common(QUEUE_SIZE, 2), 0u);
  EXPECT_EQ(common(QUEUE_DESC, 8), 0u);
  auto before = stateBytes();
  setCommon(QUEUE_SIZE, 2, 8);
  setCommon(QUEUE_DESC, 8, 0x1000);
  setCommon(QUEUE_ENABLE, 2, 1);
  setCommon(QUEUE_MSIX_VECTOR, 2, 1);
  EXPECT_EQ(stateBytes(), before);
}

TEST_F(VirtioTransportTest, RingsOutsideRamNeedAReset) {
  enableMsix();
  setCommon(CONFIG_MSIX_VECTOR, 2, 0);
  negotiate();
  setUpQueue(0, 8, RAM, AVAIL, USED, 1);
  setStatus(ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK);
  EXPECT_NE(status() & NEEDS_RESET, 0);
  EXPECT_FALSE(transport->live());
  EXPECT_EQ(device.activations, 0);
  EXPECT_EQ(signalled, std::vector<uint16_t>{0}) << "configuration change on the config vector";
  EXPECT_EQ(transport->barRead(0, VirtioTransport::ISR, 1), 2u);
  EXPECT_EQ(transport->barRead(0, VirtioTransport::ISR, 1), 0u) << "reading ISR acknowledges it";
  DescriptorChain chain;
  EXPECT_EQ(transport->pop(0, chain), SplitVirtqueue::Pop::EMPTY);

  setStatus(0);
  EXPECT_EQ(status(), 0) << "reset clears NEEDS_RESET";
  bringUp();
  EXPECT_TRUE(transport->live());
}

TEST_F(VirtioTransportTest, DoorbellsReachTheDeviceOnlyWhenLive) {
  transport->barWrite(0, VirtioTransport::NOTIFY, 2, 0);
  EXPECT_TRUE(device.notified.empty());
  bringUp();
  transport->barWrite(0, VirtioTransport::NOTIFY, 2, 0);
  transport->barWrite(0, VirtioTransport::NOTIFY + VirtioTransport::NOTIFY_MULTIPLIER, 2, 1);  // Disabled.
  transport->barWrite(0, VirtioTransport::NOTIFY + 63 * VirtioTransport::NOTIFY_MULTIPLIER, 2, 63);
  transport->doorbell(0);
  EXPECT_EQ(device.notified, (std::vector<uint16_t>{0, 0}));
  transport->pause();
  transport->doorbell(0);
  EXPECT_EQ(device.notified.size(), 2u) << "paused";
}

TEST_F(VirtioTransportTest, RequestsArePoppedTrackedAndCompletedWithAnInterrupt) {
  enableMsix();
  bringUp();
  offer(2);
  offer(4);
  DescriptorChain chain;
  ASSERT_EQ(transport->pop(0, chain), SplitVirtqueue::Pop::CHAIN);
  EXPECT_EQ(chain.head, 2);
  EXPECT_EQ(chain.readableBytes, 16u);
  EXPECT_EQ(chain.writableBytes, 32u);
  ASSERT_EQ(transport->pop(0, chain), SplitVirtqueue::Pop::CHAIN);
  EXPECT_EQ(transport->inflight(0), (std::vector<uint16_t>{2, 4})) << "oldest first";
  EXPECT_EQ(transport->pop(0, chain), SplitVirtqueue::Pop::EMPTY);

  transport->complete(0, 4, 32);
  EXPECT_EQ(usedIdx(), 1);
  EXPECT_EQ(usedElement(0), std::make_pair(4u, 32u));
  EXPECT_EQ(transport->inflight(0), std::vector<uint16_t>{2});
  EXPECT_EQ(signalled, std::vector<uint16_t>{1}) << "the queue's vector";
  EXPECT_EQ(transport->barRead(0, VirtioTransport::ISR, 1) & 1, 1u);
  transport->complete(0, 2, 0);
  EXPECT_TRUE(transport->inflight(0).empty());
  EXPECT_EQ(usedIdx(), 2);
}

TEST_F(VirtioTransportTest, PausedTransportTakesNothing) {
  bringUp();
  offer(0);
  transport->pause();
  DescriptorChain chain;
  EXPECT_EQ(transport->pop(0, chain), SplitVirtqueue::Pop::EMPTY);
  transport->resume();
  EXPECT_EQ(transport->pop(0, chain), SplitVirtqueue::Pop::CHAIN);
}

TEST_F(VirtioTransportTest, BrokenRingNeedsAReset) {
  bringUp();
  memory.writeObject<uint16_t>(AVAIL + 4, 8);  // A head past the table.
  memory.writeObject<uint16_t>(AVAIL + 2, 1);
  DescriptorChain chain;
  EXPECT_EQ(transport->pop(0, chain), SplitVirtqueue::Pop::BROKEN);
  EXPECT_NE(status() & NEEDS_RESET, 0);
  EXPECT_FALSE(transport->live());
  EXPECT_EQ(transport->pop(0, chain), SplitVirtqueue::Pop::EMPTY);
}

TEST_F(VirtioTransportTest, MaskedVectorIsPendingUntilUnmasked) {
  enableMsix();
  transport->barWrite(0, VirtioTransport::MSIX_TABLE + 16 + 12, 4, 1);  // Mask vector 1.
  bringUp();
  offer(0);
  DescriptorChain chain;
  ASSERT_EQ(transport->pop(0, chain), SplitVirtqueue::Pop::CHAIN);
  transport->complete(0, 0, 0);
  EXPECT_TRUE(signalled.empty());
  EXPECT_EQ(transport->barRead(0, VirtioTransport::MSIX_PBA, 8), 2u) << "vector 1 pending";
  transport->barWrite(0, VirtioTransport::MSIX_TABLE + 16 + 12, 4, 0);
  EXPECT_EQ(signalled, std::vector<uint16_t>{1});
  EXPECT_EQ(transport->barRead(0, VirtioTransport::MSIX_PBA, 8), 0u);
}

TEST_F(VirtioTransportTest, FunctionMaskHoldsInterruptsBack) {
  uint16_t control = msixControlOffset();
  enableMsix();
  setConfig(control, 2, 0xc000);  // Enabled, function masked.
  bringUp();
  offer(0);
  DescriptorChain chain;
  ASSERT_EQ(transport->pop(0, chain), SplitVirtqueue::Pop::CHAIN);
  transport->complete(0, 0, 0);
  EXPECT_TRUE(signalled.empty());
  setConfig(control, 2, 0x8000);
  EXPECT_EQ(signalled, std::vector<uint16_t>{1});
}

TEST_F(VirtioTransportTest, MsixTableWritesReportTheVector) {
  uint64_t entry = VirtioTransport::MSIX_TABLE + 16 * 2;
  auto updates = transport->barWrite(0, entry, 4, 0xfee01000);
  ASSERT_EQ(updates.size(), 1u);
  EXPECT_EQ(updates[0].vector, 2);
  EXPECT_EQ(updates[0].address, 0xfee01000u);
  updates = transport->barWrite(0, entry + 4, 4, 0x1);
  ASSERT_EQ(updates.size(), 1u);
  EXPECT_EQ(updates[0].address, 0x1'fee01000u);
  updates = transport->barWrite(0, entry + 8, 8, 0x0000'0001'0000'0041ull);  // Data and control at once.
  ASSERT_EQ(updates.size(), 1u);
  EXPECT_EQ(updates[0].data, 0x41u);
  EXPECT_EQ(transport->barRead(0, entry, 8), 0x1'fee01000u);
  EXPECT_EQ(transport->barRead(0, entry + 8, 4), 0x41u);
  EXPECT_EQ(transport->barRead(0, entry + 12, 4), 1u) << "masked";

  transport->barWrite(0, entry + 12, 4, 0xfffffffe);
  EXPECT_EQ(transport->barRead(0, entry + 12, 4), 0u) << "only the mask bit exists";

  auto vectors = transport->msixVectors();
  ASSERT_EQ(vectors.size(), 3u);
  EXPECT_EQ(vectors[2].vector, 2);
  EXPECT_EQ(vectors[2].address, 0x1'fee01000u);
  EXPECT_EQ(vectors[2].data, 0x41u);
}

TEST_F(VirtioTransportTest, MsixTableRefusesOddAccesses) {
  auto before = stateBytes();
  uint64_t table = VirtioTransport::MSIX_TABLE;
  EXPECT_TRUE(transport->barWrite(0, table, 2, 0xffff).empty()) << "word";
  EXPECT_TRUE(transport->barWrite(0, table, 1, 0xff).empty()) << "byte";
  EXPECT_TRUE(transport->barWrite(0, table + 2, 4, 0xffffffff).empty()) << "misaligned";
  EXPECT_TRUE(transport->barWrite(0, table + 4, 8, ~0ull).empty()) << "misaligned qword";
  EXPECT_TRUE(transport->barWrite(0, table + 16 * 3, 4, 0xffffffff).empty()) << "past the last vector";
  EXPECT_TRUE(transport->barWrite(0, table + 0xff0, 4, 0xffffffff).empty());
  EXPECT_TRUE(transport->barWrite(0, VirtioTransport::MSIX_PBA, 8, ~0ull).empty()) << "PBA is read-only";
  EXPECT_EQ(stateBytes(), before);
  EXPECT_EQ(transport->barRead(0, table + 16 * 3, 4), 0u);
  EXPECT_EQ(transport->barRead(0, VirtioTransport::MSIX_PBA + 0x800, 8), 0u);
}

TEST_F(VirtioTransportTest, DeviceConfigWindowGoesToTheModel) {
  EXPECT_EQ(transport->barRead(0, VirtioTransport::DEVICE_CONFIG, 4), 0x44332211u);
  EXPECT_EQ(transport->barRead(0, VirtioTransport::DEVICE_CONFIG + 6, 2), 0x8877u);
  EXPECT_EQ(transport->barRead(0, VirtioTransport::DEVICE_CONFIG, 8), 0x8877665544332211u);
  transport->barWrite(0, VirtioTransport::DEVICE_CONFIG + 4, 2, 0xbeef);
  ASSERT_EQ(device.configWrites.size(), 1u);
  EXPECT_EQ(device.configWrites[0].first, 4u);
  EXPECT_EQ(device.configWrites[0].second, (std::vector<uint8_t>{0xef, 0xbe}));
}

TEST_F(VirtioTransportTest, PciCfgCapabilityIsAWindowOnBar0) {
  uint16_t window = capability(0x09, 5);
  ASSERT_NE(window, 0);
  setConfig(window + 4, 1, 0);            // BAR 0.
  setConfig(window + 8, 4, NUM_QUEUES);   // Offset in the BAR.
  setConfig(window + 12, 4, 2);           // Length.
  EXPECT_EQ(config(window + 16, 2), 2u);  // num_queues through the window.
  setConfig(window + 8, 4, QUEUE_SELECT);
  setConfig(window + 16, 2, 1);
  EXPECT_EQ(common(QUEUE_SELECT, 2), 1u) << "written through the window";
  EXPECT_EQ(config(window + 16, 4), 0xffffffffu) << "an access that does not match the length";
  setConfig(window + 4, 1, 3);  // A BAR we do not have.
  EXPECT_EQ(config(window + 16, 2) & 0xffff, 0xffffu) << "reads as nothing there";
  EXPECT_TRUE(setConfig(window + 16, 2, 0).empty());

  // An MSI-X table write through the window has the same effect as one on BAR0.
  setConfig(window + 4, 1, 0);
  setConfig(window + 8, 4, VirtioTransport::MSIX_TABLE + 16 + 8);
  setConfig(window + 12, 4, 4);
  auto updates = setConfig(window + 16, 4, 0x4242);
  ASSERT_EQ(updates.size(), 1u);
  EXPECT_EQ(updates[0].vector, 1);
  EXPECT_EQ(updates[0].data, 0x4242u);
}

TEST_F(VirtioTransportTest, ResetClearsWhatTheDriverProgrammed) {
  enableMsix();
  bringUp(VirtioTransport::F_VERSION_1 | VirtioTransport::F_EVENT_IDX);
  setCommon(CONFIG_MSIX_VECTOR, 2, 0);
  offer(0);
  DescriptorChain chain;
  ASSERT_EQ(transport->pop(0, chain), SplitVirtqueue::Pop::CHAIN);
  transport->complete(0, 0, 0);

  setStatus(0);
  EXPECT_EQ(device.resets, 1);
  EXPECT_EQ(status(), 0);
  EXPECT_FALSE(transport->live());
  EXPECT_EQ(transport->queue(0), nullptr);
  EXPECT_FALSE(transport->featureNegotiated(VirtioTransport::F_EVENT_IDX));
  setCommon(DRIVER_FEATURE_SELECT, 4, 0);
  EXPECT_EQ(common(DRIVER_FEATURE, 4), 0u);
  setCommon(DRIVER_FEATURE_SELECT, 4, 1);
  EXPECT_EQ(common(DRIVER_FEATURE, 4), 0u);
  EXPECT_EQ(common(CONFIG_MSIX_VECTOR, 2), VirtioTransport::NO_VECTOR);
  EXPECT_EQ(common(QUEUE_SELECT, 2), 0u);
  EXPECT_EQ(transport->barRead(0, VirtioTransport::ISR, 1), 0u);
  for (uint16_t queue = 0; queue < 2; ++queue) {
    setCommon(QUEUE_SELECT, 2, queue);
    EXPECT_EQ(common(QUEUE_SIZE, 2), 16u);
    EXPECT_EQ(common(QUEUE_ENABLE, 2), 0u);
    EXPECT_EQ(common(QUEUE_DESC, 8), 0u);
    EXPECT_EQ(common(QUEUE_DRIVER, 8), 0u);
    EXPECT_EQ(common(QUEUE_DEVICE, 8), 0u);
    EXPECT_EQ(common(QUEUE_MSIX_VECTOR, 2), VirtioTransport::NO_VECTOR);
  }
  EXPECT_TRUE(transport->inflight(0).empty());

  // The device comes back from its reset as new: the rings start over.
  std::memset(memory.translate(AVAIL, 0x2000), 0, 0x2000);
  bringUp();
  offer(0);
  ASSERT_EQ(transport->pop(0, chain), SplitVirtqueue::Pop::CHAIN);
  transport->complete(0, 0, 5);
  EXPECT_EQ(usedIdx(), 1);
}

TEST_F(VirtioTransportTest, RestartedTransportContinuesFromTheStateSegment) {
  enableMsix();
  bringUp();
  offer(0);
  offer(2);
  DescriptorChain chain;
  ASSERT_EQ(transport->pop(0, chain), SplitVirtqueue::Pop::CHAIN);

  transport = makeTransport();  // A new server instance on the same segment.
  EXPECT_EQ(device.activations, 1) << "the model is activated by its server, not by the transport";
  EXPECT_TRUE(transport->live());
  ASSERT_NE(transport->queue(0), nullptr);
  EXPECT_EQ(transport->inflight(0), std::vector<uint16_t>{0});
  ASSERT_EQ(transport->pop(0, chain), SplitVirtqueue::Pop::CHAIN);
  EXPECT_EQ(chain.head, 2);
  ASSERT_TRUE(transport->queue(0)->chainAt(0, chain)) << "the request taken before the restart";
  transport->complete(0, 0, 1);
  transport->complete(0, 2, 2);
  EXPECT_EQ(usedIdx(), 2);
  EXPECT_EQ(usedElement(0), std::make_pair(0u, 1u));
  EXPECT_EQ(usedElement(1), std::make_pair(2u, 2u));
}

TEST_F(VirtioTransportTest, RestartFinishesACompletionCutShort) {
  enableMsix();
  bringUp();
  offer(0);
  DescriptorChain chain;
  ASSERT_EQ(transport->pop(0, chain), SplitVirtqueue::Pop::CHAIN);
  // The instance died after recording the completion, before publishing it.
  QueueState& queue = state().queues[0];
  queue.completing = {1, 0, queue.position.used, 0, 77, 0};
  signalled.clear();

  transport = makeTransport();
  EXPECT_EQ(usedIdx(), 1);
  EXPECT_EQ(usedElement(0), std::make_pair(0u, 77u));
  EXPECT_TRUE(transport->inflight(0).empty());
  EXPECT_FALSE(signalled.empty()) << "the driver hears of it";
  EXPECT_EQ(signalled.back(), 1);
}

TEST_F(VirtioTransportTest, RestartDoesNotRepeatAPublishedCompletion) {
  enableMsix();
  bringUp();
  offer(0);
  offer(2);
  DescriptorChain chain;
  ASSERT_EQ(transport->pop(0, chain), SplitVirtqueue::Pop::CHAIN);
  ASSERT_EQ(transport->pop(0, chain), SplitVirtqueue::Pop::CHAIN);
  // Died after the used index went out, before the bookkeeping was cleared.
  QueueState& queue = state().queues[0];
  uint16_t usedBefore = queue.position.used;
  transport->queue(0)->pushUsed(0, 9);
  queue.completing = {1, 0, usedBefore, 0, 9, 0};

  transport = makeTransport();
  EXPECT_EQ(usedIdx(), 1) << "published once, not twice";
  EXPECT_EQ(transport->inflight(0), std::vector<uint16_t>{2});
  transport->complete(0, 2, 3);
  EXPECT_EQ(usedIdx(), 2);
  EXPECT_EQ(usedElement(1), std::make_pair(2u, 3u));
}

TEST_F(VirtioTransportTest, RestartSkipsARequestRecordedButNotTaken) {
  bringUp();
  offer(0);
  offer(2);
  // The instance recorded head 0 as in flight and died before consuming it;
  // whoever restarts resubmits it from the in-flight table.
  QueueState& queue = state().queues[0];
  queue.inflight[0] = ++queue.nextSequence;

  transport = makeTransport();
  EXPECT_EQ(transport->inflight(0), std::vector<uint16_t>{0});
  DescriptorChain chain;
  ASSERT_EQ(transport->pop(0, chain), SplitVirtqueue::Pop::CHAIN);
  EXPECT_EQ(chain.head, 2) << "head 0 is not handed out a second time";
  EXPECT_EQ(transport->pop(0, chain), SplitVirtqueue::Pop::EMPTY);
}

TEST_F(VirtioTransportTest, HostileConfigAccessesChangeNothing) {
  auto before = stateBytes();
  for (uint8_t size : {0, 3, 5, 8, 16}) {
    EXPECT_EQ(config(0x00, size), 0xffffffffu) << +size;
    EXPECT_TRUE(setConfig(0x04, size, 0xffffffff).empty());
  }
  EXPECT_EQ(config(0x01, 2), 0xffffffffu) << "misaligned";
  EXPECT_EQ(config(0x02, 4), 0xffffffffu) << "misaligned";
  setConfig(0x05, 2, 0xffff);
  setConfig(0x12, 4, 0xffffffff);
  for (uint16_t offset : {0x100, 0x104, 0xffc, 0xfffc}) {
    EXPECT_EQ(config(offset, 4), 0u) << "no extended configuration space";
    setConfig(offset, 4, 0xffffffff);
  }
  EXPECT_EQ(stateBytes(), before);
}

TEST_F(VirtioTransportTest, HostileBarAccessesChangeNothing) {
  bringUp();
  auto before = stateBytes();
  struct Access {
    uint8_t bar;
    uint64_t offset;
    uint8_t size;
  };
  for (Access access :
       {Access{1, 0, 4}, Access{2, 0x14, 1}, Access{5, 0, 8}, Access{0, 0, 3}, Access{0, 0x14, 0},
        Access{0, 0x14, 16}, Access{0, VirtioTransport::BAR0_SIZE, 4},
        Access{0, VirtioTransport::BAR0_SIZE - 2, 4}, Access{0, ~0ull, 1}, Access{0, ~0ull - 3, 8}}) {
    SCOPED_TRACE(testing::Message() << "bar " << +access.bar << " offset " << access.offset << " size "
                                    << +access.size);
    EXPECT_EQ(transport->barRead(access.bar, access.offset, access.size), ~0ull);
    EXPECT_TRUE(transport->barWrite(access.bar, access.offset, access.size, 0).empty());
  }
  transport->barWrite(0, VirtioTransport::ISR, 1, 0xff);   // Read-only.
  transport->barWrite(0, VirtioTransport::ISR + 4, 4, 0);  // Nothing there.
  EXPECT_EQ(transport->barRead(0, VirtioTransport::ISR + 4, 4), 0u);
  EXPECT_EQ(stateBytes(), before);
  EXPECT_TRUE(device.configWrites.empty());
  EXPECT_TRUE(device.notified.empty());
  EXPECT_EQ(device.resets, 0);
}

// Seeded garbage: whatever a guest writes to configuration space, the
// identity and the capabilities a driver walks stay as they were.
TEST_F(VirtioTransportTest, GarbageInConfigSpaceKeepsIdentityAndCapabilities) {
  auto caps = capabilities();
  std::vector<bool> writable(256, false);
  auto allow = [&](unsigned from, unsigned count) {
    for (unsigned i = from; i < from + count; ++i) writable[i] = true;
  };
  allow(0x04, 2);  // Command.
  allow(0x10, 8);  // BAR0, 64-bit.
  allow(0x3c, 1);  // Interrupt line.
  allow(capability(0x11) + 2, 2);
  allow(capability(0x09, 5) + 4, 16);  // The window: BAR, offset, length, data.
  std::vector<uint32_t> original(256);
  for (uint16_t offset = 0; offset < 256; ++offset) original[offset] = config(offset, 1);

  std::mt19937 random(20261201);
  for (int i = 0; i < 20000; ++i) {
    uint8_t size = static_cast<uint8_t>(1u << (random() % 4));  // 1, 2, 4 or (refused) 8.
    auto offset = static_cast<uint16_t>(random() % 0x110);
    uint32_t value = static_cast<uint32_t>(random());
    if (random() % 2)
      setConfig(offset, size, value);
    else
      config(offset, size);
  }
  EXPECT_EQ(capabilities(), caps);
  for (uint16_t offset = 0; offset < 256; ++offset) {
    if (writable[offset]) continue;
    // The window's data register reads BAR0 through whatever window a write set up.
    EXPECT_EQ(config(offset, 1), original[offset]) << "config byte " << offset;
  }
  EXPECT_EQ(config(0x10, 4) & 0x7fff, 0x4u) << "BAR0 type and size";
}

// Seeded garbage on BAR0: nothing crashes, and what the driver reads back is
// still something a virtio device may say.
TEST_F(VirtioTransportTest, GarbageOnBar0KeepsRegistersConsistent) {
  enableMsix();
  std::mt19937_64 random(42);
  for (int i = 0; i < 50000; ++i) {
    uint8_t size = static_cast<uint8_t>(1u << (random() % 4));
    // Mostly the common config, with some of everything else.
    uint64_t offset = random() % 4 ? random() % 0x40 : random() % (VirtioTransport::BAR0_SIZE + 0x100);
    uint64_t value = random();
    if (random() % 8 == 0) value &= 0xff;
    if (random() % 3)
      transport->barWrite(0, offset, size, value);
    else
      transport->barRead(0, offset, size);
    if (transport->live() && random() % 16 == 0) {
      DescriptorChain chain;
      uint16_t queue = static_cast<uint16_t>(random() % 2);
      auto result = transport->pop(queue, chain);
      if (result == SplitVirtqueue::Pop::CHAIN || result == SplitVirtqueue::Pop::BAD_CHAIN)
        transport->complete(queue, chain.head, 0);
    }
  }
  for (uint16_t queue = 0; queue < 2; ++queue) {
    setCommon(QUEUE_SELECT, 2, queue);
    uint64_t size = common(QUEUE_SIZE, 2);
    EXPECT_TRUE(size != 0 && size <= 16 && (size & (size - 1)) == 0) << size;
    uint64_t vector = common(QUEUE_MSIX_VECTOR, 2);
    EXPECT_TRUE(vector < 3 || vector == VirtioTransport::NO_VECTOR) << vector;
  }
  EXPECT_EQ(config(0x00, 4), 0x10421af4u);
  // And it still works as a device: reset and go.
  setStatus(0);
  std::memset(memory.translate(0, 0x20000), 0, 0x20000);
  bringUp();
  offer(0);
  DescriptorChain chain;
  ASSERT_EQ(transport->pop(0, chain), SplitVirtqueue::Pop::CHAIN);
}

}  // namespace
}  // namespace cellvisor
