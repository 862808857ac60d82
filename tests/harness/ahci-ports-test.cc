// One AHCI controller with several ports (bhyve's `-s N,ahci,hd:A,cd:B,...`):
// each port its own device, image and options; commands on several ports
// at once; the shared interrupt's per-port bits; kill -9 with queued
// commands on two ports; a crash loop reported on every port.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <cstring>
#include <thread>

#include "servers/ahci/atapi.h"
#include "tests/harness/ahci-harness.h"
#include "tests/harness/ahci-test-data.h"
#include "tests/harness/nvme-harness.h"

namespace cellvisor::testing {
namespace {

using namespace std::chrono_literals;
using namespace ahci;

constexpr uint32_t PER = 64;  // 32 KiB a queued command.

void fill(const TempImage& image, uint64_t sectors, uint32_t version) {
  UniqueFd fd = image.open(O_RDWR);
  auto data = sectorPattern(0, static_cast<uint32_t>(sectors), version);
  ASSERT_EQ(::pwrite(fd.get(), data.data(), data.size(), 0), static_cast<ssize_t>(data.size()));
}

std::vector<uint8_t> readImage(const TempImage& image, uint64_t offset, size_t bytes) {
  std::vector<uint8_t> data(bytes);
  UniqueFd fd = image.open(O_RDONLY);
  EXPECT_EQ(::pread(fd.get(), data.data(), bytes, static_cast<off_t>(offset)), static_cast<ssize_t>(bytes));
  return data;
}

// 32 queued commands on the selected port, issued and not waited for: tag
// t moves sectors [t * PER, (t + 1) * PER) through its own buffer.
struct QueuedBatch {
  std::vector<uint64_t> buffers;
  explicit QueuedBatch(AhciHarness& ahci) {
    for (uint32_t tag = 0; tag < SLOTS; ++tag) buffers.push_back(ahci.allocate(PER * 512));
  }
  void issue(AhciHarness& ahci, bool write, uint32_t version) {
    for (uint32_t tag = 0; tag < SLOTS; ++tag) {
      if (write) {
        auto data = sectorPattern(tag * PER, PER, version);
        std::memcpy(ahci.host(buffers[tag], data.size()), data.data(), data.size());
      } else {
        std::memset(ahci.host(buffers[tag], PER * 512), 0, PER * 512);
      }
      ahci.prepare(tag,
                   AhciHarness::fis(write ? WRITE_FPDMA_QUEUED : READ_FPDMA_QUEUED, tag * PER,
                                    static_cast<uint16_t>(tag << 3), PER),
                   {{buffers[tag], PER * 512}}, write);
    }
    ahci.setPort(PX_SACT, ~0u);
    ahci.setPort(PX_CI, ~0u);
  }
  bool holds(AhciHarness& ahci, uint32_t version) {
    for (uint32_t tag = 0; tag < SLOTS; ++tag) {
      auto data = sectorPattern(tag * PER, PER, version);
      if (std::memcmp(ahci.host(buffers[tag], data.size()), data.data(), data.size()) != 0) return false;
    }
    return true;
  }
};

bool waitIdle(AhciHarness& ahci, std::chrono::seconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (ahci.port(PX_SACT) != 0 || ahci.port(PX_CI) != 0) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

// Three ports: a disk, a CD, a read-only disk.
struct ThreePortRig {
  TempImage disk{8 << 20};
  TempImage cd{2 << 20};
  TempImage readOnly{4 << 20};
  std::unique_ptr<AhciHarness> ahci;
  ThreePortRig() {
    fill(cd, (2 << 20) / 512, 7);
    fill(readOnly, (4 << 20) / 512, 5);
    ahci = std::make_unique<AhciHarness>(
        "ahci", "hd:" + disk.path() + ",ser=PORT0DISK,cd:" + cd.path() + ",hd:" + readOnly.path() + ",ro");
    EXPECT_TRUE(ahci->start());
  }
};

TEST(AhciPorts, EachPortIsItsOwnDevice) {
  ThreePortRig rig;
  AhciHarness& ahci = *rig.ahci;
  EXPECT_EQ(ahci.read32(CAP) & 0x1f, 2u) << "CAP.NP: three ports";
  EXPECT_EQ(ahci.read32(PI), 0x7u);
  const uint32_t signatures[] = {SIG_ATA, SIG_ATAPI, SIG_ATA};
  for (uint32_t index = 0; index < 3; ++index) {
    ahci.selectPort(index);
    EXPECT_EQ(ahci.port(PX_SIG), signatures[index]) << "port " << index;
    EXPECT_EQ(ahci.port(PX_SSTS) & 0xf, 3u) << "port " << index;
  }
  EXPECT_EQ(ahci.read32(ahci::PORT_BASE + 3 * PORT_STRIDE + PX_SIG), 0u) << "no port 3";
  // IDENTIFY: each disk its size and serial (the options' or a derived one
  // that differs per port).
  uint64_t buffer = ahci.allocate(65536);
  ahci.selectPort(0);
  ahci.run(AhciHarness::fis(IDENTIFY_DEVICE), buffer, 512, false);
  EXPECT_EQ(identifyString(ahci.host(buffer, 512), 10, 10), "PORT0DISK");
  EXPECT_EQ(identifyWord(ahci.host(buffer, 512), 100), (8 << 20) / 512);
  ahci.selectPort(2);
  ahci.run(AhciHarness::fis(IDENTIFY_DEVICE), buffer, 512, false);
  std::string serial = identifyString(ahci.host(buffer, 512), 10, 10);
  EXPECT_EQ(serial.substr(serial.size() - 2), "-2") << serial;
  EXPECT_EQ(identifyWord(ahci.host(buffer, 512), 100), (4 << 20) / 512);
  EXPECT_EQ(identifyWord(ahci.host(buffer, 512), 169) & 1, 0) << "no TRIM on a read-only port";
  // The read-only port refuses writes; the others are untouched by that.
  EXPECT_TRUE(ahci.run(AhciHarness::fis(WRITE_DMA_EXT, 0, 8), buffer, 4096, true) & PXIS_TFES);
  EXPECT_EQ(ahci.error(), ATA_ABRT);
  ahci.selectPort(0);
  EXPECT_EQ(ahci.status() & ATA_ERR, 0) << "port 0's task file is its own";
  // The CD reads its medium through ATAPI.
  ahci.selectPort(1);
  ahci.packet({atapi::TEST_UNIT_READY}, 0, 0);  // The reset's unit attention.
  ahci.restartEngine();
  EXPECT_EQ(ahci.packet({atapi::READ_10, 0, 0, 0, 0, 3, 0, 0, 2}, buffer, 4096) & PXIS_TFES, 0u);
  auto blocks = sectorPattern(12, 8, 7);
  EXPECT_EQ(std::memcmp(ahci.host(buffer, blocks.size()), blocks.data(), blocks.size()), 0);
}

TEST(AhciPorts, QueuedCommandsOnTwoPortsAtOnce) {
  ThreePortRig rig;
  AhciHarness& ahci = *rig.ahci;
  ahci.selectPort(0);
  QueuedBatch writes(ahci);
  ahci.selectPort(2);
  QueuedBatch reads(ahci);
  // Port 0 writes 32 commands while port 2 reads 32; neither acknowledges
  // its interrupt yet, so the HBA's IS keeps both ports' bits.
  ahci.selectPort(0);
  writes.issue(ahci, true, 3);
  ahci.selectPort(2);
  reads.issue(ahci, false, 0);
  ASSERT_TRUE(waitIdle(ahci, 20s));
  ahci.selectPort(0);
  ASSERT_TRUE(waitIdle(ahci, 20s));
  EXPECT_EQ(ahci.read32(IS) & 0x7u, 0x5u) << "ports 0 and 2 interrupted";
  EXPECT_TRUE(ahci.interruptPending(1s));
  EXPECT_TRUE(reads.holds(ahci, 5)) << "port 2 read its own image";
  EXPECT_EQ(readImage(rig.disk, 0, SLOTS * PER * 512), sectorPattern(0, SLOTS * PER, 3))
      << "port 0 wrote its own image";
  EXPECT_EQ(readImage(rig.readOnly, 0, 512), sectorPattern(0, 1, 5)) << "port 2's image untouched";
  // Acknowledging one port leaves the other's bit.
  ahci.setPort(PX_IS, ~0u);
  ahci.write32(IS, 1u);
  EXPECT_EQ(ahci.read32(IS) & 0x7u, 0x4u);
}

// kill -9 with 32 queued writes in flight on each of two ports: every
// command completes once, each port's data read back after the restarts.
TEST(AhciPorts, QueuedCommandsOnTwoPortsSurviveKills) {
  TempImage first{8 << 20}, second{8 << 20};
  AhciHarness ahci("ahci", "hd:" + first.path() + ",hd:" + second.path());
  ASSERT_TRUE(ahci.start());
  SupervisedServer supervised(ahci.server().process());
  std::vector<QueuedBatch> batches;
  for (uint32_t index = 0; index < 2; ++index) {
    ahci.selectPort(index);
    batches.emplace_back(ahci);
  }
  for (uint32_t round = 1; round <= 3; ++round) {
    for (uint32_t index = 0; index < 2; ++index) {
      ahci.selectPort(index);
      batches[index].issue(ahci, true, round * 2 + index);
    }
    ::kill(ahci.server().process().pid(), SIGKILL);
    for (uint32_t index = 0; index < 2; ++index) {
      ahci.selectPort(index);
      ASSERT_TRUE(waitIdle(ahci, 20s)) << "round " << round << " port " << index;
      EXPECT_EQ(ahci.port(PX_IS) & (PXIS_TFES | PXIS_HBFS), 0u);
      ahci.setPort(PX_IS, ~0u);
      batches[index].issue(ahci, false, 0);
      ASSERT_TRUE(waitIdle(ahci, 20s));
      EXPECT_TRUE(batches[index].holds(ahci, round * 2 + index)) << "round " << round << " port " << index;
    }
  }
  EXPECT_GE(ahci.server().resources().stateHeader().restarts, 3u);
}

TEST(AhciPorts, CrashLoopIsReportedOnEveryPort) {
  TempImage disk{1 << 20}, cd{1 << 20};
  AhciHarness ahci("ahci", "hd:" + disk.path() + ",cd:" + cd.path());
  ASSERT_TRUE(ahci.start());
  SupervisedServer supervised(ahci.server().process());
  ASSERT_TRUE(killUntilFailed(ahci.server().process()));
  for (uint32_t index = 0; index < 2; ++index) {
    ahci.selectPort(index);
    // The device's own words, not the all-ones of a device that is gone.
    EXPECT_EQ(ahci.port(PX_IS), PXIS_HBFS | PXIS_TFES) << "port " << index;
    EXPECT_EQ(ahci.port(PX_TFD), (uint32_t{ATA_ABRT} << 8) | ATA_DRDY | ATA_ERR) << "port " << index;
  }
}

}  // namespace
}  // namespace cellvisor::testing
