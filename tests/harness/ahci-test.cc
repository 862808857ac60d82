// The AHCI server driven by a user-space AHCI driver (tests/harness/
// ahci-harness.h): port bring-up, IDENTIFY, DMA and NCQ reads and writes of
// a checksummed pattern, TRIM, an ATAPI CD, hostile command lists, and kill
// -9 of the server with queued commands in flight.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <cstring>
#include <functional>
#include <thread>

#include "servers/ahci/ahci-state.h"
#include "servers/ahci/atapi.h"
#include "tests/harness/ahci-harness.h"
#include "tests/harness/ahci-test-data.h"
#include "tests/harness/nvme-harness.h"

namespace cellvisor::testing {
namespace {

using namespace std::chrono_literals;
using namespace ahci;

constexpr uint64_t IMAGE_BYTES = 16 << 20;
constexpr uint64_t SECTORS = IMAGE_BYTES / 512;

struct DiskRig {
  TempImage image{IMAGE_BYTES};
  AhciHarness ahci{"ahci-hd", image.path() + ",ser=DISK0001,model=Test Disk"};
  DiskRig() { EXPECT_TRUE(ahci.start()); }
};

TEST(AhciDisk, PortComesUpWithAnAtaSignature) {
  DiskRig rig;
  AhciHarness& ahci = rig.ahci;
  EXPECT_EQ(ahci.read32(VS), VERSION_1_3);
  EXPECT_EQ(ahci.read32(PI), 1u);
  uint32_t cap = ahci.read32(CAP);
  EXPECT_TRUE(cap & CAP_SNCQ);
  EXPECT_EQ((cap >> CAP_NCS_SHIFT) & 0x1f, 31u) << "32 command slots";
  EXPECT_EQ(ahci.port(PX_SIG), SIG_ATA);
  EXPECT_EQ(ahci.port(PX_SSTS) & 0xf, 3u);
  EXPECT_EQ(ahci.status() & (ATA_BSY | ATA_DRQ), 0);
}

TEST(AhciDisk, IdentifyDescribesTheDiskAndPacketIdentifyAborts) {
  DiskRig rig;
  AhciHarness& ahci = rig.ahci;
  uint64_t buffer = ahci.allocate(512);
  uint32_t is = ahci.run(AhciHarness::fis(IDENTIFY_DEVICE), buffer, 512, false);
  EXPECT_TRUE(is & PXIS_PSS) << std::hex << is;
  EXPECT_TRUE(is & PXIS_DHRS);
  EXPECT_EQ(ahci.prdbc(0), 512u);
  const uint8_t* id = ahci.host(buffer, 512);
  EXPECT_EQ(identifyWord(id, 0), 0x0040);
  EXPECT_EQ(identifyString(id, 10, 10), "DISK0001");
  EXPECT_EQ(identifyString(id, 27, 20), "Test Disk");
  uint64_t sectors = 0;
  for (int i = 0; i < 4; ++i) sectors |= uint64_t{identifyWord(id, 100 + i)} << (16 * i);
  EXPECT_EQ(sectors, SECTORS);
  EXPECT_TRUE(identifyWord(id, 83) & (1u << 10)) << "LBA48";
  EXPECT_TRUE(identifyWord(id, 76) & (1u << 8)) << "NCQ";
  EXPECT_EQ(identifyWord(id, 75) & 0x1f, 31);
  uint8_t sum = 0;
  for (int i = 0; i < 512; ++i) sum = static_cast<uint8_t>(sum + id[i]);
  EXPECT_EQ(sum, 0) << "IDENTIFY checksum";
  // A disk is no packet device: abort, with DHRS too for older firmware.
  is = ahci.run(AhciHarness::fis(IDENTIFY_PACKET_DEVICE), buffer, 512, false);
  EXPECT_TRUE(is & PXIS_TFES);
  EXPECT_TRUE(is & PXIS_DHRS);
  EXPECT_EQ(ahci.error(), ATA_ABRT);
  ahci.restartEngine();
  EXPECT_EQ(ahci.run(AhciHarness::fis(FLUSH_CACHE_EXT), 0, 0, false) & PXIS_TFES, 0u) << "usable again";
}

TEST(AhciDisk, DmaWritesAndReadsAcrossSeveralPrds) {
  DiskRig rig;
  AhciHarness& ahci = rig.ahci;
  constexpr uint32_t SECTORS_PER = 24;
  auto data = sectorPattern(1000, SECTORS_PER, 1);
  // Three PRDs of uneven sizes, as a scatter list.
  uint64_t a = ahci.allocate(4096), b = ahci.allocate(8192), c = ahci.allocate(4096);
  std::memcpy(ahci.host(a, 4096), data.data(), 4096);
  std::memcpy(ahci.host(b, 4096), data.data() + 4096, 4096);
  std::memcpy(ahci.host(c, 4096), data.data() + 8192, 4096);
  ahci.prepare(0, AhciHarness::fis(WRITE_DMA_EXT, 1000, SECTORS_PER), {{a, 4096}, {b, 4096}, {c, 4096}},
               true);
  uint32_t is = ahci.issue(1);
  EXPECT_TRUE(is & PXIS_DHRS) << std::hex << is;
  EXPECT_EQ(ahci.prdbc(0), SECTORS_PER * 512);
  uint64_t back = ahci.allocate(SECTORS_PER * 512);
  is = ahci.run(AhciHarness::fis(READ_DMA_EXT, 1000, SECTORS_PER), back, SECTORS_PER * 512, false);
  EXPECT_EQ(is & PXIS_TFES, 0u);
  EXPECT_EQ(std::memcmp(ahci.host(back, data.size()), data.data(), data.size()), 0);
  // And on the host, where it was written.
  std::vector<uint8_t> onDisk(data.size());
  UniqueFd fd = rig.image.open(O_RDONLY);
  ASSERT_EQ(::pread(fd.get(), onDisk.data(), onDisk.size(), 1000 * 512), static_cast<ssize_t>(onDisk.size()));
  EXPECT_EQ(onDisk, data);
  // 28-bit READ DMA reads the same.
  std::memset(ahci.host(back, data.size()), 0, data.size());
  is = ahci.run(AhciHarness::fis(READ_DMA, 1000, SECTORS_PER, 0, 0x40), back, SECTORS_PER * 512, false);
  EXPECT_EQ(std::memcmp(ahci.host(back, data.size()), data.data(), data.size()), 0);
}

TEST(AhciDisk, ThirtyTwoQueuedCommandsComplete) {
  DiskRig rig;
  AhciHarness& ahci = rig.ahci;
  constexpr uint32_t PER = 16;
  std::vector<uint64_t> buffers;
  for (uint32_t tag = 0; tag < SLOTS; ++tag) {
    uint64_t buffer = ahci.allocate(PER * 512);
    auto data = sectorPattern(tag * PER, PER, 7);
    std::memcpy(ahci.host(buffer, data.size()), data.data(), data.size());
    ahci.prepare(tag, AhciHarness::fis(WRITE_FPDMA_QUEUED, tag * PER, static_cast<uint16_t>(tag << 3), PER),
                 {{buffer, PER * 512}}, true);
    buffers.push_back(buffer);
  }
  uint32_t is = ahci.issue(~0u, true);
  ASSERT_NE(is, ~0u) << "SActive never cleared";
  EXPECT_TRUE(is & PXIS_SDBS) << std::hex << is;
  EXPECT_EQ(is & PXIS_TFES, 0u);
  for (uint32_t tag = 0; tag < SLOTS; ++tag) {
    std::memset(ahci.host(buffers[tag], PER * 512), 0, PER * 512);
    ahci.prepare(tag, AhciHarness::fis(READ_FPDMA_QUEUED, tag * PER, static_cast<uint16_t>(tag << 3), PER),
                 {{buffers[tag], PER * 512}}, false);
  }
  ASSERT_NE(ahci.issue(~0u, true), ~0u);
  for (uint32_t tag = 0; tag < SLOTS; ++tag) {
    auto data = sectorPattern(tag * PER, PER, 7);
    EXPECT_EQ(std::memcmp(ahci.host(buffers[tag], data.size()), data.data(), data.size()), 0)
        << "tag " << tag;
  }
  EXPECT_TRUE(ahci.interruptPending(1s)) << "MSI-X vector 0 fired";
}

TEST(AhciDisk, TrimZeroesTheRange) {
  DiskRig rig;
  AhciHarness& ahci = rig.ahci;
  uint64_t buffer = ahci.allocate(64 * 512);
  auto data = sectorPattern(2048, 64, 3);
  std::memcpy(ahci.host(buffer, data.size()), data.data(), data.size());
  ahci.run(AhciHarness::fis(WRITE_DMA_EXT, 2048, 64), buffer, 64 * 512, true);
  uint64_t ranges = ahci.allocate(512);
  uint64_t entry = 2048 | (uint64_t{64} << 48);
  std::memcpy(ahci.host(ranges, 8), &entry, 8);
  uint32_t is = ahci.run(AhciHarness::fis(DATA_SET_MANAGEMENT, 0, 1, 1), ranges, 512, true);
  EXPECT_EQ(is & PXIS_TFES, 0u) << std::hex << is;
  ahci.run(AhciHarness::fis(READ_DMA_EXT, 2048, 64), buffer, 64 * 512, false);
  std::vector<uint8_t> zeros(64 * 512, 0);
  EXPECT_EQ(std::memcmp(ahci.host(buffer, zeros.size()), zeros.data(), zeros.size()), 0);
  // A range past the end is refused.
  entry = (SECTORS - 1) | (uint64_t{8} << 48);
  std::memcpy(ahci.host(ranges, 8), &entry, 8);
  EXPECT_TRUE(ahci.run(AhciHarness::fis(DATA_SET_MANAGEMENT, 0, 1, 1), ranges, 512, true) & PXIS_TFES);
}

// Nothing a driver names is trusted: buffers and tables outside RAM, a PRD
// table shorter than the transfer, LBAs past the end, a garbage FIS. Each
// fails that command, copies nothing, and the port works afterwards.
TEST(AhciDisk, HostileCommandsFailAlone) {
  DiskRig rig;
  AhciHarness& ahci = rig.ahci;
  uint64_t ram = ahci.memory().size();
  uint64_t buffer = ahci.allocate(8192);
  struct Case {
    const char* what;
    std::function<void()> prepare;
    uint32_t expect;
  };
  std::vector<Case> cases = {
      {"buffer outside RAM",
       [&] {
         ahci.prepare(0, AhciHarness::fis(READ_DMA_EXT, 0, 8), {{ram + 4096, 4096}}, false);
       },
       PXIS_TFES},
      {"buffer running off RAM",
       [&] {
         ahci.prepare(0, AhciHarness::fis(READ_DMA_EXT, 0, 8), {{ram - 512, 4096}}, false);
       },
       PXIS_TFES},
      {"PRDs shorter than the transfer",
       [&] {
         ahci.prepare(0, AhciHarness::fis(READ_DMA_EXT, 0, 16), {{buffer, 4096}}, false);
       },
       PXIS_TFES},
      {"LBA past the end",
       [&] {
         ahci.prepare(0, AhciHarness::fis(READ_DMA_EXT, SECTORS - 4, 8), {{buffer, 4096}}, false);
       },
       PXIS_TFES},
      {"not a register FIS",
       [&] {
         auto f = AhciHarness::fis(READ_DMA_EXT, 0, 8);
         f[0] = 0x46;
         ahci.prepare(0, f, {{buffer, 4096}}, false);
       },
       PXIS_TFES},
      {"unknown command", [&] { ahci.prepare(0, AhciHarness::fis(0x77), {}, false); }, PXIS_TFES},
      {"command table outside RAM",
       [&] {
         ahci.prepare(0, AhciHarness::fis(READ_DMA_EXT, 0, 8), {{buffer, 4096}}, false);
         ahci.setTable(0, ram + 0x1000);
       },
       PXIS_HBFS},
  };
  for (const auto& c : cases) {
    c.prepare();
    uint32_t is = ahci.issue(1, false, 5s);
    ASSERT_NE(is, ~0u) << c.what << ": the command never left PxCI";
    EXPECT_TRUE(is & c.expect) << c.what << ": PxIS " << std::hex << is;
    ahci.restartEngine();
    EXPECT_EQ(ahci.run(AhciHarness::fis(READ_DMA_EXT, 0, 8), buffer, 4096, false) & (PXIS_TFES | PXIS_HBFS),
              0u)
        << c.what << ": the port works afterwards";
  }
  EXPECT_TRUE(ahci.server().process().pid() > 0) << "the server is still there";
}

TEST(AhciDisk, ReadOnlyRefusesWrites) {
  TempImage image(IMAGE_BYTES);
  AhciHarness ahci("ahci-hd", image.path() + ",ro");
  ASSERT_TRUE(ahci.start());
  uint64_t buffer = ahci.allocate(4096);
  EXPECT_TRUE(ahci.run(AhciHarness::fis(WRITE_DMA_EXT, 0, 8), buffer, 4096, true) & PXIS_TFES);
  EXPECT_EQ(ahci.error(), ATA_ABRT);
}

// kill -9 with 32 queued reads and writes in flight: each completes once
// with its data, read back after the restart.
TEST(AhciRestart, QueuedCommandsSurviveKills) {
  DiskRig rig;
  AhciHarness& ahci = rig.ahci;
  SupervisedServer supervised(ahci.server().process());
  constexpr uint32_t PER = 128;  // 64 KiB a command.
  std::vector<uint64_t> buffers;
  for (uint32_t tag = 0; tag < SLOTS; ++tag) buffers.push_back(ahci.allocate(PER * 512));
  for (int round = 1; round <= 4; ++round) {
    for (uint32_t tag = 0; tag < SLOTS; ++tag) {
      auto data = sectorPattern(tag * PER, PER, static_cast<uint32_t>(round));
      std::memcpy(ahci.host(buffers[tag], data.size()), data.data(), data.size());
      ahci.prepare(tag, AhciHarness::fis(WRITE_FPDMA_QUEUED, tag * PER, static_cast<uint16_t>(tag << 3), PER),
                   {{buffers[tag], PER * 512}}, true);
    }
    ahci.setPort(PX_SACT, ~0u);
    ahci.setPort(PX_CI, ~0u);
    ::kill(ahci.server().process().pid(), SIGKILL);
    auto deadline = std::chrono::steady_clock::now() + 20s;
    while (ahci.port(PX_SACT) != 0 && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(1ms);
    ASSERT_EQ(ahci.port(PX_SACT), 0u) << "round " << round << ": queued writes never completed";
    EXPECT_EQ(ahci.port(PX_IS) & (PXIS_TFES | PXIS_HBFS), 0u);
    ahci.setPort(PX_IS, ~0u);
    for (uint32_t tag = 0; tag < SLOTS; ++tag) {
      std::memset(ahci.host(buffers[tag], PER * 512), 0, PER * 512);
      ahci.prepare(tag, AhciHarness::fis(READ_FPDMA_QUEUED, tag * PER, static_cast<uint16_t>(tag << 3), PER),
                   {{buffers[tag], PER * 512}}, false);
    }
    ASSERT_NE(ahci.issue(~0u, true, 20s), ~0u);
    for (uint32_t tag = 0; tag < SLOTS; ++tag) {
      auto data = sectorPattern(tag * PER, PER, static_cast<uint32_t>(round));
      EXPECT_EQ(std::memcmp(ahci.host(buffers[tag], data.size()), data.data(), data.size()), 0)
          << "round " << round << " tag " << tag;
    }
  }
  EXPECT_GE(ahci.server().resources().stateHeader().restarts, 4u);
}

// A server that died after handing a slot back (PxCI cleared) but before
// forgetting it had taken it: its successor must not run the slot again. The
// driver already counts it done and has put other data in its buffer; a
// second run would write that data where nobody asked.
TEST(AhciRestart, ASlotHandedBackIsNotRunAgain) {
  DiskRig rig;
  AhciHarness& ahci = rig.ahci;
  SupervisedServer supervised(ahci.server().process());
  constexpr uint32_t PER = 8;
  uint64_t buffer = ahci.allocate(PER * 512);
  auto written = sectorPattern(0, PER, 1);
  std::memcpy(ahci.host(buffer, written.size()), written.data(), written.size());
  ASSERT_EQ(ahci.run(AhciHarness::fis(WRITE_DMA_EXT, 0, PER), buffer, PER * 512, true) & PXIS_TFES, 0u);
  ahci.setPort(PX_IS, ~0u);
  auto reused = sectorPattern(0, PER, 2);
  std::memcpy(ahci.host(buffer, reused.size()), reused.data(), reused.size());
  // The predecessor's last moment, staged: slot 0 released, still marked taken.
  pid_t server = ahci.server().process().pid();
  ASSERT_EQ(::kill(server, SIGSTOP), 0);
  ahci.server().resources().stateBody<AhciState>().ports[0].taken |= 1u;
  ASSERT_EQ(::kill(server, SIGKILL), 0);
  EXPECT_EQ(ahci.port(PX_CI), 0u);  // Answered by the successor.
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(ahci.port(PX_IS) & (PXIS_DHRS | PXIS_TFES), 0u) << "the slot completed a second time";
  std::vector<uint8_t> onDisk(written.size());
  UniqueFd fd = rig.image.open(O_RDONLY);
  ASSERT_EQ(::pread(fd.get(), onDisk.data(), onDisk.size(), 0), static_cast<ssize_t>(onDisk.size()));
  EXPECT_TRUE(onDisk == written) << "the handed-back write ran again with the buffer's new contents";
  EXPECT_EQ(ahci.server().resources().stateBody<AhciState>().ports[0].taken, 0u);
  // The slot serves the next command as usual.
  ASSERT_EQ(ahci.run(AhciHarness::fis(READ_DMA_EXT, 0, PER), buffer, PER * 512, false) & PXIS_TFES, 0u);
  EXPECT_EQ(std::memcmp(ahci.host(buffer, written.size()), written.data(), written.size()), 0);
}

TEST(AhciFailure, CrashLoopReportsAHostBusFatalError) {
  DiskRig rig;
  AhciHarness& ahci = rig.ahci;
  SupervisedServer supervised(ahci.server().process());
  ASSERT_TRUE(killUntilFailed(ahci.server().process()));
  EXPECT_EQ(ahci.port(PX_IS), PXIS_HBFS | PXIS_TFES);
  EXPECT_EQ(ahci.port(PX_TFD), (uint32_t{ATA_ABRT} << 8) | ATA_DRDY | ATA_ERR);
}

// The CD: an image of 2048-byte blocks behind ATAPI.
struct CdRig {
  TempImage image{4 << 20};
  AhciHarness ahci{"ahci-cd", image.path()};
  CdRig() {
    UniqueFd fd = image.open(O_RDWR);
    for (uint32_t block = 0; block < 2048; ++block) {
      auto data = sectorPattern(block * 4, 4, 9);
      EXPECT_EQ(::pwrite(fd.get(), data.data(), data.size(), off_t{block} * 2048), 2048);
    }
    EXPECT_TRUE(ahci.start());
  }
};

TEST(AhciCd, AtapiDriveReadsItsMedium) {
  CdRig rig;
  AhciHarness& ahci = rig.ahci;
  EXPECT_EQ(ahci.port(PX_SIG), SIG_ATAPI);
  uint64_t buffer = ahci.allocate(65536);
  // IDENTIFY DEVICE aborts; IDENTIFY PACKET DEVICE says CD-ROM.
  EXPECT_TRUE(ahci.run(AhciHarness::fis(IDENTIFY_DEVICE), buffer, 512, false) & PXIS_TFES);
  ahci.restartEngine();
  ahci.run(AhciHarness::fis(IDENTIFY_PACKET_DEVICE), buffer, 512, false);
  EXPECT_EQ((identifyWord(ahci.host(buffer, 512), 0) >> 8) & 0x1f, 5);
  // The reset's unit attention, once.
  EXPECT_TRUE(ahci.packet({atapi::TEST_UNIT_READY}, 0, 0) & PXIS_TFES);
  EXPECT_EQ(ahci.error() >> 4, atapi::UNIT_ATTENTION);
  ahci.restartEngine();
  EXPECT_EQ(ahci.packet({atapi::TEST_UNIT_READY}, 0, 0) & PXIS_TFES, 0u);
  EXPECT_EQ(ahci.status(), ATA_DRDY | ATA_DSC) << "ATAPI success reads 0x50";
  ahci.packet({atapi::INQUIRY, 0, 0, 0, 36}, buffer, 36);
  EXPECT_EQ(ahci.host(buffer)[0], 0x05);
  EXPECT_EQ(ahci.host(buffer)[1], 0x80);
  ahci.packet({atapi::READ_CAPACITY}, buffer, 8);
  const uint8_t* capacity = ahci.host(buffer, 8);
  EXPECT_EQ(capacity[0] << 24 | capacity[1] << 16 | capacity[2] << 8 | capacity[3], 2047);
  EXPECT_EQ(capacity[6] << 8 | capacity[7], 2048);
  // READ(10) of 16 blocks at 100.
  ahci.packet({atapi::READ_10, 0, 0, 0, 0, 100, 0, 0, 16}, buffer, 16 * 2048);
  EXPECT_EQ(ahci.prdbc(0), 16u * 2048);
  for (uint32_t block = 0; block < 16; ++block) {
    auto data = sectorPattern((100 + block) * 4, 4, 9);
    EXPECT_EQ(std::memcmp(ahci.host(buffer + block * 2048, 2048), data.data(), 2048), 0) << block;
  }
  // Past the end: CHECK CONDITION, ILLEGAL REQUEST / LBA out of range.
  EXPECT_TRUE(ahci.packet({atapi::READ_10, 0, 0, 0, 0x07, 0xff, 0, 0, 2}, buffer, 4096) & PXIS_TFES);
  EXPECT_EQ(ahci.error() >> 4, atapi::ILLEGAL_REQUEST);
  ahci.restartEngine();
  ahci.packet({atapi::REQUEST_SENSE, 0, 0, 0, 18}, buffer, 18);
  EXPECT_EQ(ahci.host(buffer)[2], atapi::ILLEGAL_REQUEST);
  EXPECT_EQ(ahci.host(buffer)[12], atapi::LBA_OUT_OF_RANGE);
  // The TOC: track 1 at 0, the lead-out at 2048.
  ahci.packet({atapi::READ_TOC, 0, 0, 0, 0, 0, 0, 0, 20}, buffer, 20);
  const uint8_t* toc = ahci.host(buffer, 20);
  EXPECT_EQ(toc[1], 18);
  EXPECT_EQ(toc[14], 0xaa);
  EXPECT_EQ(toc[16] << 24 | toc[17] << 16 | toc[18] << 8 | toc[19], 2048);
  // A CD-ROM writes nothing.
  EXPECT_TRUE(ahci.run(AhciHarness::fis(WRITE_DMA_EXT, 0, 8), buffer, 4096, true) & PXIS_TFES);
}

}  // namespace
}  // namespace cellvisor::testing
