// Driver-harness tests at the edges of the virtio-blk server: the largest
// queues the options accept, a reset while the backend is busy, io_uring
// opcodes a compromised server might try, a backend ring that fails, and a
// bootstrap whose counts do not fit the device.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <thread>
#include <vector>

#include "host/server-catalog.h"
#include "servers/runtime/virtio-transport.h"
#include "tests/harness/blk-harness.h"

namespace cellvisor::testing {
namespace {

constexpr uint32_t MAX_SEGMENTS = 32;  // The device's max_discard_seg.

// A discard request body: `MAX_SEGMENTS` one-sector segments from `first`.
uint64_t discardSegments(BlkHarness& blk, uint64_t first) {
  uint64_t at = blk.harness.allocate(16 * MAX_SEGMENTS, 16);
  for (uint32_t i = 0; i < MAX_SEGMENTS; ++i) {
    uint64_t sector = first + i;
    uint32_t count = 1;
    std::memcpy(blk.harness.host(at + 16 * i, 8), &sector, 8);
    std::memcpy(blk.harness.host(at + 16 * i + 8, 4), &count, 4);
  }
  return at;
}

std::vector<uint8_t> expectedPattern(uint32_t length, uint32_t seed) {
  std::vector<uint8_t> bytes(length);
  std::mt19937 random(seed);
  for (auto& byte : bytes) byte = static_cast<uint8_t>(random());
  return bytes;
}

// 64 queues of 1024 entries are both accepted by the option parser; a full
// last queue with 32-segment discards asks for more backend operations than
// the kernel lets one io_uring hold. All of them must complete.
TEST(VirtioBlkLimits, LargestAcceptedQueuesServeTheLastQueue) {
  constexpr uint16_t QUEUES = 64;
  constexpr uint16_t SIZE = 1024;
  constexpr uint16_t LAST = QUEUES - 1;
  constexpr int WRITES = SIZE / 2;
  BlkHarness blk(",queue-size=1024", QUEUES, ALL_FEATURES, O_RDWR, SIZE);
  ASSERT_EQ(blk.harness.queueSize(LAST), SIZE);
  std::map<uint16_t, uint64_t> statuses;
  for (int i = 0; i < SIZE; ++i) {
    uint64_t status = blk.harness.allocate(1, 1);
    *blk.harness.host(status) = 0xee;
    std::vector<Buffer> buffers;
    if (i < WRITES) {
      buffers = {{blk.header(OUT, 8ull * i), 16, false}, {blk.pattern(4096, 100u + i), 4096, false}};
    } else {
      uint64_t first = DISK_BYTES / 1024 + uint64_t{MAX_SEGMENTS} * (i - WRITES);  // The second half.
      buffers = {{blk.header(DISCARD, 0), 16, false},
                 {discardSegments(blk, first), 16 * MAX_SEGMENTS, false}};
    }
    buffers.push_back({status, 1, true});
    statuses[blk.harness.submit(LAST, buffers, true)] = status;
  }
  blk.harness.kick(LAST);
  auto done = blk.harness.waitForCompletions(LAST, SIZE, std::chrono::seconds(60));
  ASSERT_EQ(done.size(), size_t{SIZE});
  for (const auto& completion : done) EXPECT_EQ(*blk.harness.host(statuses.at(completion.head)), S_OK);
  UniqueFd fd = blk.disk.open(O_RDONLY);
  for (int i = 0; i < WRITES; ++i) {
    std::vector<uint8_t> onDisk(4096);
    ASSERT_EQ(::pread(fd.get(), onDisk.data(), 4096, 4096 * i), 4096);
    ASSERT_EQ(onDisk, expectedPattern(4096, 100u + i)) << i;
  }
  // The first queue works beside it.
  EXPECT_EQ(blk.io(IN, 0, blk.harness.allocate(4096), 4096, 0).status, S_OK);
}

// A reset while thousands of discards keep the backend busy and reads wait
// behind them: once the status reads 0 the device must not write guest memory
// again, and requests after the reset, on the same heads, complete with their
// own results (never one left over from before).
TEST(VirtioBlkReset, ResetUnderLoadLeavesNothingBehind) {
  constexpr uint16_t SIZE = 256;
  constexpr int DISCARDS = 200;  // 6400 backend operations: more than the submission ring.
  constexpr int READS = SIZE - DISCARDS;
  constexpr uint32_t READ_BYTES = 16384;
  BlkHarness blk(",queue-size=256", 1, ALL_FEATURES, O_RDWR, SIZE);
  {
    UniqueFd fd = blk.disk.open();
    std::vector<uint8_t> bytes = expectedPattern(1 << 20, 5);
    ASSERT_EQ(::pwrite(fd.get(), bytes.data(), bytes.size(), 0), static_cast<ssize_t>(bytes.size()));
  }
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < DISCARDS; ++i) {
      uint64_t first = DISK_BYTES / 1024 + uint64_t{MAX_SEGMENTS} * i;
      blk.harness.submit(0,
                         {{blk.header(DISCARD, 0), 16, false},
                          {discardSegments(blk, first), 16 * MAX_SEGMENTS, false},
                          {blk.harness.allocate(1, 1), 1, true}},
                         true);
    }
    uint64_t buffers = blk.harness.allocate(uint64_t{READ_BYTES} * READS);
    std::memset(blk.harness.host(buffers, uint64_t{READ_BYTES} * READS), 0xaa, uint64_t{READ_BYTES} * READS);
    for (int i = 0; i < READS; ++i) {
      blk.harness.submit(0,
                         {{blk.header(IN, uint64_t{READ_BYTES / 512} * i), 16, false},
                          {buffers + uint64_t{READ_BYTES} * i, READ_BYTES, true},
                          {blk.harness.allocate(1, 1), 1, true}},
                         true);
    }
    blk.harness.kick(0);
    ASSERT_TRUE(blk.harness.reset()) << "round " << round;
    const uint8_t* readInto = blk.harness.host(buffers, uint64_t{READ_BYTES} * READS);
    std::vector<uint8_t> afterReset(readInto, readInto + uint64_t{READ_BYTES} * READS);

