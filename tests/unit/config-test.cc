// bhyve-style configuration: keys, values, origins in error messages.
#include <gtest/gtest.h>

#include <fstream>

#include "core/machine/machine-config.h"

namespace cellvisor {
namespace {

std::string errorOf(const ConfigStore& store) {
  try {
    store.build();
  } catch (const ConfigError& error) {
    return error.what();
  }
  return "";
}

TEST(Config, BuildsFromKeys) {
  ConfigStore store;
  store.set("name", "web-1", "test");
  store.set("cpus", "4", "test");
  store.set("memory.size", "2G", "test");
  store.set("lpc.com1.path", "stdio", "test");
  store.set("rtc.use_localtime", "false", "test");
  store.set("pci.0.31.0.device", "lpc", "test");
  store.set("cpuid.mask", "cx16,xsave", "test");
  MachineConfig config = store.build();
  EXPECT_EQ(config.name, "web-1");
  EXPECT_EQ(config.cpus, 4u);
  EXPECT_EQ(config.memoryBytes, 2ull << 30);
  EXPECT_EQ(config.serial.at("com1"), "stdio");
  EXPECT_TRUE(config.utcClock);
  ASSERT_EQ(config.pciSlots.size(), 1u);
  EXPECT_EQ(config.pciSlots[0].slot, 31);
  EXPECT_EQ(config.pciSlots[0].emulation, "lpc");
  EXPECT_EQ(config.cpuidMask, (std::vector<std::string>{"cx16", "xsave"}));
}

TEST(Config, ErrorsNameOriginAndKey) {
  ConfigStore unknown;
  unknown.set("memroy.size", "1G", "vm.conf:3");
  EXPECT_EQ(errorOf(unknown), "vm.conf:3: memroy.size: unknown configuration key");

  ConfigStore badCpus;
  badCpus.set("cpus", "lots", "-c");
  EXPECT_NE(errorOf(badCpus).find("-c: cpus:"), std::string::npos);

  ConfigStore badMemory;
  badMemory.set("memory.size", "12Q", "-m");
  EXPECT_NE(errorOf(badMemory).find("suffix"), std::string::npos);

  ConfigStore oddMemory;
  oddMemory.set("memory.size", "3M", "-m");
  EXPECT_NE(errorOf(oddMemory).find("multiple of 2 MiB"), std::string::npos);

  ConfigStore badSlot;
  badSlot.set("pci.0.40.0.device", "lpc", "-s");
  EXPECT_NE(errorOf(badSlot).find("0-31"), std::string::npos);

  ConfigStore badMask;
  badMask.set("cpuid.mask", "cx16,warp", "-o");
  EXPECT_NE(errorOf(badMask).find("unknown CPUID feature 'warp'"), std::string::npos);
}

TEST(Config, HostileNamesAreRefused) {
  for (const char* name : {"../etc", "a/b", "", ".hidden", "x y", "name\n", "-rf"}) {
    EXPECT_FALSE(isValidVmName(name)) << name;
    ConfigStore store;
    store.set("name", name, "test");
    EXPECT_NE(errorOf(store).find("invalid VM name"), std::string::npos) << name;
  }
  EXPECT_TRUE(isValidVmName("debian-12.vm_1"));
  EXPECT_FALSE(isValidVmName(std::string(65, 'a')));
}

TEST(Config, MemorySizes) {
  EXPECT_EQ(parseMemorySize("512"), 512ull << 20) << "bhyve: bare numbers are MiB";
  EXPECT_EQ(parseMemorySize("1g"), 1ull << 30);
  EXPECT_EQ(parseMemorySize("64K"), 64ull << 10);
  EXPECT_THROW(parseMemorySize("0"), ConfigError);
  EXPECT_THROW(parseMemorySize("-1G"), ConfigError);
  EXPECT_THROW(parseMemorySize("99999999999T"), ConfigError);
}

TEST(Config, FileLinesAndComments) {
  std::string path = ::testing::TempDir() + "/cellvisor-config-test.conf";
  {
    std::ofstream file(path);
    file << "# a comment\n\ncpus = 2   # trailing\nmemory.size=1G\nthis is not a pair\n";
  }
  ConfigStore store;
  try {
    store.loadFile(path);
    FAIL() << "expected an error";
  } catch (const ConfigError& error) {
    EXPECT_NE(std::string(error.what()).find(path + ":5: expected key=value"), std::string::npos)
        << error.what();
  }
  EXPECT_THROW(store.loadFile("/nonexistent/vm.conf"), ConfigError);
}

}  // namespace
}  // namespace cellvisor
