// Driver-harness tests: the real virtio-blk server process, driven through
// its real fds and shared memory exactly as a guest driver would.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <seccomp.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "host/device-supervisor.h"
#include "host/device-timeouts.h"
#include "servers/runtime/virtio-transport.h"
#include "tests/harness/blk-harness.h"

namespace cellvisor::testing {
namespace {

TEST(VirtioBlk, NegotiatesFeaturesAndReportsGeometry) {
  BlkHarness blk(",ser=CELLVISOR-1,sectorsize=512/4096", 2);
  for (int bit : {1, 2, 6, 9, 10, 12, 13, 14, 28, 29, 32})
    EXPECT_TRUE(blk.offered & (1ull << bit)) << "bit " << bit;
  EXPECT_FALSE(blk.offered & (1ull << 5)) << "not read-only";
  EXPECT_EQ(blk.harness.status(), 1 | 2 | 4 | 8);
  EXPECT_EQ(blk.harness.configRead(0, 8), DISK_BYTES / 512) << "capacity in sectors";
  EXPECT_EQ(blk.harness.configRead(0x14, 4), 512u) << "logical block size";
  EXPECT_EQ(blk.harness.configRead(0x18, 1), 3u) << "physical = 8 logical blocks";
  EXPECT_EQ(blk.harness.configRead(0x22, 2), 2u) << "num_queues";
  EXPECT_EQ(blk.harness.wiring().mappedBars, std::vector<uint64_t>{VirtioHarness::BAR_ADDRESS});
  EXPECT_EQ(blk.harness.wiring().doorbells.size(), 2u) << "one ioeventfd per queue";
  EXPECT_EQ(blk.harness.wiring().routes.size(), 3u) << "MSI-X table programming reached the core";
}

TEST(VirtioBlk, WritesAndReadsBackWithChecksums) {
  BlkHarness blk;
  std::mt19937 random(7);
  for (int round = 0; round < 32; ++round) {
    uint32_t length = 512u * (1 + random() % 256);
    uint64_t sector = random() % (DISK_BYTES / 512 - length / 512);
    uint64_t data = blk.pattern(length, static_cast<uint32_t>(round));
    auto written = blk.io(OUT, sector, data, length);
    ASSERT_TRUE(written.completed);
    ASSERT_EQ(written.status, S_OK);
    EXPECT_EQ(written.length, 1u) << "a write returns only the status byte";
    uint64_t back = blk.harness.allocate(length);
    auto read = blk.io(IN, sector, back, length);
    ASSERT_EQ(read.status, S_OK);
    EXPECT_EQ(read.length, length + 1);
    ASSERT_EQ(std::memcmp(blk.harness.host(data, length), blk.harness.host(back, length), length), 0)
        << round;
    // And it really is on the disk.
    std::vector<uint8_t> onDisk(length);
    UniqueFd fd = blk.disk.open(O_RDONLY);
    ASSERT_EQ(::pread(fd.get(), onDisk.data(), length, static_cast<off_t>(sector * 512)),
              static_cast<ssize_t>(length));
    ASSERT_EQ(std::memcmp(onDisk.data(), blk.harness.host(data, length), length), 0);
  }
}

TEST(VirtioBlk, ScatterGatherAndIndirectDescriptors) {
  BlkHarness blk;
  uint64_t a = blk.pattern(4096, 1);
  uint64_t b = blk.pattern(512, 2);
  uint64_t c = blk.pattern(8192, 3);
  auto written = blk.run(
      0, {{blk.header(OUT, 100), 16, false}, {a, 4096, false}, {b, 512, false}, {c, 8192, false}}, true);
  ASSERT_EQ(written.status, S_OK);
  uint64_t back = blk.harness.allocate(4096 + 512 + 8192);
  auto read = blk.run(0, {{blk.header(IN, 100), 16, false}, {back, 4096 + 512 + 8192, true}});
  ASSERT_EQ(read.status, S_OK);
  EXPECT_EQ(std::memcmp(blk.harness.host(back, 4096), blk.harness.host(a, 4096), 4096), 0);
  EXPECT_EQ(std::memcmp(blk.harness.host(back + 4096, 512), blk.harness.host(b, 512), 512), 0);
  EXPECT_EQ(std::memcmp(blk.harness.host(back + 4608, 8192), blk.harness.host(c, 8192), 8192), 0);
}

TEST(VirtioBlk, ManyRequestsInFlightOnSeveralQueues) {
  constexpr uint16_t QUEUES = 4;
  constexpr int PER_QUEUE = 32;
  BlkHarness blk("", QUEUES);
  std::map<std::pair<uint16_t, uint16_t>, uint64_t> statuses;
  for (uint16_t queue = 0; queue < QUEUES; ++queue) {
    for (int i = 0; i < PER_QUEUE; ++i) {
      uint64_t sector = (queue * PER_QUEUE + i) * 8ull;
      uint64_t data = blk.pattern(4096, queue * 1000u + static_cast<uint32_t>(i));
      uint64_t status = blk.harness.allocate(1, 1);
      uint16_t head = blk.harness.submit(
          queue, {{blk.header(OUT, sector), 16, false}, {data, 4096, false}, {status, 1, true}});
      statuses[{queue, head}] = status;
    }
  }
  for (uint16_t queue = 0; queue < QUEUES; ++queue) blk.harness.kick(queue);
  for (uint16_t queue = 0; queue < QUEUES; ++queue) {
    auto done = blk.harness.waitForCompletions(queue, PER_QUEUE);
    ASSERT_EQ(done.size(), static_cast<size_t>(PER_QUEUE)) << "queue " << queue;
    for (const auto& completion : done)
      EXPECT_EQ(*blk.harness.host(statuses[{queue, completion.head}]), S_OK);
  }
  UniqueFd fd = blk.disk.open(O_RDONLY);
  for (uint16_t queue = 0; queue < QUEUES; ++queue) {
    for (int i = 0; i < PER_QUEUE; ++i) {
      std::vector<uint8_t> expected(4096);
      std::mt19937 random(queue * 1000u + static_cast<uint32_t>(i));
      for (auto& byte : expected) byte = static_cast<uint8_t>(random());
      std::vector<uint8_t> onDisk(4096);
      ASSERT_EQ(::pread(fd.get(), onDisk.data(), 4096, static_cast<off_t>((queue * PER_QUEUE + i) * 4096)),
                4096);
      ASSERT_EQ(onDisk, expected) << queue << "/" << i;
    }
  }
}

// With EVENT_IDX the driver skips kicks the device did not ask for; a device
// that publishes its avail event too late sleeps through new requests.
TEST(VirtioBlk, EventIdxNeverLosesAKick) {
  BlkHarness blk;
  ASSERT_TRUE(blk.offered & VirtioHarness::F_EVENT_IDX);
  constexpr int DEPTH = 32;
  std::vector<std::pair<uint64_t, uint64_t>> slots;  // header, status
  std::map<uint16_t, size_t> inFlight;
  uint64_t data = blk.harness.allocate(4096 * DEPTH);
  auto issue = [&](size_t slot) {
    uint16_t head = blk.harness.submit(
        0, {{slots[slot].first, 16, false}, {data + 4096 * slot, 4096, true}, {slots[slot].second, 1, true}});
    inFlight[head] = slot;
  };
  for (size_t i = 0; i < DEPTH; ++i) {
    slots.emplace_back(blk.header(IN, i * 8), blk.harness.allocate(1, 1));
    issue(i);
  }
  blk.harness.kick(0);
  int completed = 0;
  while (completed < 40000) {
    auto done = blk.harness.waitForCompletions(0, 1, std::chrono::seconds(2));
    ASSERT_FALSE(done.empty()) << "stalled after " << completed << " requests";
    for (const auto& completion : done) {
      size_t slot = inFlight.at(completion.head);
      inFlight.erase(completion.head);
      ASSERT_EQ(*blk.harness.host(slots[slot].second), S_OK);
      ++completed;
      issue(slot);
    }
    blk.harness.kick(0);
  }
}

TEST(VirtioBlk, FlushDiscardWriteZeroesAndGetId) {
  BlkHarness blk(",ser=DISK-SERIAL-42");
  uint64_t data = blk.pattern(65536, 9);
  ASSERT_EQ(blk.io(OUT, 0, data, 65536).status, S_OK);
  EXPECT_EQ(blk.io(FLUSH, 0, blk.harness.allocate(0, 1), 0).status, S_OK);

  ASSERT_EQ(blk.run(0, {{blk.header(DISCARD, 0), 16, false}, {blk.segment(0, 8, 0), 16, false}}).status,
            S_OK);
  ASSERT_EQ(
      blk.run(0, {{blk.header(WRITE_ZEROES, 0), 16, false}, {blk.segment(64, 16, 0), 16, false}}).status,
      S_OK);
  uint64_t back = blk.harness.allocate(65536);
  ASSERT_EQ(blk.io(IN, 0, back, 65536).status, S_OK);
  std::vector<uint8_t> zeros(8192, 0);
  EXPECT_EQ(std::memcmp(blk.harness.host(back, 4096), zeros.data(), 4096), 0) << "discarded";
  EXPECT_EQ(std::memcmp(blk.harness.host(back + 4096, 4096), blk.harness.host(data + 4096, 4096), 4096), 0);
  EXPECT_EQ(std::memcmp(blk.harness.host(back + 32768, 8192), zeros.data(), 8192), 0) << "zeroed";

  uint64_t id = blk.harness.allocate(20);
  auto result = blk.io(GET_ID, 0, id, 20);
  EXPECT_EQ(result.status, S_OK);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(blk.harness.host(id, 20))), "DISK-SERIAL-42");
}