    // Up again at once; every head is used again for a read of its own.
    blk.harness.initialize(ALL_FEATURES, SIZE);
    struct Read {
      int index;
      uint64_t data;
      uint64_t status;
    };
    std::map<uint16_t, Read> reads;  // By head.
    for (int i = 0; i < SIZE; ++i) {
      uint64_t data = blk.harness.allocate(4096);
      uint64_t status = blk.harness.allocate(1, 1);
      *blk.harness.host(status) = 0xee;
      uint16_t head = blk.harness.submit(
          0, {{blk.header(IN, 8ull * i), 16, false}, {data, 4096, true}, {status, 1, true}}, true);
      reads[head] = {i, data, status};
    }
    blk.harness.kick(0);
    auto done = blk.harness.waitForCompletions(0, SIZE, std::chrono::seconds(20));
    ASSERT_EQ(done.size(), size_t{SIZE}) << "round " << round;
    std::vector<uint8_t> disk = expectedPattern(1 << 20, 5);
    for (const auto& completion : done) {
      const Read& read = reads.at(completion.head);
      ASSERT_EQ(*blk.harness.host(read.status), S_OK) << "round " << round << " head " << completion.head;
      EXPECT_EQ(completion.length, 4096u + 1);
      ASSERT_EQ(std::memcmp(blk.harness.host(read.data, 4096), disk.data() + 4096 * read.index, 4096), 0)
          << "round " << round << " read " << read.index;
    }
    EXPECT_EQ(std::memcmp(afterReset.data(), readInto, afterReset.size()), 0)
        << "round " << round << ": guest memory written after the reset";
    EXPECT_FALSE(blk.harness.process().exited());
  }
}

