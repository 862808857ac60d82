// fw_cfg as firmware drives it: the port interface, the file directory, and
// DMA, with hostile descriptors that must copy nothing outside guest RAM.
#include "core/firmware/fw-cfg.h"

#include <endian.h>
#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <string>

#include "base/guest-memory.h"
#include "core/acpi/acpi-tables.h"
#include "core/firmware/acpi-table-loader.h"

namespace cellvisor {
namespace {

constexpr uint64_t DESCRIPTOR = 0x1000;
constexpr uint64_t BUFFER = 0x2000;

void select(FwCfg& fwCfg, uint16_t key) {
  uint8_t bytes[2];
  storeLittleEndian(bytes, key);
  fwCfg.write(0, bytes);
}

std::string readData(FwCfg& fwCfg, size_t length) {
  std::string out;
  for (size_t i = 0; i < length; ++i) {
    uint8_t byte;
    fwCfg.read(1, {&byte, 1});
    out += static_cast<char>(byte);
  }
  return out;
}

// Writes a descriptor at DESCRIPTOR and triggers it the way SeaBIOS does:
// the high half at 0x514, the low half at 0x518, both big-endian.
uint32_t dma(FwCfg& fwCfg, GuestMemory& memory, uint32_t control, uint32_t length, uint64_t address,
             uint64_t descriptor = DESCRIPTOR) {
  uint32_t fields[4] = {htobe32(control), htobe32(length), htobe32(static_cast<uint32_t>(address >> 32)),
                        htobe32(static_cast<uint32_t>(address))};
  if (memory.contains(descriptor, 16)) memory.write(descriptor, {reinterpret_cast<uint8_t*>(fields), 16});
  uint32_t high = htobe32(static_cast<uint32_t>(descriptor >> 32));
  uint32_t low = htobe32(static_cast<uint32_t>(descriptor));
  fwCfg.write(4, {reinterpret_cast<uint8_t*>(&high), 4});
  fwCfg.write(8, {reinterpret_cast<uint8_t*>(&low), 4});
  if (!memory.contains(descriptor, 4)) return ~0u;
  uint32_t done;
  memory.read(descriptor, {reinterpret_cast<uint8_t*>(&done), 4});
  return be32toh(done);
}

TEST(FwCfg, SignatureIdAndDmaSignature) {
  GuestMemory memory(2 << 20);
  FwCfg fwCfg(memory);
  select(fwCfg, FwCfg::SIGNATURE);
  EXPECT_EQ(readData(fwCfg, 4), "QEMU");
  select(fwCfg, FwCfg::ID);
  EXPECT_EQ(readData(fwCfg, 4), std::string("\x03\0\0\0", 4));  // Traditional and DMA.
  uint8_t signature[8];
  fwCfg.read(4, {signature, 4});
  fwCfg.read(8, {signature + 4, 4});
  EXPECT_EQ(std::string(reinterpret_cast<char*>(signature), 8), "QEMU CFG");
  select(fwCfg, 0x1234);  // Nothing there: reads as zeros.
  EXPECT_EQ(readData(fwCfg, 2), std::string(2, '\0'));
}

TEST(FwCfg, DirectoryListsFilesSortedWithTheirKeys) {
  GuestMemory memory(2 << 20);
  FwCfg fwCfg(memory);
  fwCfg.addFile("etc/zeta", {1, 2, 3});
  fwCfg.addFile("bootorder", {'x'});
  select(fwCfg, FwCfg::FILE_DIR);
  std::string directory = readData(fwCfg, 4 + 2 * 64);
  uint32_t count;
  std::memcpy(&count, directory.data(), 4);
  ASSERT_EQ(be32toh(count), 2u);
  EXPECT_STREQ(directory.c_str() + 4 + 8, "bootorder");
  EXPECT_STREQ(directory.c_str() + 4 + 64 + 8, "etc/zeta");
  uint16_t zetaKey;
  std::memcpy(&zetaKey, directory.data() + 4 + 64 + 4, 2);
  select(fwCfg, be16toh(zetaKey));
  EXPECT_EQ(readData(fwCfg, 4), std::string("\x01\x02\x03\0", 4));
  EXPECT_THROW(fwCfg.addFile("bootorder", {}), std::invalid_argument);
  EXPECT_THROW(fwCfg.addFile(std::string(56, 'a'), {}), std::invalid_argument);
}

TEST(FwCfg, DmaSelectsReadsSkipsAndZeroFillsPastTheEnd) {
  GuestMemory memory(2 << 20);
  FwCfg fwCfg(memory);
  fwCfg.addFile("etc/test", {'a', 'b', 'c', 'd', 'e', 'f'});
  const auto* key = fwCfg.file("etc/test");
  ASSERT_NE(key, nullptr);
  constexpr uint32_t READ = 2, SKIP = 4, SELECT = 8;
  uint32_t selectFile = (uint32_t{FwCfg::FIRST_FILE} << 16) | SELECT;
  EXPECT_EQ(dma(fwCfg, memory, selectFile | SKIP, 2, 0), 0u);
  std::vector<uint8_t> marker(8, 0xee);
  memory.write(BUFFER, marker);
  EXPECT_EQ(dma(fwCfg, memory, READ, 6, BUFFER), 0u);  // Continues at offset 2.
  std::string got(reinterpret_cast<const char*>(memory.translate(BUFFER, 8)), 8);
  EXPECT_EQ(got, std::string("cdef\0\0\xee\xee", 8));
}

TEST(FwCfg, HostileDmaCopiesNothingOutsideRam) {
  GuestMemory memory(2 << 20);
  FwCfg fwCfg(memory);
  fwCfg.addFile("etc/test", std::vector<uint8_t>(64, 0x5a));
  constexpr uint32_t READ = 2, SELECT = 8, WRITE = 16, ERROR = 1;
  uint32_t selectFile = (uint32_t{FwCfg::FIRST_FILE} << 16) | SELECT;
  // A buffer that runs off the end of RAM, one far above it, one wrapping.
  EXPECT_EQ(dma(fwCfg, memory, selectFile | READ, 64, (2 << 20) - 16), ERROR);
  EXPECT_EQ(dma(fwCfg, memory, selectFile | READ, 64, 1ull << 40), ERROR);
  EXPECT_EQ(dma(fwCfg, memory, selectFile | READ, 0xffffffff, ~0ull - 8), ERROR);
  // Nothing here is writable.
  EXPECT_EQ(dma(fwCfg, memory, selectFile | WRITE, 4, BUFFER), ERROR);
  // A descriptor outside RAM: nothing to do and nowhere to report; no crash.
  EXPECT_EQ(dma(fwCfg, memory, selectFile | READ, 4, BUFFER, 1ull << 40), ~0u);
  // The RAM's last bytes are untouched by the refused read above.
  EXPECT_NE(memory.translate((2 << 20) - 16, 16)[0], 0x5a);
}

// Runs the table-loader the way firmware does (allocate each file somewhere,
// add the source file's address to each pointer, fix each checksum) and
// checks that the result is a consistent set of tables.
TEST(AcpiTableLoader, FirmwareRelocatesTablesThatThenChecksum) {
  GuestMemory memory(2 << 20);
  FwCfg fwCfg(memory);
  AcpiLayout acpi{2, 0xb0000000, 255, 0x600, 0x604, 0x608, 9, 0xcf9, 6};
  addAcpiTableLoader(fwCfg, buildAcpiTables(acpi, 0));
  const auto* script = fwCfg.file("etc/table-loader");
  ASSERT_NE(script, nullptr);
  ASSERT_EQ(script->size() % 128, 0u);
  std::map<std::string, std::vector<uint8_t>> files;
  std::map<std::string, uint64_t> placedAt;
  uint64_t nextHigh = 0x100000;
  auto name = [&](size_t at) { return std::string(reinterpret_cast<const char*>(script->data() + at)); };
  auto u32 = [&](size_t at) {
    uint32_t value;
    std::memcpy(&value, script->data() + at, 4);
    return value;
  };
  for (size_t at = 0; at < script->size(); at += 128) {
    switch (u32(at)) {
      case 1: {  // ALLOCATE file, alignment, zone.
        std::string file = name(at + 4);
        ASSERT_NE(fwCfg.file(file), nullptr) << file;
        files[file] = *fwCfg.file(file);
        uint8_t zone = script->at(at + 64);
        uint64_t place = zone == 2 ? 0xf0000 : nextHigh;  // FSEG or high memory.
        EXPECT_EQ(place % u32(at + 60), 0u);
        placedAt[file] = place;
        nextHigh += 0x10000;
        break;
      }
      case 2: {  // ADD_POINTER dest, source, offset, size.
        auto& dest = files.at(name(at + 4));
        uint32_t offset = u32(at + 116);
        uint8_t size = script->at(at + 120);
        ASSERT_LE(offset + size, dest.size());
        uint64_t value = 0;
        std::memcpy(&value, dest.data() + offset, size);
        value += placedAt.at(name(at + 60));
        std::memcpy(dest.data() + offset, &value, size);
        break;
      }
      case 3: {  // ADD_CHECKSUM file, field, start, length.
        auto& file = files.at(name(at + 4));
        uint32_t field = u32(at + 60), start = u32(at + 64), length = u32(at + 68);
        ASSERT_LE(start + length, file.size());
        file[field] = static_cast<uint8_t>(file[field] - acpiChecksum(file.data() + start, length));
        break;
      }
      default:
        FAIL() << "unknown loader command " << u32(at);
    }
  }
  for (const auto& [file, bytes] : files) memory.write(placedAt[file], bytes);
  // Walk from the RSDP as an OS would: every table checksums to zero.
  const uint8_t* rsdp = memory.translate(0xf0000, 36);
  ASSERT_EQ(std::memcmp(rsdp, "RSD PTR ", 8), 0);
  EXPECT_EQ(acpiChecksum(rsdp, 20), 0);
  EXPECT_EQ(acpiChecksum(rsdp, 36), 0);
  uint64_t xsdt;
  std::memcpy(&xsdt, rsdp + 24, 8);
  const uint8_t* xsdtBytes = memory.translate(xsdt, 36);
  ASSERT_NE(xsdtBytes, nullptr);
  uint32_t xsdtLength;
  std::memcpy(&xsdtLength, xsdtBytes + 4, 4);
  EXPECT_EQ(acpiChecksum(memory.translate(xsdt, xsdtLength), xsdtLength), 0);
  std::vector<std::string> signatures;
  for (uint32_t at = 36; at < xsdtLength; at += 8) {
    uint64_t table;
    std::memcpy(&table, xsdtBytes + at, 8);
    const uint8_t* bytes = memory.translate(table, 36);
    ASSERT_NE(bytes, nullptr);
    uint32_t length;
    std::memcpy(&length, bytes + 4, 4);
    EXPECT_EQ(acpiChecksum(memory.translate(table, length), length), 0);
    signatures.emplace_back(reinterpret_cast<const char*>(bytes), 4);
    if (signatures.back() == "FACP") {
      uint64_t dsdt;
      std::memcpy(&dsdt, bytes + 140, 8);
      EXPECT_EQ(std::memcmp(memory.translate(dsdt, 4), "DSDT", 4), 0);
      uint64_t facs;
      std::memcpy(&facs, bytes + 132, 8);
      EXPECT_EQ(std::memcmp(memory.translate(facs, 4), "FACS", 4), 0);
      EXPECT_EQ(facs % 64, 0u);
    }
  }
  EXPECT_EQ(signatures, (std::vector<std::string>{"FACP", "APIC", "MCFG"}));
}

}  // namespace
}  // namespace cellvisor
