// Driver-harness tests for the NVMe server: the real nvme-server process,
// driven through its real fds and guest RAM as an NVMe driver would (see
// nvme-harness.h): identification, I/O with PRPs and SGLs on several queues,
// hostile commands, crash-restart with exactly-once completions, controller
// reset under load, and the controller fatal status of a failed device.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <map>
#include <optional>
#include <ostream>
#include <random>
#include <set>
#include <thread>

#include "servers/nvme/nvme-state.h"
#include "tests/harness/nvme-harness.h"

namespace cellvisor::testing {
namespace {

using namespace std::chrono_literals;

constexpr uint64_t DISK_BYTES = 16 << 20;
constexpr uint64_t BLOCKS = DISK_BYTES / 512;
constexpr uint32_t KIB = 1024;

// A status as (SCT << 8) | SC, printed the way the specification names it.
struct Status {
  uint16_t value;
  bool operator==(const Status&) const = default;
};
void PrintTo(const Status& status, std::ostream* out) {
  if (status.value == 0xffff) {
    *out << "no completion";
    return;
  }
  *out << "SCT " << (status.value >> 8) << " SC 0x" << std::hex << (status.value & 0xff) << std::dec;
}
#define EXPECT_STATUS(result, expected) EXPECT_EQ(Status{(result).status()}, Status{expected})
#define ASSERT_STATUS(result, expected) ASSERT_EQ(Status{(result).status()}, Status{expected})

uint64_t le(const uint8_t* bytes, int count) {
  uint64_t value = 0;
  for (int i = count - 1; i >= 0; --i) value = (value << 8) | bytes[i];
  return value;
}

std::string text(const uint8_t* bytes, size_t count) {
  return std::string(reinterpret_cast<const char*>(bytes), count);
}

// Sector contents that say what they are: the LBA and the seed that wrote
// them, random bytes, and a checksum over all of it.
std::vector<uint8_t> sectors(uint64_t lba, uint64_t count, uint64_t seed) {
  std::vector<uint8_t> bytes(count * 512);
  for (uint64_t s = 0; s < count; ++s) {
    uint8_t* sector = bytes.data() + 512 * s;
    uint64_t header[2] = {lba + s, seed};
    std::memcpy(sector, header, 16);
    std::mt19937_64 random(seed * 1000003 + lba + s);
    for (int i = 16; i < 504; i += 8) {
      uint64_t word = random();
      std::memcpy(sector + i, &word, 8);
    }
    uint64_t sum = 0xcbf29ce484222325ull;
    for (int i = 0; i < 504; ++i) sum = (sum ^ sector[i]) * 0x100000001b3ull;
    std::memcpy(sector + 504, &sum, 8);
  }
  return bytes;
}

struct NvmeRig {
  explicit NvmeRig(const std::string& options = "", uint64_t bytes = DISK_BYTES, uint64_t memory = 64 << 20)
      : image(bytes), nvme(image.path() + options, memory) {}

  std::vector<uint8_t> onDisk(uint64_t offset, size_t length) {
    std::vector<uint8_t> bytes(length);
    UniqueFd fd = image.open(O_RDONLY);
    EXPECT_EQ(::pread(fd.get(), bytes.data(), length, static_cast<off_t>(offset)),
              static_cast<ssize_t>(length));
    return bytes;
  }
  // Puts `bytes` in guest memory at `address`.
  void put(uint64_t address, const std::vector<uint8_t>& bytes) {
    std::memcpy(nvme.host(address, bytes.size()), bytes.data(), bytes.size());
  }
  bool holds(uint64_t address, const std::vector<uint8_t>& bytes) {
    return std::memcmp(nvme.host(address, bytes.size()), bytes.data(), bytes.size()) == 0;
  }
  bool zero(uint64_t address, size_t length) {
    const uint8_t* at = nvme.host(address, length);
    return std::all_of(at, at + length, [](uint8_t byte) { return byte == 0; });
  }