// One write through queue 0 of a fresh harness; returns its status byte.
uint8_t writeOnce(VirtioHarness& harness, uint64_t sector, uint64_t data, std::chrono::seconds timeout) {
  uint64_t header = harness.allocate(16, 16);
  uint64_t status = harness.allocate(1, 1);
  *harness.host(status) = 0xee;
  std::memcpy(harness.host(header, 4), &OUT, 4);
  std::memcpy(harness.host(header + 8, 8), &sector, 8);
  harness.submit(0, {{header, 16, false}, {data, 4096, false}, {status, 1, true}});
  harness.kick(0);
  if (harness.waitForCompletions(0, 1, timeout).size() != 1) return 0xff;
  return *harness.host(status);
}

// A compromised server could reach through io_uring what its seccomp filter
// forbids (open a file, make a socket). Its ring takes only the opcodes the
// backend uses, on its registered file; test-only fault injection (on a
// ping) makes the server try, and the ping's reply says what the kernel did.
class RingRestriction : public ::testing::TestWithParam<const char*> {};

TEST_P(RingRestriction, RefusesOpcodesTheBackendDoesNotUse) {
  TempDisk disk;
  VirtioHarness harness("virtio-blk", disk.path() + ",queues=1", disk.open(), 1, 64ull << 20, GetParam());
  harness.initialize(ALL_FEATURES);
  auto reply = harness.channel().call([](proto::Request::Builder request) { request.setPing(7); });
  auto root = reply.root<proto::Reply>();
  ASSERT_TRUE(root.isError()) << "the fault was not injected";
  std::string outcome = root.getError();
  EXPECT_NE(outcome.find(": -13 (Permission denied)"), std::string::npos) << outcome;
  EXPECT_EQ(harness.process().restarts(), 0u);
  EXPECT_FALSE(harness.process().exited());
  // The opcodes it does use still work.
  uint64_t data = harness.allocate(4096);
  EXPECT_EQ(writeOnce(harness, 0, data, std::chrono::seconds(5)), S_OK);
}

INSTANTIATE_TEST_SUITE_P(Opcodes, RingRestriction, ::testing::Values("uring-openat", "uring-socket"));

// When the backend's ring fails under it the server exits saying why, and
// its successor takes up the request in flight: a failed submit is no hang.
TEST(VirtioBlkBackend, AFailedRingRestartsTheServerInsteadOfHanging) {
  TempDisk disk;
  VirtioHarness harness("virtio-blk", disk.path() + ",queues=1", disk.open(), 1, 64ull << 20, "uring-break");
  harness.initialize(ALL_FEATURES);
  SupervisedServer supervised(harness.process());
  harness.channel().call([](proto::Request::Builder request) { request.setPing(1); });
  uint64_t data = harness.allocate(4096);
  std::vector<uint8_t> bytes = expectedPattern(4096, 9);
  std::memcpy(harness.host(data, 4096), bytes.data(), 4096);
  EXPECT_EQ(writeOnce(harness, 8, data, std::chrono::seconds(10)), S_OK);
  EXPECT_EQ(harness.process().restarts(), 1u);
  EXPECT_NE(harness.process().lastExit().find("exited with status"), std::string::npos)
      << harness.process().lastExit();
  std::vector<uint8_t> onDisk(4096);
  UniqueFd fd = disk.open(O_RDONLY);
  ASSERT_EQ(::pread(fd.get(), onDisk.data(), 4096, 4096), 4096);
  EXPECT_EQ(onDisk, bytes);
}