TEST(VirtioBlk, ReadOnlyDiskRefusesWrites) {
  BlkHarness blk(",ro", 1, ALL_FEATURES, O_RDONLY);
  EXPECT_TRUE(blk.offered & (1ull << 5)) << "VIRTIO_BLK_F_RO";
  EXPECT_FALSE(blk.offered & (1ull << 13)) << "no discard on a read-only disk";
  EXPECT_EQ(blk.io(OUT, 0, blk.pattern(512, 1), 512).status, S_IOERR);
  EXPECT_EQ(blk.io(IN, 0, blk.harness.allocate(512), 512).status, S_OK);
}

TEST(VirtioBlk, HostileRequestsFailAloneAndTheServerKeepsServing) {
  BlkHarness blk;
  uint64_t buffer = blk.harness.allocate(8192);
  uint64_t lastSector = DISK_BYTES / 512;
  EXPECT_EQ(blk.io(IN, lastSector, buffer, 512).status, S_IOERR) << "sector past the end";
  EXPECT_EQ(blk.io(IN, lastSector - 1, buffer, 1024).status, S_IOERR) << "runs past the end";
  EXPECT_EQ(blk.io(IN, ~0ull, buffer, 512).status, S_IOERR) << "sector overflow";
  EXPECT_EQ(blk.io(IN, 0, buffer, 100).status, S_IOERR) << "not a whole sector";
  EXPECT_EQ(blk.io(77, 0, buffer, 512).status, S_UNSUPP) << "unknown type";
  // Read request whose data buffer is device-readable: wrong direction.
  EXPECT_EQ(blk.run(0, {{blk.header(IN, 0), 16, false}, {buffer, 512, false}}).status, S_IOERR);
  // Write request whose payload is device-writable: wrong direction.
  EXPECT_EQ(blk.run(0, {{blk.header(OUT, 0), 16, false}, {buffer, 512, true}}).status, S_IOERR);
  // Header too short.
  EXPECT_EQ(blk.run(0, {{blk.header(IN, 0), 8, false}, {buffer, 512, true}}).status, S_IOERR);

  // A buffer outside guest RAM: the chain is rejected, nothing is touched.
  auto outside =
      blk.run(0, {{blk.header(IN, 0), 16, false}, {blk.harness.memory().size() + 4096, 512, true}});
  EXPECT_TRUE(outside.completed);
  EXPECT_EQ(outside.length, 0u);
  EXPECT_EQ(outside.status, 0xee) << "status byte untouched";
  // A buffer that wraps the address space.
  auto wrapping = blk.run(0, {{blk.header(IN, 0), 16, false}, {~0ull - 100, 512, true}});
  EXPECT_EQ(wrapping.length, 0u);

  // A descriptor loop.
  uint64_t header = blk.header(IN, 0);
  blk.harness.writeDescriptor(0, 0, header, 16, 1 /* NEXT */, 1);
  blk.harness.writeDescriptor(0, 1, buffer, 512, 1 | 2, 0);  // Points back to 0.
  blk.harness.publish(0, 0);
  blk.harness.kick(0);
  auto loop = blk.harness.waitForCompletions(0);
  ASSERT_EQ(loop.size(), 1u);
  EXPECT_EQ(loop[0].length, 0u);

  // Still serving, with the device in good standing.
  uint64_t data = blk.pattern(4096, 5);
  EXPECT_EQ(blk.io(OUT, 8, data, 4096).status, S_OK);
  EXPECT_EQ(blk.io(IN, 8, buffer, 4096).status, S_OK);
  EXPECT_EQ(std::memcmp(blk.harness.host(buffer, 4096), blk.harness.host(data, 4096), 4096), 0);
  EXPECT_FALSE(blk.harness.status() & 64) << "no DEVICE_NEEDS_RESET for per-request errors";
}

