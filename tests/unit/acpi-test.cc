// ACPI tables: checksums, the tables a guest looks for, their key fields.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "base/guest-memory.h"
#include "core/acpi/acpi-tables.h"
#include "core/boot/boot-layout.h"

namespace cellvisor {
namespace {

uint64_t read64(const uint8_t* at) {
  uint64_t value;
  std::memcpy(&value, at, 8);
  return value;
}
uint32_t read32(const uint8_t* at) {
  uint32_t value;
  std::memcpy(&value, at, 4);
  return value;
}

TEST(AcpiTables, RsdpXsdtAndTablesChecksum) {
  GuestMemory memory(64 << 20);
  AcpiLayout acpi{4, layout::ECAM_BASE, 255, 0x600, 0x604, 0x608, 9, 0xcf9, 6};
  uint64_t rsdpAddress = writeAcpiTables(memory, acpi);
  const uint8_t* rsdp = memory.translate(rsdpAddress, 36);
  ASSERT_EQ(std::memcmp(rsdp, "RSD PTR ", 8), 0);
  EXPECT_EQ(acpiChecksum(rsdp, 20), 0);
  EXPECT_EQ(acpiChecksum(rsdp, 36), 0);

  const uint8_t* xsdt = memory.translate(read64(rsdp + 24), 36);
  ASSERT_EQ(std::memcmp(xsdt, "XSDT", 4), 0);
  uint32_t xsdtLength = read32(xsdt + 4);
  EXPECT_EQ(acpiChecksum(xsdt, xsdtLength), 0);

  std::map<std::string, const uint8_t*> tables;
  for (uint32_t at = 36; at < xsdtLength; at += 8) {
    const uint8_t* table = memory.translate(read64(xsdt + at), 36);
    ASSERT_NE(table, nullptr);
    uint32_t length = read32(table + 4);
    EXPECT_EQ(acpiChecksum(table, length), 0) << std::string(reinterpret_cast<const char*>(table), 4);
    tables[std::string(reinterpret_cast<const char*>(table), 4)] = table;
  }
  ASSERT_TRUE(tables.count("FACP") && tables.count("APIC") && tables.count("MCFG"));

  const uint8_t* fadt = tables["FACP"];
  EXPECT_EQ(read32(fadt + 4), 276u);
  EXPECT_EQ(read32(fadt + 64), 0x604u) << "PM1a_CNT";
  EXPECT_EQ(fadt[46], 9) << "SCI";
  EXPECT_EQ(read32(fadt + 112) & (1u << 4), 0u) << "power button is a fixed feature";
  EXPECT_EQ(read64(fadt + 120), 0xcf9u) << "reset register";
  const uint8_t* dsdt = memory.translate(read64(fadt + 140), 36);
  EXPECT_EQ(acpiChecksum(dsdt, read32(dsdt + 4)), 0);
  EXPECT_NE(std::search(dsdt, dsdt + read32(dsdt + 4), "_S5_", "_S5_" + 4), dsdt + read32(dsdt + 4));

  const uint8_t* madt = tables["APIC"];
  int cpus = 0;
  for (uint32_t at = 44; at < read32(madt + 4); at += madt[at + 1]) {
    if (madt[at] == 0) {
      EXPECT_EQ(madt[at + 3], cpus++) << "APIC ids 0..n-1";
    }
  }
  EXPECT_EQ(cpus, 4);
  EXPECT_EQ(read64(tables["MCFG"] + 44), layout::ECAM_BASE);
  EXPECT_NE(fadt[109] & 2, 0) << "IA-PC boot flags: an 8042 is there";
}

// Our hand-made AML read by ACPICA's disassembler (Debian's acpica-tools),
// the interpreter Linux runs: the i8042's two devices with their resources.
TEST(AcpiTables, DsdtDisassemblesWithAcpica) {
  if (std::system("command -v iasl >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "iasl (acpica-tools) not installed";
  GuestMemory memory(64 << 20);
  AcpiLayout acpi{1, layout::ECAM_BASE, 255, 0x600, 0x604, 0x608, 9, 0xcf9, 6};
  const uint8_t* rsdp = memory.translate(writeAcpiTables(memory, acpi), 36);
  const uint8_t* xsdt = memory.translate(read64(rsdp + 24), 44);
  const uint8_t* fadt = memory.translate(read64(xsdt + 36), 148);
  const uint8_t* dsdt = memory.translate(read64(fadt + 140), 36);
  char directory[] = "/tmp/acpi-test-XXXXXX";
  ASSERT_NE(::mkdtemp(directory), nullptr);
  std::string aml = std::string(directory) + "/dsdt.aml";
  {
    std::ofstream out(aml, std::ios::binary);
    out.write(reinterpret_cast<const char*>(dsdt), read32(dsdt + 4));
  }
  std::string run = "iasl -d " + aml + " >" + directory + "/log 2>&1";
  ASSERT_EQ(std::system(run.c_str()), 0) << std::ifstream(std::string(directory) + "/log").rdbuf();
  std::stringstream source;
  source << std::ifstream(std::string(directory) + "/dsdt.dsl").rdbuf();
  std::string text = source.str();
  std::filesystem::remove_all(directory);
  EXPECT_NE(text.find("Device (PS2K)"), std::string::npos) << text;
  EXPECT_NE(text.find("EisaId (\"PNP0303\")"), std::string::npos) << text;
  EXPECT_NE(text.find("IO (Decode16,\n                    0x0064, "), std::string::npos) << text;
  EXPECT_NE(text.find("IRQNoFlags ()\n                    {1}"), std::string::npos) << text;
  EXPECT_NE(text.find("EisaId (\"PNP0F13\")"), std::string::npos) << text;
  EXPECT_NE(text.find("{12}"), std::string::npos) << text;
  EXPECT_NE(text.find("Name (_S5, Package (0x04)"), std::string::npos) << text;
}

}  // namespace
}  // namespace cellvisor