// A bootstrap with fewer interrupts than the device has vectors, on a state
// segment in which a previous instance left a completion half-published:
// the server must refuse it before it finishes that completion (which
// writes guest memory and raises the queue's vector, past the fds it got).
TEST(VirtioBlkBootstrap, CountsThatDoNotFitAreRefusedBeforeAnythingIsTouched) {
  constexpr uint64_t DESCRIPTORS = 0x100000, AVAIL = 0x101000, USED = 0x102000;
  constexpr uint16_t QUEUE_SIZE = 16;
  TempDisk disk;
  GuestMemory memory(16ull << 20);
  DeviceResources resources("harness", 1, 1);  // The device needs 2 vectors: config and queue.
  VirtioState& state = resources.stateBody<VirtioState>();
  publishState(resources.stateHeader(), VIRTIO_STATE_MAGIC, VIRTIO_STATE_LAYOUT_VERSION);
  state.status = VirtioTransport::DRIVER_OK | VirtioTransport::FEATURES_OK | 3;
  state.driverFeatures = VirtioHarness::F_VERSION_1;
  state.pciConfig[0x9a] = 1;     // MSI-X table size - 1.
  state.pciConfig[0x9b] = 0x80;  // MSI-X enabled.
  state.configVector = VirtioTransport::NO_VECTOR;
  QueueState& queue = state.queues[0];
  queue.size = QUEUE_SIZE;
  queue.enabled = 1;
  queue.msixVector = 1;
  queue.descriptors = DESCRIPTORS;
  queue.driverArea = AVAIL;
  queue.deviceArea = USED;
  queue.completing = {1, 0, 0, 0, 1, 0};
  for (uint16_t i = 1; i < MAX_QUEUES; ++i) state.queues[i].msixVector = VirtioTransport::NO_VECTOR;
  ServerLaunch launch;
  launch.binary = findServerBinary("virtio-blk");
  launch.deviceName = "harness";
  launch.options = disk.path() + ",queues=1";
  launch.backends.push_back(disk.open());
  launch.queues = 1;
  launch.vectors = 1;
  DeviceServerProcess process(std::move(launch), resources, memory.memfd(), memory.regions());
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!process.exited() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_TRUE(process.exited()) << "the server serves a bootstrap that does not fit";
  EXPECT_NE(process.reap().find("exited with status 1"), std::string::npos) << process.lastExit();
  uint16_t usedIdx;
  std::memcpy(&usedIdx, memory.translate(USED + 2, 2), 2);
  EXPECT_EQ(usedIdx, 0) << "the refused server published a completion";
  EXPECT_EQ(queue.completing.active, 1) << "the refused server finished the completion";
}

// What is no disk is refused where the image is opened, naming the path,
// before any server starts; and a server handed one refuses it too.
TEST(VirtioBlkImage, SpawnerRefusesWhatIsNoDisk) {
  TempDisk empty(0);
  std::string fifo = ::testing::TempDir() + "/cellvisor-fifo-" + std::to_string(::getpid());
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  struct Case {
    std::string options;
    std::string message;
  };
  std::vector<Case> cases = {
      {"/proc/self/mem", "/proc/self/mem: the disk image is empty (0 bytes)"},
      {empty.path(), empty.path() + ": the disk image is empty (0 bytes)"},
      {"/dev/null", "/dev/null: not a regular file or block device"},
      {fifo, fifo + ": not a regular file or block device"},
      {fifo + ",ro", fifo + ": not a regular file or block device"},  // Opening it must not block.
  };
  for (const auto& c : cases) {
    PciSlotConfig slot{4, 0, "virtio-blk", c.options};
    try {
      prepareServerLaunch(slot, 1, "enforce");
      ADD_FAILURE() << c.options << " was accepted";
    } catch (const std::invalid_argument& error) {
      EXPECT_EQ(std::string(error.what()), "-s 4:0,virtio-blk: " + c.message);
    }
  }
  ::unlink(fifo.c_str());
}

TEST(VirtioBlkImage, ServerRefusesAnEmptyImage) {
  TempDisk empty(0);
  EXPECT_THROW(VirtioHarness("virtio-blk", empty.path() + ",queues=1", empty.open(), 1), DeviceUnavailable);
}

}  // namespace
}  // namespace cellvisor::testing