TEST(VirtioBlk, BrokenRingMarksDeviceNeedsReset) {
  BlkHarness blk;
  // The driver claims 1000 new entries in a 128-entry ring.
  uint16_t size = blk.harness.queueSize(0);
  for (int i = 0; i < size + 10; ++i) blk.harness.publish(0, 0);
  blk.harness.kick(0);
  bool needsReset = false;
  for (int i = 0; i < 100 && !needsReset; ++i) {
    needsReset = blk.harness.status() & 64;
    if (!needsReset) usleep(10000);
  }
  EXPECT_TRUE(needsReset);
  EXPECT_TRUE(blk.harness.interruptPending(0, std::chrono::seconds(1))) << "config-change interrupt";
}

TEST(VirtioBlk, ServerRefusesBadOptions) {
  TempDisk disk;
  EXPECT_THROW(VirtioHarness("virtio-blk", disk.path() + ",sectorsize=1000", disk.open(), 1),
               DeviceUnavailable);
  EXPECT_THROW(VirtioHarness("virtio-blk", disk.path() + ",bogus", disk.open(), 1), DeviceUnavailable);
}

}  // namespace
}  // namespace cellvisor::testing

namespace cellvisor::testing {
namespace {

TEST(VirtioBlkRestart, InFlightRequestsSurviveAKill) {
  BlkHarness blk;
  SupervisedServer supervised(blk.harness.process());
  uint64_t data = blk.pattern(65536, 3);
  for (int round = 0; round < 10; ++round) {
    // Queue work, kill the server before it can finish, let its successor do it.
    uint64_t status = blk.harness.allocate(1, 1);
    *blk.harness.host(status) = 0xee;
    blk.harness.submit(0,
                       {{blk.header(OUT, 128u * round), 16, false}, {data, 65536, false}, {status, 1, true}});
    blk.harness.kick(0);
    ::kill(blk.harness.process().pid(), SIGKILL);
    auto done = blk.harness.waitForCompletions(0, 1, std::chrono::seconds(10));
    ASSERT_EQ(done.size(), 1u) << "round " << round;
    EXPECT_EQ(*blk.harness.host(status), S_OK);
    std::this_thread::sleep_for(DeviceSupervisor::YOUNG + std::chrono::milliseconds(10));
  }
  EXPECT_EQ(blk.harness.process().restarts(), 10u);
  EXPECT_NE(blk.harness.process().lastExit().find("killed by signal 9"), std::string::npos);
  UniqueFd fd = blk.disk.open(O_RDONLY);
  std::vector<uint8_t> onDisk(65536);
  for (int round = 0; round < 10; ++round) {
    ASSERT_EQ(::pread(fd.get(), onDisk.data(), onDisk.size(), 65536 * round), 65536);
    ASSERT_EQ(std::memcmp(onDisk.data(), blk.harness.host(data, 65536), 65536), 0) << round;
  }
  EXPECT_FALSE(blk.harness.status() & 64);
}

// A live upgrade while a register access waits for a hung server: the
// quiesce gives up within its own limit (it does not queue behind the held
// access for that access's whole timeout), vmmd's deadline then replaces the
// server, the held access is answered by the successor, and the successor is
// not left paused by a pause meant for the instance it replaced.
TEST(VirtioBlkRestart, RegisterAccessHeldAcrossTheQuiesceDeadline) {
  BlkHarness blk;
  SupervisedServer supervised(blk.harness.process());
  ASSERT_EQ(::kill(blk.harness.process().pid(), SIGSTOP), 0);  // Hung: takes nothing from its ring.
  std::atomic<uint64_t> capacity{0};
  std::thread guest([&] { capacity = blk.harness.configRead(0, 8); });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // The access holds the channel.
  auto start = std::chrono::steady_clock::now();
  EXPECT_THROW(blk.harness.channel().pause(), DeviceUnavailable);
  EXPECT_LT(std::chrono::steady_clock::now() - start, QUIESCE_TIMEOUT + std::chrono::seconds(1));
  blk.harness.process().requestRestart("");  // What vmmd does past UPGRADE_QUIESCE_DEADLINE.
  guest.join();
  EXPECT_EQ(capacity.load(), DISK_BYTES / 512) << "the held access is answered by the successor";
  uint64_t data = blk.pattern(4096, 21);
  EXPECT_EQ(blk.io(OUT, 0, data, 4096).status, S_OK) << "the successor serves: it is not paused";
  EXPECT_EQ(blk.harness.process().restarts(), 1u);
}

// The request ledger: a request the server executed is not executed again
// when a copy of it arrives (the core re-sends after a restart while the
// first copy may still be in the ring): ISR is read-to-clear, and both
// copies must see the bit. A request the core gave up on is not executed.
TEST(VirtioBlkRestart, RegisterAccessesHappenExactlyOnce) {
  BlkHarness blk;
  uint64_t data = blk.pattern(4096, 22);
  ASSERT_EQ(blk.io(OUT, 0, data, 4096).status, S_OK);  // Raises ISR bit 0.
  DeviceResources& resources = blk.harness.channel().resources();
  RequestLedger& ledger = resources.rings().rings().ledger;
  // A second writer on the request ring in place of the core's channel,
  // which stays unused from here on.
  MessageChannel raw(resources.rings().requestWriter(), resources.rings().replyReader(),
                     resources.requestDoorbell(), resources.replyDoorbell());
  auto readIsr = [&](uint64_t sequence) {
    capnp::MallocMessageBuilder builder;
    auto request = builder.initRoot<proto::Request>();
    request.setSequence(sequence);
    auto access = request.initBarRead();
    access.setBar(0);
    access.setOffset(VirtioTransport::ISR);
    access.setSize(1);
    return raw.send(builder);
  };
  auto replies = [&](size_t wanted, std::chrono::milliseconds timeout) {
    std::vector<std::pair<uint64_t, uint64_t>> seen;  // (sequence, value)
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (seen.size() < wanted && std::chrono::steady_clock::now() < deadline) {
      while (auto reply = raw.tryReceive()) {
        auto root = reply->root<proto::Reply>();
        seen.emplace_back(root.getSequence(), root.isValue() ? root.getValue() : ~0ull);
      }
      raw.waitForDoorbell(std::chrono::milliseconds(20));
    }
    return seen;
  };
  constexpr uint64_t SEQUENCE = 1'000'000;
  ledger.awaited = SEQUENCE;
  ASSERT_TRUE(readIsr(SEQUENCE));
  ASSERT_TRUE(readIsr(SEQUENCE));  // The copy.
  auto answers = replies(2, std::chrono::seconds(5));
  ASSERT_EQ(answers.size(), 2u);
  EXPECT_EQ(answers[0], std::make_pair(SEQUENCE, uint64_t{1}));
  EXPECT_EQ(answers[1], std::make_pair(SEQUENCE, uint64_t{1})) << "the copy was executed again";
  // Given up: not executed, so ISR keeps the bit the next interrupt raises.
  ASSERT_EQ(blk.io(OUT, 0, data, 4096).status, S_OK);
  ledger.awaited = 0;
  ASSERT_TRUE(readIsr(SEQUENCE + 1));
  EXPECT_TRUE(replies(1, std::chrono::milliseconds(300)).empty()) << "an abandoned request was answered";
  ledger.awaited = SEQUENCE + 2;
  ASSERT_TRUE(readIsr(SEQUENCE + 2));
  answers = replies(1, std::chrono::seconds(5));
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_EQ(answers[0], std::make_pair(SEQUENCE + 2, uint64_t{1})) << "the abandoned read cleared ISR";
  // (The core's own channel is not used again: its ring positions are behind ours.)
}

// Restoring saved state when no instance runs (it died and was collected)
// starts one on that state instead of doing nothing.
TEST(VirtioBlkRestart, RestoreWithNoInstanceRunningStartsOne) {
  BlkHarness blk;
  uint64_t data = blk.pattern(4096, 23);
  ASSERT_EQ(blk.io(OUT, 8, data, 4096).status, S_OK);
  std::vector<uint8_t> saved = blk.harness.process().saveState();
  ASSERT_EQ(::kill(blk.harness.process().pid(), SIGKILL), 0);
  blk.harness.process().reap();
  ASSERT_LE(blk.harness.process().pid(), 0);
  blk.harness.process().restoreState(saved);
  EXPECT_GT(blk.harness.process().pid(), 0);
  uint64_t back = blk.harness.allocate(4096);
  ASSERT_EQ(blk.io(IN, 8, back, 4096).status, S_OK);
  EXPECT_EQ(std::memcmp(blk.harness.host(back, 4096), blk.harness.host(data, 4096), 4096), 0);
}

// As root a server never runs in the host's namespaces: when the kernel
// refuses both ways of making its own (clone3 and unshare; here a seccomp
// filter, elsewhere a container), the instance exits before any server code.
TEST(VirtioBlkSandbox, ServerThatCannotGetItsNamespacesDoesNotRun) {
  if (::geteuid() != 0) GTEST_SKIP() << "only root makes namespaces for its servers";
  TempDisk disk;
  pid_t child = ::fork();
  if (child == 0) {
    scmp_filter_ctx filter = seccomp_init(SCMP_ACT_ALLOW);
    seccomp_rule_add(filter, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
    seccomp_rule_add(filter, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(unshare), 0);
    if (seccomp_load(filter) != 0) _exit(2);
    try {
      VirtioHarness harness("virtio-blk", disk.path(), disk.open(), 1);
      _exit(1);  // It answered: it runs unconfined.
    } catch (const DeviceUnavailable&) {
      _exit(0);
    }
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "a server ran in the host's namespaces";
}

TEST(VirtioBlkRestart, CrashLoopFailsTheDeviceAndTellsTheGuest) {
  BlkHarness blk;
  SupervisedServer supervised(blk.harness.process());
  ASSERT_TRUE(killUntilFailed(blk.harness.process()));
  EXPECT_TRUE(blk.harness.interruptPending(0, std::chrono::seconds(1))) << "config-change interrupt";
  EXPECT_EQ(blk.harness.proxy().readBar(0, 0x14, 1), ~0ull) << "a failed device answers like an empty slot";
}

}  // namespace
}  // namespace cellvisor::testing

namespace cellvisor::testing {
namespace {

TEST(Sandbox, ServerRunsConfined) {
  BlkHarness blk;
  pid_t pid = blk.harness.process().pid();
  auto problems = confinementProblems(pid);
  EXPECT_TRUE(problems.empty()) << ::testing::PrintToString(problems);
  // Nothing but stdio, the bootstrap socket and what it was handed.
  std::ifstream limits("/proc/" + std::to_string(pid) + "/limits");
  std::string text((std::istreambuf_iterator<char>(limits)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("Max core file size        0"), std::string::npos) << text;
}

// A forbidden call (test-only fault injection, triggered by a ping) kills
// the server with SIGSYS; the violation is named; it is restarted, the call
// in flight is answered by its successor, and the device keeps working.
class SandboxViolation : public ::testing::TestWithParam<std::pair<std::string, std::string>> {};

TEST_P(SandboxViolation, KillsNamesAndRestarts) {
  auto [fault, syscall] = GetParam();
  TempDisk disk;
  VirtioHarness harness("virtio-blk", disk.path() + ",queues=1", disk.open(), 1, 64ull << 20, fault);
  harness.initialize(~0ull);
  SupervisedServer supervised(harness.process());
  pid_t before = harness.process().pid();
  // The first instance dies on the ping; the core re-sends it to the
  // restarted one, so the caller still gets its answer.
  auto reply = harness.channel().call([](proto::Request::Builder request) { request.setPing(7); });
  EXPECT_EQ(reply.root<proto::Reply>().getPong(), 7u);
  EXPECT_EQ(harness.process().restarts(), 1u);
  EXPECT_NE(harness.process().pid(), before);
  EXPECT_EQ(harness.process().lastViolation(), syscall) << harness.process().lastExit();
  EXPECT_NE(harness.process().lastExit().find("killed by signal 31"), std::string::npos)
      << harness.process().lastExit();
  // The device still serves: a write and read through the new instance.
  uint64_t header = harness.allocate(16, 16);
  uint64_t data = harness.allocate(512);
  uint64_t status = harness.allocate(1, 1);
  uint32_t type = 1;
  std::memcpy(harness.host(header, 4), &type, 4);
  harness.submit(0, {{header, 16, false}, {data, 512, false}, {status, 1, true}});
  harness.kick(0);
  ASSERT_EQ(harness.waitForCompletions(0).size(), 1u);
  EXPECT_EQ(*harness.host(status), 0);
}

INSTANTIATE_TEST_SUITE_P(Faults, SandboxViolation,
                         ::testing::Values(std::make_pair("open", "openat"),
                                           std::make_pair("socket", "socket"),
                                           std::make_pair("execve", "execve")));

}  // namespace
}  // namespace cellvisor::testing

namespace cellvisor::testing {
namespace {

TEST(VirtioBlkPause, PausedServerTakesNothingUntilResumed) {
  BlkHarness blk;
  uint64_t data = blk.pattern(4096, 11);
  blk.harness.channel().pause();
  uint64_t status = blk.harness.allocate(1, 1);
  blk.harness.submit(0, {{blk.header(OUT, 0), 16, false}, {data, 4096, false}, {status, 1, true}});
  blk.harness.kick(0);
  EXPECT_TRUE(blk.harness.waitForCompletions(0, 1, std::chrono::milliseconds(200)).empty());
  blk.harness.channel().resume();
  auto done = blk.harness.waitForCompletions(0, 1, std::chrono::seconds(5));
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(*blk.harness.host(status), S_OK);
}

TEST(VirtioBlkPause, SnapshotAndRestoreContinueServing) {
  BlkHarness blk;
  uint64_t data = blk.pattern(8192, 12);
  ASSERT_EQ(blk.io(OUT, 0, data, 8192).status, S_OK);
  blk.harness.channel().pause();
  std::vector<uint8_t> saved = blk.harness.process().saveState();
  // A new server instance starts from the saved state (as a live upgrade would).
  blk.harness.process().restoreState(saved);
  EXPECT_EQ(blk.harness.process().restarts(), 1u);
  uint64_t back = blk.harness.allocate(8192);
  ASSERT_EQ(blk.io(IN, 0, back, 8192).status, S_OK);
  EXPECT_EQ(std::memcmp(blk.harness.host(back, 8192), blk.harness.host(data, 8192), 8192), 0);
  EXPECT_EQ(blk.harness.status(), 1 | 2 | 4 | 8) << "the driver's view is intact";
  EXPECT_THROW(blk.harness.process().restoreState({1, 2, 3}), std::invalid_argument);
}

}  // namespace
}  // namespace cellvisor::testing