  TempImage image;
  NvmeHarness nvme;
};

// ---- 1. Identification ----

TEST(NvmeIdentify, ControllerNamespaceListAndDescriptors) {
  NvmeRig rig;
  NvmeHarness& nvme = rig.nvme;
  EXPECT_EQ(nvme.proxy().readConfig(0x00, 4), 0x0a0afb5du);
  EXPECT_EQ(nvme.proxy().readConfig(0x08, 4) >> 8, 0x010802u) << "class: NVM Express";
  EXPECT_EQ(nvme.wiring().mappedBars, std::vector<uint64_t>{NvmeHarness::BAR_ADDRESS});
  EXPECT_EQ(nvme.msixTable(), 0x2000u);
  EXPECT_EQ(nvme.wiring().routes.size(), 17u) << "every MSI-X vector routed";

  uint64_t cap = nvme.read32(nvme::REG_CAP) | uint64_t{nvme.read32(nvme::REG_CAP + 4)} << 32;
  EXPECT_EQ(cap, nvme.read64(nvme::REG_CAP)) << "as two dwords or one qword";
  EXPECT_EQ(cap & 0xffff, 2047u) << "MQES";
  EXPECT_TRUE(cap & (1ull << 16)) << "CQR";
  EXPECT_NE((cap >> 24) & 0xff, 0u) << "TO";
  EXPECT_EQ((cap >> 32) & 0xf, 0u) << "DSTRD";
  EXPECT_TRUE(cap & (1ull << 37)) << "CSS: NVM";
  EXPECT_EQ((cap >> 48) & 0xff, 0u) << "MPSMIN = MPSMAX = 4 KiB";
  EXPECT_EQ(nvme.read32(nvme::REG_VS), 0x00010400u);
  ASSERT_TRUE(nvme.enable());
  EXPECT_EQ(nvme.csts() & 3, nvme::CSTS_RDY);

  uint64_t id = nvme.allocate(4096);
  while (nvme.interruptPending(0, 0ms)) {
  }
  ASSERT_STATUS(nvme.identify(1, 0, id), nvme::SUCCESS);
  EXPECT_TRUE(nvme.interruptPending(0, 1s)) << "the admin completion raised vector 0";
  const uint8_t* c = nvme.host(id, 4096);
  EXPECT_EQ(le(c + 0, 2), 0xfb5du) << "VID";
  std::string serial = text(c + 4, 20);
  EXPECT_NE(serial.find_first_not_of(' '), std::string::npos) << "SN is empty";
  EXPECT_TRUE(std::all_of(serial.begin(), serial.end(), [](char ch) { return ch >= 0x20 && ch <= 0x7e; }))
      << "SN: printable ASCII, space padded: '" << serial << "'";
  EXPECT_EQ(text(c + 24, 40), "cellvisor NVMe" + std::string(26, ' ')) << "MN";
  EXPECT_EQ(text(c + 64, 8), "1.0     ") << "FR";
  EXPECT_EQ(c[77], 9u) << "MDTS";
  EXPECT_EQ(le(c + 80, 4), 0x00010400u) << "VER";
  EXPECT_EQ(c[111], 1u) << "CNTRLTYPE: I/O controller";
  EXPECT_EQ(c[512], 0x66u) << "SQES";
  EXPECT_EQ(c[513], 0x44u) << "CQES";
  EXPECT_EQ(le(c + 516, 4), 1u) << "NN";
  uint64_t oncs = le(c + 520, 2);
  EXPECT_TRUE(oncs & (1u << 2)) << "ONCS: Dataset Management";
  EXPECT_TRUE(oncs & (1u << 3)) << "ONCS: Write Zeroes";
  EXPECT_EQ(le(c + 536, 4) & 3, 1u) << "SGLS: supported, no alignment";
  EXPECT_TRUE(le(c + 536, 4) & (1u << 16)) << "SGLS: bit buckets";
  EXPECT_EQ(text(c + 768, 4), "nqn.") << "SUBNQN";
  // The controller has a volatile write cache (the feature reads 1, Flush
  // reaches the disk): Identify must say so in VWC, byte 525, or a driver
  // never flushes (Linux: write cache off, no Flush, no FUA).
  NvmeResult cache = nvme.getFeatures(nvme::VOLATILE_WRITE_CACHE);
  ASSERT_STATUS(cache, nvme::SUCCESS);
  EXPECT_EQ(cache.dw0(), 1u);
  EXPECT_EQ(c[525] & 1, 1u)
      << "VWC (byte 525) bit 0: a volatile write cache is present; byte 524 (FNA) reads " << int{c[524]};

  // The same through PRP1 inside a page and PRP2: 4096 bytes across two pages.
  uint64_t across = nvme.allocate(8192);
  ASSERT_STATUS(nvme.identify(1, 0, across + 0x800), nvme::SUCCESS);
  EXPECT_EQ(std::memcmp(nvme.host(across + 0x800, 4096), c, 4096), 0);

  uint64_t ns = nvme.allocate(4096);
  ASSERT_STATUS(nvme.identify(0, 1, ns), nvme::SUCCESS);
  const uint8_t* n = nvme.host(ns, 4096);
  EXPECT_EQ(le(n + 0, 8), BLOCKS) << "NSZE";
  EXPECT_EQ(le(n + 8, 8), BLOCKS) << "NCAP";
  EXPECT_EQ(le(n + 16, 8), BLOCKS) << "NUSE";
  EXPECT_EQ(n[25], 0u) << "NLBAF";
  EXPECT_EQ(n[26], 0u) << "FLBAS";
  EXPECT_EQ(le(n + 128, 4), 9u << 16) << "LBAF0: LBADS 9, no metadata";
  EXPECT_NE(le(n + 120, 8), 0u) << "EUI64";

  uint64_t list = nvme.allocate(4096);
  ASSERT_STATUS(nvme.identify(2, 0, list), nvme::SUCCESS);
  EXPECT_EQ(le(nvme.host(list, 8), 4), 1u);
  EXPECT_EQ(le(nvme.host(list + 4, 4), 4), 0u) << "one namespace";
  ASSERT_STATUS(nvme.identify(2, 1, list), nvme::SUCCESS);
  EXPECT_EQ(le(nvme.host(list, 4), 4), 0u) << "no active NSID above 1";

  uint64_t descriptors = nvme.allocate(4096);
  ASSERT_STATUS(nvme.identify(3, 1, descriptors), nvme::SUCCESS);
  const uint8_t* d = nvme.host(descriptors, 4096);
  EXPECT_EQ(d[0], 1u) << "NIDT: EUI-64";
  EXPECT_EQ(d[1], 8u) << "NIDL";
  EXPECT_EQ(std::memcmp(d + 4, n + 120, 8), 0) << "the same EUI-64 as Identify Namespace";
  EXPECT_EQ(d[13], 0u) << "the list ends";

  EXPECT_STATUS(nvme.identify(0, 2, ns), nvme::INVALID_NAMESPACE);
  EXPECT_STATUS(nvme.identify(3, 2, ns), nvme::INVALID_NAMESPACE);
  EXPECT_STATUS(nvme.identify(0x1f, 0, ns), nvme::INVALID_FIELD);
  EXPECT_TRUE(nvme.problems().empty()) << ::testing::PrintToString(nvme.problems());
}

TEST(NvmeIdentify, FourKibSectorsSerialAndEui64) {
  NvmeRig rig(",sectsz=4096,ser=SERIAL-7,eui64=0x0011223344556677");
  NvmeHarness& nvme = rig.nvme;
  ASSERT_TRUE(nvme.enable());
  uint64_t id = nvme.allocate(4096);
  ASSERT_STATUS(nvme.identify(1, 0, id), nvme::SUCCESS);
  EXPECT_EQ(text(nvme.host(id + 4, 20), 20), "SERIAL-7" + std::string(12, ' '));
  ASSERT_STATUS(nvme.identify(0, 1, id), nvme::SUCCESS);
  const uint8_t* n = nvme.host(id, 4096);
  EXPECT_EQ(le(n, 8), DISK_BYTES / 4096) << "NSZE in 4 KiB blocks";
  EXPECT_EQ((le(n + 128, 4) >> 16) & 0xff, 12u) << "LBADS";
  const uint8_t eui[8] = {0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77};
  EXPECT_EQ(std::memcmp(n + 120, eui, 8), 0) << "EUI64, big-endian";

  ASSERT_TRUE(nvme.createIoQueues(1, 16));
  uint64_t data = nvme.allocate(8192);
  rig.put(data, sectors(80, 16, 1));
  ASSERT_STATUS(nvme.io(1, nvme::WRITE, 10, 2, data, 4096), nvme::SUCCESS);
  EXPECT_EQ(rig.onDisk(10 * 4096, 8192), sectors(80, 16, 1)) << "LBA 10 is byte 40960";
  uint64_t back = nvme.allocate(8192);
  ASSERT_STATUS(nvme.io(1, nvme::READ, 10, 2, back, 4096), nvme::SUCCESS);
  EXPECT_TRUE(rig.holds(back, sectors(80, 16, 1)));
  EXPECT_STATUS(nvme.io(1, nvme::READ, DISK_BYTES / 4096, 1, back, 4096), nvme::LBA_OUT_OF_RANGE);
}

TEST(NvmeAdmin, LogPagesAndFeatures) {
  NvmeRig rig;
  NvmeHarness& nvme = rig.nvme;
  ASSERT_TRUE(nvme.enable());
  ASSERT_TRUE(nvme.createIoQueues(2, 16));
  EXPECT_EQ(nvme.getFeatures(nvme::NUMBER_OF_QUEUES).dw0(), 0x00010001u) << "what was granted";
  uint64_t data = nvme.allocate(64 * KIB);
  ASSERT_STATUS(nvme.io(1, nvme::WRITE, 0, 128, data), nvme::SUCCESS);
  ASSERT_STATUS(nvme.io(2, nvme::READ, 0, 128, data), nvme::SUCCESS);

  uint64_t log = nvme.allocate(4096);
  ASSERT_STATUS(nvme.getLogPage(0x02, 0xffffffff, log, 512), nvme::SUCCESS);
  const uint8_t* smart = nvme.host(log, 512);
  EXPECT_GT(le(smart + 1, 2), 273u) << "composite temperature in kelvin";
  EXPECT_EQ(le(smart + 32, 8), 1u) << "data units read: 64 KiB rounds up to one";
  EXPECT_EQ(le(smart + 48, 8), 1u) << "data units written";
  EXPECT_EQ(le(smart + 64, 8), 1u) << "host read commands";
  EXPECT_EQ(le(smart + 80, 8), 1u) << "host write commands";
  ASSERT_STATUS(nvme.getLogPage(0x03, 0, log, 512), nvme::SUCCESS);
  EXPECT_EQ(nvme.host(log)[0], 1u) << "firmware slot 1 active";
  EXPECT_EQ(text(nvme.host(log + 8, 8), 8), "1.0     ");
  ASSERT_STATUS(nvme.getLogPage(0x01, 0, log, 64), nvme::SUCCESS);
  ASSERT_STATUS(nvme.getLogPage(0x02, 0xffffffff, log, 8, 8), nvme::SUCCESS) << "with an offset";
  EXPECT_EQ(le(nvme.host(log, 8), 8), 0u) << "SMART bytes 8..15 are reserved";
  EXPECT_STATUS(nvme.getLogPage(0x7f, 0, log, 512), nvme::INVALID_LOG_PAGE);

  ASSERT_STATUS(nvme.setFeatures(nvme::ARBITRATION, 0x03), nvme::SUCCESS);
  EXPECT_EQ(nvme.getFeatures(nvme::ARBITRATION).dw0(), 0x03u);
  ASSERT_STATUS(nvme.setFeatures(nvme::TEMPERATURE_THRESHOLD, 0x0160), nvme::SUCCESS);
  EXPECT_EQ(nvme.getFeatures(nvme::TEMPERATURE_THRESHOLD).dw0(), 0x0160u);
  EXPECT_EQ(nvme.getFeatures(nvme::TEMPERATURE_THRESHOLD, 1).dw0(), 0x0157u) << "the default";
  EXPECT_STATUS(nvme.setFeatures(0x7f, 0), nvme::INVALID_FIELD);
  EXPECT_STATUS(nvme.getFeatures(0x7f), nvme::INVALID_FIELD);
  EXPECT_TRUE(nvme.problems().empty()) << ::testing::PrintToString(nvme.problems());
}

// ---- 2. Reads and writes ----

TEST(NvmeIo, PrpWritesReadBackInGuestMemoryAndOnTheFile) {
  NvmeRig rig;
  NvmeHarness& nvme = rig.nvme;
  ASSERT_TRUE(nvme.enable());
  ASSERT_TRUE(nvme.createIoQueues(1, 64));
  std::mt19937_64 random(1);
  uint64_t data = nvme.allocate(256 * KIB + 4096);
  uint64_t back = nvme.allocate(256 * KIB + 4096);
  std::vector<uint64_t> seedOf(BLOCKS, 0);
  for (uint64_t round = 1; round <= 24; ++round) {
    SCOPED_TRACE(round);
    // One page (PRP1 only), two (PRP2 a page), many (PRP2 a list); some
    // buffers start inside a page.
    uint32_t blocks = round % 4 == 0 ? 8 : round % 4 == 1 ? 16 : 512;
    uint64_t offset = round % 3 == 0 ? 512 : 0;
    uint64_t lba = random() % (BLOCKS - blocks);
    rig.put(data + offset, sectors(lba, blocks, round));
    ASSERT_STATUS(nvme.io(1, nvme::WRITE, lba, blocks, data + offset), nvme::SUCCESS);
    for (uint32_t i = 0; i < blocks; ++i) seedOf[lba + i] = round;
    std::memset(nvme.host(back, 256 * KIB + 4096), 0, 256 * KIB + 4096);
    uint64_t readOffset = round % 2 == 0 ? 1024 : 0;
    ASSERT_STATUS(nvme.io(1, nvme::READ, lba, blocks, back + readOffset), nvme::SUCCESS);
    ASSERT_TRUE(rig.holds(back + readOffset, sectors(lba, blocks, round)));
    ASSERT_EQ(rig.onDisk(lba * 512, blocks * 512), sectors(lba, blocks, round));
  }
  // The whole disk through the device in 2 MiB (MDTS) reads, sector by
  // sector against what was last written there, and against the file.
  uint64_t whole = nvme.allocate(2 << 20);
  for (uint64_t lba = 0; lba < BLOCKS; lba += 4096) {
    ASSERT_STATUS(nvme.io(1, nvme::READ, lba, 4096, whole), nvme::SUCCESS);
    for (uint64_t s = 0; s < 4096; ++s) {
      std::vector<uint8_t> expected =
          seedOf[lba + s] == 0 ? std::vector<uint8_t>(512, 0) : sectors(lba + s, 1, seedOf[lba + s]);
      ASSERT_TRUE(rig.holds(whole + 512 * s, expected)) << "LBA " << lba + s;
    }
    std::vector<uint8_t> file = rig.onDisk(lba * 512, 2 << 20);
    ASSERT_EQ(std::memcmp(nvme.host(whole, 2 << 20), file.data(), 2 << 20), 0);
  }
  EXPECT_TRUE(nvme.problems().empty()) << ::testing::PrintToString(nvme.problems());
}

TEST(NvmeIo, ChainedPrpListsAndFullMdtsTransfers) {
  NvmeRig rig;
  NvmeHarness& nvme = rig.nvme;
  ASSERT_TRUE(nvme.enable());
  ASSERT_TRUE(nvme.createIoQueues(1, 16));
  uint64_t data = nvme.allocate((2 << 20) + 4096);
  uint64_t back = nvme.allocate((2 << 20) + 4096);

  // 2 MiB, the most one command moves: PRP1 and a list of 511 entries.
  rig.put(data, sectors(0, 4096, 11));
  ASSERT_STATUS(nvme.io(1, nvme::WRITE, 0, 4096, data), nvme::SUCCESS);
  // 2 MiB from inside a page: 513 pages, a list of exactly 512 entries whose
  // last slot is data, not a chain pointer.
  ASSERT_STATUS(nvme.io(1, nvme::READ, 0, 4096, back + 2048), nvme::SUCCESS);
  EXPECT_TRUE(rig.holds(back + 2048, sectors(0, 4096, 11)));

  // 64 KiB with the list pointer 16 bytes before a page end: one entry, then
  // a chain to the next list page; and 8 bytes before: a chain at once.
  std::vector<uint64_t> pages;
  for (int i = 1; i < 16; ++i) pages.push_back(data + 4096ull * i);
  rig.put(data, sectors(8192, 128, 12));
  nvme::Command write = NvmeHarness::readWrite(nvme::WRITE, 8192, 128);
  write.dptr[0] = data;
  write.dptr[1] = nvme.prpList(pages, nvme::PAGE - 16);
  ASSERT_STATUS(nvme.run(1, write), nvme::SUCCESS);
  EXPECT_EQ(rig.onDisk(8192 * 512, 64 * KIB), sectors(8192, 128, 12));
  std::vector<uint64_t> backPages;
  for (int i = 1; i < 16; ++i) backPages.push_back(back + 4096ull * i);
  std::memset(nvme.host(back, 64 * KIB), 0, 64 * KIB);
  nvme::Command read = NvmeHarness::readWrite(nvme::READ, 8192, 128);
  read.dptr[0] = back;
  read.dptr[1] = nvme.prpList(backPages, nvme::PAGE - 8);
  ASSERT_STATUS(nvme.run(1, read), nvme::SUCCESS);
  EXPECT_TRUE(rig.holds(back, sectors(8192, 128, 12)));
  // A list at a 256-byte offset (Linux's small DMA pool).
  std::memset(nvme.host(back, 64 * KIB), 0, 64 * KIB);
  read.dptr[1] = nvme.prpList(backPages, 256);
  ASSERT_STATUS(nvme.run(1, read), nvme::SUCCESS);
  EXPECT_TRUE(rig.holds(back, sectors(8192, 128, 12)));
  // 12 KiB with a two-slot list: when the last slot comes exactly one page
  // remains, so it is data, not a pointer to another list.
  std::memset(nvme.host(back, 16 * KIB), 0, 16 * KIB);
  read = NvmeHarness::readWrite(nvme::READ, 8192, 24);
  read.dptr[0] = back;
  read.dptr[1] = nvme.prpList({back + 4096, back + 8192}, nvme::PAGE - 16);
  ASSERT_STATUS(nvme.run(1, read), nvme::SUCCESS);
  std::vector<uint8_t> first = sectors(8192, 24, 12);
  EXPECT_TRUE(rig.holds(back, first));
}

TEST(NvmeIo, SglDataBlocksSegmentsAndBitBuckets) {
  NvmeRig rig;
  NvmeHarness& nvme = rig.nvme;
  ASSERT_TRUE(nvme.enable());
  ASSERT_TRUE(nvme.createIoQueues(1, 16));
  // One data block in DPTR.
  uint64_t data = nvme.allocate(64 * KIB);
  rig.put(data, sectors(0, 128, 21));
  nvme::Command write = NvmeHarness::readWrite(nvme::WRITE, 0, 128);
  NvmeHarness::setDescriptor(write, {data, 64 * KIB});
  ASSERT_STATUS(nvme.run(1, write), nvme::SUCCESS);
  EXPECT_EQ(rig.onDisk(0, 64 * KIB), sectors(0, 128, 21));

  // 32 scattered pages (every other page of 256 KiB) in four chained
  // segments: Segment, Segment, Segment, Last Segment.
  uint64_t scattered = nvme.allocate(256 * KIB);
  std::vector<uint8_t> expected = sectors(256, 256, 22);
  std::vector<SglEntry> pieces;
  for (uint64_t i = 0; i < 32; ++i) {
    std::memcpy(nvme.host(scattered + 8192 * i, 4096), expected.data() + 4096 * i, 4096);
    pieces.push_back({scattered + 8192 * i, 4096});
  }
  write = NvmeHarness::readWrite(nvme::WRITE, 256, 256);
  nvme.setSgls(write, pieces, 10);
  ASSERT_STATUS(nvme.run(1, write), nvme::SUCCESS);
  EXPECT_EQ(rig.onDisk(256 * 512, 128 * KIB), expected);

  // Pieces of odd lengths (SGLS: no alignment required).
  uint64_t odd = nvme.allocate(16 * KIB);
  std::vector<uint8_t> oddData = sectors(1024, 16, 23);
  std::memcpy(nvme.host(odd + 3, 1000), oddData.data(), 1000);
  std::memcpy(nvme.host(odd + 4096, 3096), oddData.data() + 1000, 3096);
  std::memcpy(nvme.host(odd + 8192 + 17, 4096), oddData.data() + 4096, 4096);
  write = NvmeHarness::readWrite(nvme::WRITE, 1024, 16);
  nvme.setSgls(write, {{odd + 3, 1000}, {odd + 4096, 3096}, {odd + 8192 + 17, 4096}});
  ASSERT_STATUS(nvme.run(1, write), nvme::SUCCESS);
  EXPECT_EQ(rig.onDisk(1024 * 512, 8192), oddData);

  // A read that drops its first and last 4 KiB in bit buckets.
  uint64_t back = nvme.allocate(16 * KIB);
  nvme::Command read = NvmeHarness::readWrite(nvme::READ, 256, 32);
  nvme.setSgls(read, {{0, 4096, SglEntry::BIT_BUCKET}, {back, 8192}, {0, 4096, SglEntry::BIT_BUCKET}});
  ASSERT_STATUS(nvme.run(1, read), nvme::SUCCESS);
  EXPECT_EQ(std::memcmp(nvme.host(back, 8192), expected.data() + 4096, 8192), 0);
  EXPECT_TRUE(rig.zero(back + 8192, 8192)) << "nothing beyond the data block";
  // And the scattered write read back in one piece.
  uint64_t whole = nvme.allocate(128 * KIB);
  ASSERT_STATUS(nvme.io(1, nvme::READ, 256, 256, whole), nvme::SUCCESS);
  EXPECT_TRUE(rig.holds(whole, expected));
}

TEST(NvmeIo, FourQueuesSixteenDeep) {
  constexpr uint16_t QUEUES = 4;
  constexpr uint32_t DEPTH = 16;
  NvmeRig rig;
  NvmeHarness& nvme = rig.nvme;
  ASSERT_TRUE(nvme.enable());
  ASSERT_TRUE(nvme.createIoQueues(QUEUES, 32));
  uint64_t buffers = nvme.allocate(QUEUES * DEPTH * 64 * KIB);
  auto buffer = [&](uint16_t q, uint32_t i) { return buffers + ((q - 1u) * DEPTH + i) * 64ull * KIB; };
  auto lba = [](uint16_t q, uint32_t i) { return ((q - 1u) * DEPTH + i) * 128ull; };
  for (uint8_t opcode : {nvme::WRITE, nvme::READ}) {
    std::vector<uint64_t> before;
    for (uint16_t q = 1; q <= QUEUES; ++q) before.push_back(nvme.interrupts(q));
    for (uint16_t q = 1; q <= QUEUES; ++q) {
      for (uint32_t i = 0; i < DEPTH; ++i) {
        if (opcode == nvme::WRITE) {
          rig.put(buffer(q, i), sectors(lba(q, i), 128, 30));
        } else {
          std::memset(nvme.host(buffer(q, i), 64 * KIB), 0, 64 * KIB);
        }
        nvme::Command command = NvmeHarness::readWrite(opcode, lba(q, i), 128);
        if (i % 2 == 0) {
          nvme.setPrps(command, buffer(q, i), 64 * KIB);
        } else {
          nvme.setSgls(command, {{buffer(q, i), 32 * KIB}, {buffer(q, i) + 32 * KIB, 32 * KIB}});
        }
        nvme.submit(q, command);
      }
    }
    for (uint16_t q = 1; q <= QUEUES; ++q) nvme.ring(q);
    size_t completed = 0;
    auto deadline = std::chrono::steady_clock::now() + 20s;
    while (completed < QUEUES * DEPTH && std::chrono::steady_clock::now() < deadline) {
      for (const auto& [sqid, entry] : nvme.collect(1s)) {
        EXPECT_EQ(entry.status >> 1, 0u) << "SQ " << sqid << " CID " << entry.cid;
        ++completed;
      }
    }
    ASSERT_EQ(completed, QUEUES * DEPTH);
    for (uint16_t q = 1; q <= QUEUES; ++q) {
      nvme.interruptPending(q, 0ms);  // Counts one the driver did not wait for.
      EXPECT_GT(nvme.interrupts(q), before[q - 1]) << "queue " << q << " completes on its own vector";
    }
  }
  for (uint16_t q = 1; q <= QUEUES; ++q) {
    for (uint32_t i = 0; i < DEPTH; ++i) {
      EXPECT_TRUE(rig.holds(buffer(q, i), sectors(lba(q, i), 128, 30))) << q << "/" << i;
    }
  }
  EXPECT_EQ(rig.onDisk(0, QUEUES * DEPTH * 64 * KIB), sectors(0, QUEUES * DEPTH * 128, 30));
  EXPECT_TRUE(nvme.problems().empty()) << ::testing::PrintToString(nvme.problems());
}

// Shadow doorbells as Linux uses them: after Doorbell Buffer Config the
// server switches every I/O doorbell to an ioeventfd, reads the values from
// the shadow buffer, and asks for a ring (EventIdx) only when it has caught
// up. How many rings that saves depends on timing (printed, not asserted);
// that every value arrives does not. A reset switches the doorbells back.
TEST(NvmeIo, ShadowDoorbellsCarryTheValues) {
  constexpr uint32_t COMMANDS = 256;
  constexpr uint32_t DEPTH = 16;
  NvmeRig rig;
  NvmeHarness& nvme = rig.nvme;
  ASSERT_TRUE(nvme.enable());
  ASSERT_TRUE(nvme.createIoQueues(2, 64));
  EXPECT_TRUE(nvme.wiring().doorbells.empty()) << "register writes until the driver gives shadows";
  ASSERT_STATUS(nvme.useShadowDoorbells(), nvme::SUCCESS);
  EXPECT_EQ(nvme.wiring().doorbells.size(), 2u * 16) << "every I/O queue's tail and head doorbell";
  uint64_t buffers = nvme.allocate(DEPTH * 4096);
  uint64_t ringsBefore = nvme.rungDoorbells();
  // A buffer is reused only once its own command completed (the two queues
  // complete in any order).
  std::vector<uint32_t> freeBuffers;
  for (uint32_t i = 0; i < DEPTH; ++i) freeBuffers.push_back(i);
  std::map<std::pair<uint16_t, uint16_t>, uint32_t> bufferOf;  // (sqid, cid) -> buffer
  uint32_t submitted = 0;
  uint32_t completed = 0;
  auto deadline = std::chrono::steady_clock::now() + 20s;
  while (completed < COMMANDS && std::chrono::steady_clock::now() < deadline) {
    while (submitted < COMMANDS && !freeBuffers.empty()) {
      uint32_t i = freeBuffers.back();
      freeBuffers.pop_back();
      rig.put(buffers + 4096ull * i, sectors(8ull * submitted, 8, 40));
      nvme::Command write = NvmeHarness::readWrite(nvme::WRITE, 8ull * submitted, 8);
      nvme.setPrps(write, buffers + 4096ull * i, 4096);
      uint16_t sqid = static_cast<uint16_t>(1 + submitted % 2);
      bufferOf[{sqid, nvme.submit(sqid, write)}] = i;
      ++submitted;
      if (submitted % 4 == 0 || submitted == COMMANDS) {
        nvme.ring(1);
        nvme.ring(2);
      }
    }
    for (const auto& [sqid, entry] : nvme.collect(1s)) {
      EXPECT_EQ(entry.status >> 1, 0u) << "SQ " << sqid << " CID " << entry.cid;
      freeBuffers.push_back(bufferOf.at({sqid, entry.cid}));
      ++completed;
    }
  }
  ASSERT_EQ(completed, COMMANDS);
  EXPECT_EQ(rig.onDisk(0, COMMANDS * 4096ull), sectors(0, COMMANDS * 8, 40));
  uint64_t rings = nvme.rungDoorbells() - ringsBefore;
  EXPECT_TRUE(nvme.problems().empty()) << ::testing::PrintToString(nvme.problems());
  std::printf("shadow doorbells: %u commands, %llu doorbell rings\n", COMMANDS,
              static_cast<unsigned long long>(rings));

  ASSERT_TRUE(nvme.disable());
  EXPECT_TRUE(nvme.wiring().doorbells.empty()) << "a reset switches the doorbells back";
}

// A completion queue smaller than the work: the controller holds what does
// not fit until the driver moves the head, and loses nothing.
TEST(NvmeIo, FullCompletionQueueHoldsCompletionsUntilTheHeadMoves) {
  NvmeRig rig;
  NvmeHarness& nvme = rig.nvme;
  ASSERT_TRUE(nvme.enable());
  ASSERT_STATUS(nvme.setFeatures(nvme::NUMBER_OF_QUEUES, 0), nvme::SUCCESS);
  ASSERT_STATUS(nvme.createCompletionQueue(1, 4, 1), nvme::SUCCESS);
  ASSERT_STATUS(nvme.createSubmissionQueue(1, 32, 1), nvme::SUCCESS);
  uint64_t buffer = nvme.allocate(20 * 4096);
  for (int i = 0; i < 20; ++i) {
    nvme::Command read = NvmeHarness::readWrite(nvme::READ, 8ull * i, 8);
    nvme.setPrps(read, buffer + 4096ull * i, 4096);
    nvme.submit(1, read);
  }
  nvme.ring(1);
  std::this_thread::sleep_for(200ms);
  const uint8_t* cq = nvme.host(nvme.queueAddress(1, false), 64);
  int posted = 0;
  for (int i = 0; i < 4; ++i) posted += cq[16 * i + 14] & 1;
  EXPECT_EQ(posted, 3) << "a full queue of 4 holds 3 entries";
  size_t completed = 0;
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (completed < 20 && std::chrono::steady_clock::now() < deadline) {
    for (const auto& [sqid, entry] : nvme.collect(1s)) {
      EXPECT_EQ(entry.status >> 1, 0u);
      ++completed;
    }
  }
  EXPECT_EQ(completed, 20u);
  EXPECT_TRUE(nvme.problems().empty()) << ::testing::PrintToString(nvme.problems());
}

// Deleting a submission queue whose completions wait for room in a full
// completion queue: they are posted (or aborted) as room appears, never
// written over entries the driver has not taken, and none is lost.
TEST(NvmeIo, DeletingAQueueWhoseCompletionsWaitLosesNone) {
  NvmeRig rig;
  NvmeHarness& nvme = rig.nvme;
  ASSERT_TRUE(nvme.enable());
  ASSERT_STATUS(nvme.setFeatures(nvme::NUMBER_OF_QUEUES, 0), nvme::SUCCESS);
  ASSERT_STATUS(nvme.createCompletionQueue(1, 4, 1), nvme::SUCCESS);
  ASSERT_STATUS(nvme.createSubmissionQueue(1, 16, 1), nvme::SUCCESS);
  uint64_t buffer = nvme.allocate(8 * 4096);
  for (int i = 0; i < 8; ++i) {
    nvme::Command read = NvmeHarness::readWrite(nvme::READ, 8ull * i, 8);
    nvme.setPrps(read, buffer + 4096ull * i, 4096);
    nvme.submit(1, read);
  }
  nvme.ring(1);
  std::this_thread::sleep_for(200ms);  // 3 posted, 5 waiting for room.
  nvme::Command remove = NvmeHarness::command(nvme::DELETE_IO_SQ);
  remove.cdw10 = 1;
  uint16_t removal = nvme.submit(0, remove);
  nvme.ring(0);
  size_t reads = 0;
  std::optional<nvme::Completion> removed;
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while ((reads < 8 || !removed) && std::chrono::steady_clock::now() < deadline) {
    for (const auto& [sqid, entry] : nvme.collect(200ms)) {
      if (sqid == 0 && entry.cid == removal) {
        removed = entry;
        continue;
      }
      uint16_t status = entry.status >> 1 & 0x7ff;
      EXPECT_TRUE(status == nvme::SUCCESS || status == nvme::ABORTED_SQ_DELETION) << std::hex << status;
      ++reads;
    }
  }
  EXPECT_EQ(reads, 8u) << "completions lost";
  ASSERT_TRUE(removed.has_value());
  EXPECT_EQ(removed->status >> 1, 0u);
  EXPECT_TRUE(nvme.problems().empty()) << ::testing::PrintToString(nvme.problems());
}

TEST(NvmeIo, FlushWriteZeroesAndDeallocate) {
  NvmeRig rig;
  NvmeHarness& nvme = rig.nvme;
  ASSERT_TRUE(nvme.enable());
  ASSERT_TRUE(nvme.createIoQueues(1, 16));
  constexpr uint32_t SPAN = 4096;  // 2 MiB of blocks.
  uint64_t data = nvme.allocate(SPAN * 512);
  std::vector<uint8_t> expected = sectors(0, SPAN, 41);
  rig.put(data, expected);
  ASSERT_STATUS(nvme.io(1, nvme::WRITE, 0, SPAN, data), nvme::SUCCESS);
  EXPECT_STATUS(nvme.run(1, NvmeHarness::command(nvme::FLUSH, 1)), nvme::SUCCESS);
  EXPECT_STATUS(nvme.run(1, NvmeHarness::command(nvme::FLUSH, 0xffffffff)), nvme::SUCCESS);

  auto zeroed = [&](uint64_t lba, uint32_t blocks) {
    std::fill(expected.begin() + static_cast<long>(lba * 512),
              expected.begin() + static_cast<long>((lba + blocks) * 512), 0);
  };
  // Write Zeroes on blocks 64..191.
  nvme::Command zeroes = NvmeHarness::readWrite(nvme::WRITE_ZEROES, 64, 128);
  ASSERT_STATUS(nvme.run(1, zeroes), nvme::SUCCESS);
  zeroed(64, 128);
  // ... and with DEAC (deallocate) on blocks 1536..1791.
  zeroes = NvmeHarness::readWrite(nvme::WRITE_ZEROES, 1536, 256);
  zeroes.cdw12 |= 1u << 25;
  ASSERT_STATUS(nvme.run(1, zeroes), nvme::SUCCESS);
  zeroed(1536, 256);
  // Dataset Management, deallocate: two ranges, 512..767 and 1024..1087.
  uint64_t ranges = nvme.allocate(4096);
  uint32_t range[2][4] = {{0, 256, 512, 0}, {0, 64, 1024, 0}};  // Attributes, NLB, SLBA (64-bit).
  std::memcpy(nvme.host(ranges, sizeof(range)), range, sizeof(range));
  nvme::Command dsm = NvmeHarness::command(nvme::DATASET_MANAGEMENT, 1);
  dsm.cdw10 = 1;        // Two ranges.
  dsm.cdw11 = 1u << 2;  // AD
  nvme.setPrps(dsm, ranges, 4096);
  ASSERT_STATUS(nvme.run(1, dsm), nvme::SUCCESS);
  zeroed(512, 256);
  zeroed(1024, 64);

  uint64_t back = nvme.allocate(SPAN * 512);
  ASSERT_STATUS(nvme.io(1, nvme::READ, 0, SPAN, back), nvme::SUCCESS);
  for (uint64_t s = 0; s < SPAN; ++s) {
    ASSERT_EQ(std::memcmp(nvme.host(back + 512 * s, 512), expected.data() + 512 * s, 512), 0) << "LBA " << s;
  }
  EXPECT_EQ(rig.onDisk(0, SPAN * 512), expected);
  // Deallocated ranges are holes in the file.
  UniqueFd fd = rig.image.open(O_RDONLY);
  for (auto [lba, blocks] : {std::pair<uint64_t, uint64_t>{512, 256}, {1536, 256}}) {
    EXPECT_EQ(::lseek(fd.get(), static_cast<off_t>(lba * 512), SEEK_HOLE), static_cast<off_t>(lba * 512))
        << "LBA " << lba;
    EXPECT_GE(::lseek(fd.get(), static_cast<off_t>(lba * 512), SEEK_DATA),
              static_cast<off_t>((lba + blocks) * 512))
        << "LBA " << lba;
  }
}

TEST(NvmeIo, NamespaceInMemory) {
  NvmeHarness nvme("ram=8");
  ASSERT_TRUE(nvme.enable());
  uint64_t id = nvme.allocate(4096);
  ASSERT_STATUS(nvme.identify(0, 1, id), nvme::SUCCESS);
  EXPECT_EQ(le(nvme.host(id, 8), 8), (8u << 20) / 512) << "NSZE";
  ASSERT_TRUE(nvme.createIoQueues(2, 16));
  uint64_t data = nvme.allocate(256 * KIB);
  std::vector<uint8_t> expected = sectors(1000, 512, 81);
  std::memcpy(nvme.host(data, expected.size()), expected.data(), expected.size());
  ASSERT_STATUS(nvme.io(1, nvme::WRITE, 1000, 512, data), nvme::SUCCESS);
  ASSERT_STATUS(nvme.run(1, NvmeHarness::readWrite(nvme::WRITE_ZEROES, 1008, 8)), nvme::SUCCESS);
  std::fill(expected.begin() + 8 * 512, expected.begin() + 16 * 512, 0);
  uint64_t back = nvme.allocate(256 * KIB);
  ASSERT_STATUS(nvme.io(2, nvme::READ, 1000, 512, back), nvme::SUCCESS);
  EXPECT_EQ(std::memcmp(nvme.host(back, expected.size()), expected.data(), expected.size()), 0);
}

// ---- 3. Hostile and invalid commands ----

TEST(NvmeHostile, BadCommandsFailAloneAndTheServerLives) {
  NvmeRig rig;
  NvmeHarness& nvme = rig.nvme;
  ASSERT_TRUE(nvme.enable());
  ASSERT_TRUE(nvme.createIoQueues(2, 16));
  pid_t pid = nvme.process().pid();
  uint64_t buffer = nvme.allocate((2 << 20) + 8192);
  uint64_t outside = nvme.memory().size() + 0x10000;
  auto read = [](uint64_t lba, uint32_t blocks) { return NvmeHarness::readWrite(nvme::READ, lba, blocks); };

  {
    SCOPED_TRACE("PRP1 outside guest RAM");
    nvme::Command command = read(0, 8);
    command.dptr[0] = outside;
    NvmeResult result = nvme.run(1, command);
    EXPECT_STATUS(result, nvme::DATA_TRANSFER_ERROR);
    EXPECT_TRUE(result.dnr());
    command.dptr[0] = 1ull << 62;
    EXPECT_STATUS(nvme.run(1, command), nvme::DATA_TRANSFER_ERROR);
  }
  {
    SCOPED_TRACE("PRP list entry not page aligned");
    nvme::Command command = read(0, 32);
    command.dptr[0] = buffer;
    command.dptr[1] = nvme.prpList({buffer + 4096, buffer + 8192 + 512, buffer + 12288});
    NvmeResult result = nvme.run(1, command);
    EXPECT_STATUS(result, nvme::PRP_OFFSET_INVALID);
    EXPECT_TRUE(result.dnr());
  }
  {
    SCOPED_TRACE("PRP2 (second page) not page aligned");
    nvme::Command command = read(0, 16);
    command.dptr[0] = buffer;
    command.dptr[1] = buffer + 4096 + 8;
    EXPECT_STATUS(nvme.run(1, command), nvme::PRP_OFFSET_INVALID);
  }
  {
    SCOPED_TRACE("PRP list outside guest RAM, and an entry outside");
    nvme::Command command = read(0, 32);
    command.dptr[0] = buffer;
    command.dptr[1] = outside;
    EXPECT_STATUS(nvme.run(1, command), nvme::DATA_TRANSFER_ERROR);
    command.dptr[1] = nvme.prpList({buffer + 4096, outside & ~0xfffull, buffer + 12288});
    EXPECT_STATUS(nvme.run(1, command), nvme::DATA_TRANSFER_ERROR);
  }
  {
    SCOPED_TRACE("LBA range past the end");
    EXPECT_STATUS(nvme.io(1, nvme::READ, BLOCKS, 1, buffer), nvme::LBA_OUT_OF_RANGE);
    EXPECT_STATUS(nvme.io(1, nvme::READ, BLOCKS - 1, 2, buffer), nvme::LBA_OUT_OF_RANGE);
    EXPECT_STATUS(nvme.io(1, nvme::WRITE, ~0ull - 3, 8, buffer), nvme::LBA_OUT_OF_RANGE);
    EXPECT_STATUS(nvme.run(1, NvmeHarness::readWrite(nvme::WRITE_ZEROES, BLOCKS - 4, 8)),
                  nvme::LBA_OUT_OF_RANGE);
    uint32_t range[4] = {0, 8, static_cast<uint32_t>(BLOCKS - 4), 0};
    uint64_t ranges = nvme.allocate(4096);
    std::memcpy(nvme.host(ranges, 16), range, 16);
    nvme::Command dsm = NvmeHarness::command(nvme::DATASET_MANAGEMENT, 1);
    dsm.cdw11 = 1u << 2;
    nvme.setPrps(dsm, ranges, 16);
    EXPECT_STATUS(nvme.run(1, dsm), nvme::LBA_OUT_OF_RANGE);
  }
  {
    SCOPED_TRACE("more blocks than MDTS allows");
    nvme::Command command = read(0, 4097);
    nvme.setPrps(command, buffer, 4097 * 512);
    EXPECT_STATUS(nvme.run(1, command), nvme::INVALID_FIELD);
  }
  {
    SCOPED_TRACE("unknown opcodes and namespaces");
    EXPECT_STATUS(nvme.run(1, NvmeHarness::command(0x7f, 1)), nvme::INVALID_OPCODE);
    EXPECT_STATUS(nvme.run(0, NvmeHarness::command(0xc1)), nvme::INVALID_OPCODE);
    for (uint32_t nsid : {0u, 2u, 0xffffffffu}) {
      nvme::Command command = read(0, 8);
      command.nsid = nsid;
      nvme.setPrps(command, buffer, 4096);
      EXPECT_STATUS(nvme.run(1, command), nvme::INVALID_NAMESPACE) << "NSID " << nsid;
    }
  }
  {
    SCOPED_TRACE("queue creation and deletion");
    EXPECT_STATUS(nvme.createSubmissionQueue(3, 16, 5), nvme::COMPLETION_QUEUE_INVALID) << "no CQ 5";
    EXPECT_STATUS(nvme.createSubmissionQueue(3, 16, 0), nvme::COMPLETION_QUEUE_INVALID)
        << "CQ 0 is the admin's";
    EXPECT_STATUS(nvme.createCompletionQueue(17, 16, 1), nvme::INVALID_QUEUE_IDENTIFIER) << "maxq is 16";
    EXPECT_STATUS(nvme.createSubmissionQueue(17, 16, 1), nvme::INVALID_QUEUE_IDENTIFIER);
    EXPECT_STATUS(nvme.createCompletionQueue(1, 16, 1), nvme::INVALID_QUEUE_IDENTIFIER) << "exists";
    EXPECT_STATUS(nvme.createSubmissionQueue(0, 16, 1), nvme::INVALID_QUEUE_IDENTIFIER);
    EXPECT_STATUS(nvme.createCompletionQueue(3, 1, 1), nvme::INVALID_QUEUE_SIZE) << "one entry";
    EXPECT_STATUS(nvme.createCompletionQueue(3, 4096, 1), nvme::INVALID_QUEUE_SIZE) << "above MQES";
    EXPECT_STATUS(nvme.createCompletionQueue(3, 16, 17), nvme::INVALID_INTERRUPT_VECTOR);
    EXPECT_STATUS(nvme.deleteCompletionQueue(1), nvme::INVALID_QUEUE_DELETION) << "SQ 1 still uses it";
    EXPECT_STATUS(nvme.deleteSubmissionQueue(9), nvme::INVALID_QUEUE_IDENTIFIER);
    nvme::Command command = NvmeHarness::command(nvme::CREATE_IO_CQ);
    command.dptr[0] = nvme.queueAddress(3, false) + 8;
    command.cdw10 = (15u << 16) | 3;
    command.cdw11 = 1;
    EXPECT_STATUS(nvme.run(0, command), nvme::PRP_OFFSET_INVALID) << "queue not page aligned";
    command.dptr[0] = outside & ~0xfffull;
    EXPECT_NE(nvme.run(0, command).status(), nvme::SUCCESS) << "queue outside guest RAM";
  }
  {
    SCOPED_TRACE("bad SGLs");
    for (auto [type, subtype] : {std::pair<uint8_t, uint8_t>{0x4, 0}, {0xf, 0}, {0x0, 1}, {0x7, 0}}) {
      nvme::Command command = read(0, 8);
      NvmeHarness::setDescriptor(command, {buffer, 4096, type, subtype});
      NvmeResult result = nvme.run(1, command);
      EXPECT_STATUS(result, nvme::SGL_TYPE_INVALID) << "type " << int{type} << " subtype " << int{subtype};
      EXPECT_TRUE(result.dnr());
    }
    nvme::Command command = read(0, 16);
    NvmeHarness::setDescriptor(command, {buffer, 4096});
    EXPECT_STATUS(nvme.run(1, command), nvme::SGL_DATA_LENGTH_INVALID) << "too short";
    NvmeHarness::setDescriptor(command, {outside, 8192});
    EXPECT_STATUS(nvme.run(1, command), nvme::DATA_TRANSFER_ERROR);
    // A last segment may not point to another segment.
    SglEntry last{nvme.allocate(4096), 32, SglEntry::LAST_SEGMENT};
    nvme::Command inner{};
    NvmeHarness::setDescriptor(inner, {buffer, 4096});
    std::memcpy(nvme.host(last.address, 16), inner.dptr, 16);
    NvmeHarness::setDescriptor(inner, {last.address, 16, SglEntry::SEGMENT});
    std::memcpy(nvme.host(last.address + 16, 16), inner.dptr, 16);
    NvmeHarness::setDescriptor(command, last);
    EXPECT_STATUS(nvme.run(1, command), nvme::SGL_TYPE_INVALID);
  }
  {
    SCOPED_TRACE("doorbell values out of range, and doorbells of no queue");
    // A tail beyond the queue must not make the controller take anything.
    nvme.doorbell(nvme::DOORBELLS + 8 * 1, 16);  // Size 16: valid tails are 0..15.
    nvme.doorbell(nvme::DOORBELLS + 8 * 1, 0xffff);
    nvme.doorbell(nvme::DOORBELLS + 8 * 1 + 4, 40);  // CQ head beyond the queue.
    nvme.doorbell(nvme::DOORBELLS + 8 * 9, 1);       // No queue 9.
    nvme.doorbell(nvme::DOORBELLS + 8 * 40 + 4, 1);  // No queue 40.
    EXPECT_TRUE(nvme.collect(100ms).empty()) << "nothing was taken";
  }
  EXPECT_EQ(nvme.process().pid(), pid) << "the server never died";
  EXPECT_EQ(nvme.process().restarts(), 0u);
  EXPECT_EQ(nvme.csts() & 3, nvme::CSTS_RDY) << "ready, no fatal status";
  // Still serving, on both queues.
  rig.put(buffer, sectors(0, 64, 51));
  ASSERT_STATUS(nvme.io(2, nvme::WRITE, 0, 64, buffer), nvme::SUCCESS);
  std::memset(nvme.host(buffer, 32 * KIB), 0, 32 * KIB);
  ASSERT_STATUS(nvme.io(1, nvme::READ, 0, 64, buffer), nvme::SUCCESS);
  EXPECT_TRUE(rig.holds(buffer, sectors(0, 64, 51)));
  EXPECT_TRUE(nvme.problems().empty()) << ::testing::PrintToString(nvme.problems());
}

// Entries a driver should never write, placed raw on a queue the harness
// does not drive: two commands with one CID, an entry with every reserved
// field and the fused bits set, and a 2 MiB read whose PRP list chains back
// to itself. Each completes on its own (success or an error status), the
// server lives, and the controller serves normally afterwards.
TEST(NvmeHostile, ReusedCidsReservedBitsAndASelfChainedPrpListFailAlone) {
  NvmeRig rig;
  NvmeHarness& nvme = rig.nvme;
  ASSERT_TRUE(nvme.enable());
  ASSERT_TRUE(nvme.createIoQueues(1, 16));
  ASSERT_STATUS(nvme.createCompletionQueue(2, 16, 2, false), nvme::SUCCESS);
  ASSERT_STATUS(nvme.createSubmissionQueue(2, 16, 2), nvme::SUCCESS);
  pid_t server = nvme.process().pid();
  uint64_t sq = nvme.queueAddress(2, true);
  uint64_t cq = nvme.queueAddress(2, false);
  uint64_t buffer = nvme.allocate(2 << 20);
  uint64_t list = nvme.allocate(4096);
  std::vector<nvme::Command> entries;
  for (uint64_t lba : {0ull, 8ull}) {
    nvme::Command read = NvmeHarness::readWrite(nvme::READ, lba, 8);
    read.dptr[0] = buffer + lba * 512;
    read.cid = 7;  // Both.
    entries.push_back(read);
  }
  nvme::Command reserved = NvmeHarness::readWrite(nvme::READ, 16, 8);
  reserved.dptr[0] = buffer;
  reserved.cid = 8;
  reserved.flags = 0x01 | 0x3c;  // Fused (first of a pair) and the reserved bits of CDW0.
  reserved.reserved = ~0ull;
  reserved.cdw13 = reserved.cdw14 = reserved.cdw15 = ~0u;
  entries.push_back(reserved);
  // PRP2 points at the list page's last slot, which chains to the page
  // itself, whose last slot chains to itself again.
  auto* slots = reinterpret_cast<uint64_t*>(nvme.host(list, 4096));
  for (int i = 0; i < 511; ++i) slots[i] = buffer + 4096ull * (i % 512);
  slots[511] = list;
  nvme::Command looping = NvmeHarness::readWrite(nvme::READ, 0, 4096);
  looping.dptr[0] = buffer;
  looping.dptr[1] = list + 4088;
  looping.cid = 9;
  entries.push_back(looping);
  for (size_t i = 0; i < entries.size(); ++i) std::memcpy(nvme.host(sq + 64 * i, 64), &entries[i], 64);
  nvme.doorbell(nvme::DOORBELLS + 16, static_cast<uint32_t>(entries.size()));
  std::vector<nvme::Completion> completions;
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (completions.size() < entries.size() && std::chrono::steady_clock::now() < deadline) {
    nvme::Completion entry;
    std::memcpy(&entry, nvme.host(cq + 16 * completions.size(), 16), 16);
    if ((entry.status & 1) == 1) {
      completions.push_back(entry);
    } else {
      std::this_thread::sleep_for(1ms);
    }
  }
  ASSERT_EQ(completions.size(), entries.size()) << "every raw entry completes, one way or another";
  EXPECT_EQ(completions[0].cid, 7);
  EXPECT_EQ(completions[1].cid, 7);
  for (const auto& entry : completions) EXPECT_EQ(entry.sqId, 2) << "CID " << entry.cid;
  EXPECT_EQ(nvme.process().pid(), server) << "the server did not die";
  nvme.doorbell(nvme::DOORBELLS + 20, static_cast<uint32_t>(entries.size()));
  uint64_t again = nvme.allocate(4096);
  EXPECT_STATUS(nvme.io(1, nvme::READ, 0, 8, again), nvme::SUCCESS) << "the controller still serves";
}

// Tails past the queue were ignored above; here the queue is at a
// different place when the bad doorbell comes, and the next good one must
// pick up exactly the commands the driver put there.
TEST(NvmeHostile, IgnoredDoorbellLeavesTheQueueConsistent) {
  NvmeRig rig;
  NvmeHarness& nvme = rig.nvme;
  ASSERT_TRUE(nvme.enable());
  ASSERT_TRUE(nvme.createIoQueues(1, 8));
  for (int round = 0; round < 20; ++round) {  // Around the 8-entry queue a few times.
    uint16_t cid = nvme.submit(1, NvmeHarness::command(nvme::FLUSH, 1));
    nvme.doorbell(nvme::DOORBELLS + 8, 8 + round);
    nvme.ring(1);
    ASSERT_STATUS(nvme.wait(1, cid, 5s), nvme::SUCCESS) << "round " << round;
  }
  EXPECT_TRUE(nvme.problems().empty()) << ::testing::PrintToString(nvme.problems());
}

TEST(NvmeHostile, ReadOnlyNamespaceRefusesWrites) {
  NvmeRig rig(",ro");
  NvmeHarness& nvme = rig.nvme;
  ASSERT_TRUE(nvme.enable());
  ASSERT_TRUE(nvme.createIoQueues(1, 16));
  uint64_t id = nvme.allocate(4096);
  ASSERT_STATUS(nvme.identify(1, 0, id), nvme::SUCCESS);
  EXPECT_FALSE(le(nvme.host(id + 520, 2), 2) & (1u << 2)) << "no DSM on a read-only namespace";
  uint64_t data = nvme.allocate(8192);
  rig.put(data, sectors(0, 16, 61));
  constexpr uint16_t WRITE_TO_READ_ONLY = nvme::status(2, 0x82);
  EXPECT_STATUS(nvme.io(1, nvme::WRITE, 0, 16, data), WRITE_TO_READ_ONLY);
  EXPECT_STATUS(nvme.run(1, NvmeHarness::readWrite(nvme::WRITE_ZEROES, 0, 16)), WRITE_TO_READ_ONLY);
  EXPECT_STATUS(nvme.io(1, nvme::READ, 0, 16, data), nvme::SUCCESS);
  EXPECT_TRUE(rig.zero(data, 8192)) << "the disk is still empty";
  EXPECT_STATUS(nvme.run(1, NvmeHarness::command(nvme::FLUSH, 1)), nvme::SUCCESS);
  EXPECT_EQ(rig.onDisk(0, 8192), std::vector<uint8_t>(8192, 0));
}

// ---- 4. Crash and restart ----

// Commands in flight on four queues while the server is killed at random
// moments: each completes exactly once, successfully, and every read
// returns what the last write to its region left there.
TEST(NvmeRestart, KilledAtRandomEveryCommandCompletesOnceWithItsData) {
  constexpr uint16_t QUEUES = 4;
  constexpr uint32_t DEPTH = 16;
  constexpr uint32_t REGION_BLOCKS = 128;  // 64 KiB
  constexpr uint32_t REGIONS = BLOCKS / REGION_BLOCKS;
  constexpr int KILLS = 10;
  NvmeRig rig;
  NvmeHarness& nvme = rig.nvme;
  ASSERT_TRUE(nvme.enable());
  ASSERT_TRUE(nvme.createIoQueues(QUEUES, 32));
  SupervisedServer supervised(nvme.process());

  struct Command {
    uint32_t region;
    uint32_t version;
    bool write;
    uint64_t buffer;
  };
  std::vector<uint32_t> version(REGIONS, 0);
  std::vector<bool> busy(REGIONS, false);
  std::map<std::pair<uint16_t, uint16_t>, Command> inFlight;
  std::map<uint16_t, std::vector<uint64_t>> freeBuffers;
  for (uint16_t q = 1; q <= QUEUES; ++q) {
    for (uint32_t i = 0; i < DEPTH; ++i) freeBuffers[q].push_back(nvme.allocate(REGION_BLOCKS * 512));
  }
  std::mt19937 random(2024);
  uint64_t submitted = 0, completed = 0, failed = 0, badReads = 0;
  auto issue = [&](uint16_t q) {
    // Queue q owns regions q-1, q-1+QUEUES, ...; one command per region at a time.
    uint32_t region;
    do {
      region = (q - 1u) + QUEUES * (random() % (REGIONS / QUEUES));
    } while (busy[region]);
    busy[region] = true;
    uint64_t buffer = freeBuffers[q].back();
    freeBuffers[q].pop_back();
    bool write = version[region] == 0 || random() % 2 == 0;
    uint64_t lba = uint64_t{region} * REGION_BLOCKS;
    if (write) {
      ++version[region];
      rig.put(buffer, sectors(lba, REGION_BLOCKS, version[region]));
    } else {
      std::memset(nvme.host(buffer, REGION_BLOCKS * 512), 0xee, REGION_BLOCKS * 512);
    }
    nvme::Command command = NvmeHarness::readWrite(write ? nvme::WRITE : nvme::READ, lba, REGION_BLOCKS);
    if (submitted % 3 == 0) {
      std::vector<SglEntry> pages;
      for (uint32_t p = 0; p < REGION_BLOCKS * 512 / 4096; ++p) pages.push_back({buffer + 4096ull * p, 4096});
      nvme.setSgls(command, pages);
    } else {
      nvme.setPrps(command, buffer, REGION_BLOCKS * 512);
    }
    uint16_t cid = nvme.submit(q, command);
    inFlight[{q, cid}] = {region, version[region], write, buffer};
    ++submitted;
  };

  std::atomic<bool> stop{false};
  std::atomic<int> kills{0};
  std::thread killer([&] {
    std::mt19937 timing(7);
    pid_t last = -1;
    while (kills < KILLS && !stop) {
      pid_t pid = nvme.process().pid();
      if (pid <= 0 || pid == last) {
        std::this_thread::sleep_for(1ms);
        continue;
      }
      // Old enough not to count as a crash loop, then a random moment.
      std::this_thread::sleep_for(DeviceSupervisor::YOUNG + std::chrono::milliseconds(20 + timing() % 150));
      ::kill(pid, SIGKILL);
      last = pid;
      ++kills;
    }
  });

  for (uint16_t q = 1; q <= QUEUES; ++q) {
    for (uint32_t i = 0; i < DEPTH; ++i) issue(q);
    nvme.ring(q);
  }
  auto lastProgress = std::chrono::steady_clock::now();
  while (!inFlight.empty()) {
    bool more = kills < KILLS;
    auto done = nvme.collect(100ms);
    if (done.empty()) {
      if (std::chrono::steady_clock::now() - lastProgress > 20s) break;
      continue;
    }
    lastProgress = std::chrono::steady_clock::now();
    std::set<uint16_t> refill;
    for (const auto& [sqid, entry] : done) {
      auto found = inFlight.find({sqid, entry.cid});
      if (found == inFlight.end()) continue;  // The harness recorded it as a problem.
      Command command = found->second;
      inFlight.erase(found);
      ++completed;
      if (entry.status >> 1 != 0) {
        ++failed;
        ADD_FAILURE() << "SQ " << sqid << " CID " << entry.cid << " status 0x" << std::hex
                      << (entry.status >> 1);
      } else if (!command.write &&
                 !rig.holds(command.buffer, sectors(uint64_t{command.region} * REGION_BLOCKS, REGION_BLOCKS,
                                                    command.version))) {
        ++badReads;
        ADD_FAILURE() << "read of region " << command.region << " does not hold version " << command.version;
      }
      busy[command.region] = false;
      freeBuffers[sqid].push_back(command.buffer);
      if (more) {
        issue(sqid);
        refill.insert(sqid);
      }
    }
    for (uint16_t q : refill) nvme.ring(q);
  }
  stop = true;
  killer.join();
  EXPECT_TRUE(inFlight.empty()) << inFlight.size() << " commands never completed";
  EXPECT_EQ(kills.load(), KILLS);
  EXPECT_EQ(completed, submitted);
  EXPECT_EQ(failed, 0u);
  EXPECT_EQ(badReads, 0u);
  EXPECT_GE(submitted, 200u) << "the work kept going across the kills";
  // Nothing more comes late: no second completion of anything.
  std::this_thread::sleep_for(300ms);
  EXPECT_TRUE(nvme.collect(100ms).empty());
  EXPECT_TRUE(nvme.problems().empty()) << ::testing::PrintToString(nvme.problems());
  EXPECT_EQ(nvme.process().restarts(), static_cast<uint32_t>(KILLS));

  // Every region holds its last version, through the device and in the file.
  uint64_t back = nvme.allocate(REGION_BLOCKS * 512);
  for (uint32_t region = 0; region < REGIONS; ++region) {
    if (version[region] == 0) continue;
    uint64_t lba = uint64_t{region} * REGION_BLOCKS;
    std::vector<uint8_t> expected = sectors(lba, REGION_BLOCKS, version[region]);
    ASSERT_STATUS(nvme.io(1, nvme::READ, lba, REGION_BLOCKS, back), nvme::SUCCESS);
    EXPECT_TRUE(rig.holds(back, expected)) << "region " << region;
    EXPECT_EQ(rig.onDisk(lba * 512, REGION_BLOCKS * 512), expected) << "region " << region;
  }
  std::cerr << "[ info ] " << submitted << " commands across " << KILLS << " kills\n";
}

// Linux keeps an Asynchronous Event Request outstanding for good and sends
// its other admin commands around it: after 32 more in a 32-entry admin
// queue the controller's head is back at the request's entry. A successor
// must not take that for a command whose head never moved (and replay the
// whole queue).
TEST(NvmeRestart, ParkedAsyncEventRequestDoesNotReplayTheAdminQueue) {
  NvmeRig rig;
  NvmeHarness& nvme = rig.nvme;
  ASSERT_TRUE(nvme.enable());
  SupervisedServer supervised(nvme.process());
  nvme.submit(0, NvmeHarness::command(nvme::ASYNC_EVENT_REQUEST));
  nvme.ring(0);
  for (uint16_t i = 1; i < NvmeHarness::ADMIN_ENTRIES; ++i) {
    ASSERT_STATUS(nvme.getFeatures(nvme::ARBITRATION), nvme::SUCCESS) << i;
  }
  std::this_thread::sleep_for(DeviceSupervisor::YOUNG);
  ASSERT_EQ(::kill(nvme.process().pid(), SIGKILL), 0);
  ASSERT_STATUS(nvme.getFeatures(nvme::ARBITRATION), nvme::SUCCESS) << "served by the successor";
  EXPECT_TRUE(nvme.collect(200ms).empty()) << "something more completed";
  EXPECT_EQ(nvme.outstanding(0), 1u) << "the request still waits for an event";
  EXPECT_TRUE(nvme.problems().empty()) << ::testing::PrintToString(nvme.problems());
  EXPECT_EQ(nvme.process().restarts(), 1u);
}

// A server killed while publishing a completion that wraps the queue, after
// the tail moved to 0 and before the phase flipped (post(): the tail, then
// the phase): the successor finishes the completion and must leave the
// phase flipped, or every later completion is invisible to the driver.
// Stages that instant in the state segment of a stopped server.
TEST(NvmeRestart, CompletionCutShortAtTheWrapFlipsThePhase) {
  NvmeRig rig;
  NvmeHarness& nvme = rig.nvme;
  ASSERT_TRUE(nvme.enable());
  ASSERT_STATUS(nvme.setFeatures(nvme::NUMBER_OF_QUEUES, 0), nvme::SUCCESS);
  ASSERT_STATUS(nvme.createCompletionQueue(1, 4, 1), nvme::SUCCESS);
  ASSERT_STATUS(nvme.createSubmissionQueue(1, 8, 1), nvme::SUCCESS);
  for (int i = 0; i < 3; ++i) ASSERT_STATUS(nvme.run(1, NvmeHarness::command(nvme::FLUSH, 1)), nvme::SUCCESS);
  SupervisedServer supervised(nvme.process());
  std::this_thread::sleep_for(DeviceSupervisor::YOUNG);
  pid_t pid = nvme.process().pid();
  ASSERT_EQ(::kill(pid, SIGSTOP), 0);

  nvme::Command flush = NvmeHarness::command(nvme::FLUSH, 1);
  flush.cid = nvme.submit(1, flush);  // Taken by the instance that dies.
  auto& state = nvme.resources().stateBody<nvme::NvmeState>();
  ASSERT_EQ(state.cq[1].tail, 3u);
  ASSERT_EQ(state.cq[1].phase, 1u);
  ASSERT_EQ(state.slots[0].state, nvme::Slot::FREE);
  state.sq[1].tail = state.sq[1].head = 4;
  nvme::Slot& slot = state.slots[0];
  slot.command = flush;
  slot.sqid = 1;
  slot.sqHead = 4;
  slot.status = nvme::SUCCESS;
  slot.result = 0;
  slot.sequence = ++state.nextSequence;
  slot.state = nvme::Slot::DONE;
  nvme::Completion entry{0, 0, 4, 1, flush.cid, 1};
  state.completing.entry = entry;
  state.completing.slot = 0;
  state.completing.cqid = 1;
  state.completing.cqTail = 3;
  state.completing.active = 1;
  std::memcpy(nvme.host(nvme.queueAddress(1, false) + 3 * 16, 16), &entry, 16);
  state.cq[1].tail = 0;  // The phase is still 1.
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  ASSERT_EQ(::kill(pid, SIGCONT), 0);

  ASSERT_STATUS(nvme.wait(1, flush.cid), nvme::SUCCESS) << "the completion that was cut short";
  for (int i = 0; i < 6; ++i) {
    ASSERT_STATUS(nvme.run(1, NvmeHarness::command(nvme::FLUSH, 1), 3s), nvme::SUCCESS)
        << "completion " << i << " after the wrap";
  }
  EXPECT_TRUE(nvme.problems().empty()) << ::testing::PrintToString(nvme.problems());
  EXPECT_EQ(nvme.process().restarts(), 1u);
}

// ---- 5. Controller reset ----

TEST(NvmeReset, ResetUnderLoadLeavesNothingBehind) {
  constexpr uint16_t QUEUES = 4;
  constexpr uint32_t DEPTH = 8;
  constexpr uint32_t BLOCKS_EACH = 4096;  // 2 MiB: the 32 commands cover the disk.
  constexpr uint64_t BYTES = QUEUES * DEPTH * BLOCKS_EACH * 512ull;
  // O_DIRECT and large commands: work is still in the kernel when the reset comes.
  NvmeRig rig(",nocache", BYTES, BYTES + (32 << 20));
  NvmeHarness& nvme = rig.nvme;
  ASSERT_TRUE(nvme.enable());
  pid_t pid = nvme.process().pid();
  uint64_t buffers = nvme.allocate(BYTES);
  uint64_t fresh = nvme.allocate(64 * KIB);
  for (int round = 0; round < 6; ++round) {
    SCOPED_TRACE(round);
    ASSERT_TRUE(nvme.createIoQueues(QUEUES, 32)) << "queues can be created again after the reset";
    for (uint16_t q = 1; q <= QUEUES; ++q) {
      for (uint32_t i = 0; i < DEPTH; ++i) {
        uint64_t buffer = buffers + ((q - 1u) * DEPTH + i) * BLOCKS_EACH * 512ull;
        uint64_t lba = ((q - 1u) * DEPTH + i) * uint64_t{BLOCKS_EACH};
        bool write = (i + round) % 2 == 0;
        if (write) {
          rig.put(buffer, sectors(lba, BLOCKS_EACH, 100 + round));
        } else {
          std::memset(nvme.host(buffer, BLOCKS_EACH * 512), 0x5a, BLOCKS_EACH * 512);
        }
        nvme::Command command = NvmeHarness::readWrite(write ? nvme::WRITE : nvme::READ, lba, BLOCKS_EACH);
        nvme.setPrps(command, buffer, BLOCKS_EACH * 512);
        nvme.submit(q, command);
      }
      nvme.ring(q);
    }
    if (round % 2 == 1) nvme.collect(std::chrono::milliseconds(round));  // Some done, some not.
    ASSERT_TRUE(nvme.disable());
    // From RDY = 0 on the controller touches nothing of the driver's: no
    // buffer and no completion queue changes any more.
    const uint8_t* data = nvme.host(buffers, BYTES);
    std::vector<uint8_t> dataAtReset(data, data + BYTES);
    std::vector<std::vector<uint8_t>> queues;
    for (uint16_t q = 0; q <= QUEUES; ++q) {
      const uint8_t* cq = nvme.host(nvme.queueAddress(q, false), 32 * 16);
      queues.emplace_back(cq, cq + 32 * 16);
    }
    std::this_thread::sleep_for(100ms);
    EXPECT_TRUE(rig.holds(buffers, dataAtReset)) << "guest memory written after the reset";
    for (uint16_t q = 0; q <= QUEUES; ++q) {
      EXPECT_TRUE(rig.holds(nvme.queueAddress(q, false), queues[q]))
          << "CQ " << q << " written after the reset";
    }
    ASSERT_TRUE(nvme.enable());
    ASSERT_TRUE(nvme.createIoQueues(QUEUES, 32));
    for (uint16_t q = 1; q <= QUEUES; ++q) {
      uint64_t lba = 4096 + q * 128ull;
      rig.put(fresh, sectors(lba, 128, 200 + round));
      ASSERT_STATUS(nvme.io(q, nvme::WRITE, lba, 128, fresh), nvme::SUCCESS);
      std::memset(nvme.host(fresh, 64 * KIB), 0, 64 * KIB);
      ASSERT_STATUS(nvme.io(q, nvme::READ, lba, 128, fresh), nvme::SUCCESS);
      EXPECT_TRUE(rig.holds(fresh, sectors(lba, 128, 200 + round))) << "queue " << q;
    }
    EXPECT_TRUE(nvme.collect(50ms).empty()) << "no completion from before the reset";
    EXPECT_TRUE(rig.holds(buffers, dataAtReset)) << "guest memory written after the reset";
    ASSERT_TRUE(nvme.problems().empty()) << ::testing::PrintToString(nvme.problems());
    ASSERT_TRUE(nvme.disable());
    ASSERT_TRUE(nvme.enable());
  }
  EXPECT_EQ(nvme.process().pid(), pid) << "a reset is no crash";
}

TEST(NvmeReset, ShutdownCompletesAndTheControllerComesBack) {
  NvmeRig rig;
  NvmeHarness& nvme = rig.nvme;
  ASSERT_TRUE(nvme.enable());
  ASSERT_TRUE(nvme.createIoQueues(1, 16));
  uint64_t data = nvme.allocate(64 * KIB);
  rig.put(data, sectors(0, 128, 71));
  ASSERT_STATUS(nvme.io(1, nvme::WRITE, 0, 128, data), nvme::SUCCESS);
  nvme.write32(nvme::REG_CC, nvme.read32(nvme::REG_CC) | (1u << nvme::CC_SHN_SHIFT));  // Normal shutdown.
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while ((nvme.csts() & (3u << 2)) != nvme::CSTS_SHST_COMPLETE && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(1ms);
  EXPECT_EQ(nvme.csts() & (3u << 2), nvme::CSTS_SHST_COMPLETE);
  EXPECT_EQ(rig.onDisk(0, 64 * KIB), sectors(0, 128, 71));
  // What the next owner does: CC = 0, then a fresh start.
  ASSERT_TRUE(nvme.enable());
  EXPECT_EQ(nvme.csts() & (3u << 2), 0u) << "SHST cleared";
  ASSERT_TRUE(nvme.createIoQueues(1, 16));
  std::memset(nvme.host(data, 64 * KIB), 0, 64 * KIB);
  ASSERT_STATUS(nvme.io(1, nvme::READ, 0, 128, data), nvme::SUCCESS);
  EXPECT_TRUE(rig.holds(data, sectors(0, 128, 71)));
}

// ---- 6. Controller fatal status ----

TEST(NvmeFailure, CrashLoopSetsControllerFatalStatus) {
  NvmeRig rig;
  NvmeHarness& nvme = rig.nvme;
  ASSERT_TRUE(nvme.enable());
  const FailureNotice& notice = nvme.resources().stateHeader().failureNotice;
  ASSERT_EQ(notice.count, 1u);
  EXPECT_EQ(notice.ops[0].offset, offsetof(nvme::NvmeState, csts));
  EXPECT_EQ(notice.ops[0].value, nvme::CSTS_CFS);
  SupervisedServer supervised(nvme.process());
  ASSERT_TRUE(killUntilFailed(nvme.process()));
  EXPECT_TRUE(nvme.resources().stateBody<nvme::NvmeState>().csts & nvme::CSTS_CFS);
  EXPECT_EQ(nvme.csts(), nvme::CSTS_RDY | nvme::CSTS_CFS)
      << "CSTS reads 0x" << std::hex << nvme.csts() << " (all ones would say the device is gone, not fatal)";
}

TEST(NvmeFailure, MarkedFailedReadsControllerFatalStatus) {
  NvmeRig rig;
  NvmeHarness& nvme = rig.nvme;
  ASSERT_TRUE(nvme.enable());
  EXPECT_FALSE(nvme.csts() & nvme::CSTS_CFS);
  nvme.process().markFailed();
  EXPECT_TRUE(nvme.resources().stateBody<nvme::NvmeState>().csts & nvme::CSTS_CFS);
  EXPECT_EQ(nvme.csts(), nvme::CSTS_RDY | nvme::CSTS_CFS)
      << "CSTS reads 0x" << std::hex << nvme.csts() << " (all ones would say the device is gone, not fatal)";
}

TEST(NvmeFailure, UnusableAdminQueuesSetControllerFatalStatus) {
  NvmeRig rig;
  NvmeHarness& nvme = rig.nvme;
  uint32_t cc = (6u << nvme::CC_IOSQES_SHIFT) | (4u << nvme::CC_IOCQES_SHIFT);
  auto start = [&](uint32_t aqa, uint64_t asq, uint64_t acq) {
    nvme.write32(nvme::REG_CC, 0);
    nvme.write32(nvme::REG_AQA, aqa);
    nvme.write64(nvme::REG_ASQ, asq);
    nvme.write64(nvme::REG_ACQ, acq);
    nvme.write32(nvme::REG_CC, cc | nvme::CC_EN);
    return nvme.csts() & 3;
  };
  uint64_t queue = nvme.allocate(4096);
  EXPECT_EQ(start(0, queue, queue), nvme::CSTS_CFS) << "one-entry queues";
  EXPECT_EQ(start(0x001f001f, nvme.memory().size(), queue), nvme::CSTS_CFS) << "ASQ outside RAM";
  EXPECT_EQ(start(0x0fff0fff, queue, nvme.memory().size() - 4096), nvme::CSTS_CFS) << "ACQ runs out of RAM";
  nvme.write32(nvme::REG_CC, 0);
  EXPECT_EQ(nvme.csts() & 3, 0u) << "a reset clears CFS";
  ASSERT_TRUE(nvme.enable()) << "and the controller starts";
  uint64_t id = nvme.allocate(4096);
  EXPECT_STATUS(nvme.identify(1, 0, id), nvme::SUCCESS);
}

}  // namespace
}  // namespace cellvisor::testing
