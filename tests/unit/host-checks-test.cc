// What a configuration asks of the host: memory against RAM and swap (and
// what is available now), pinned vCPUs against the online CPUs.
#include "core/machine/host-checks.h"

#include <gtest/gtest.h>
#include <sys/mman.h>

#include <fstream>
#include <sstream>

#include "base/mapping.h"

namespace cellvisor {
namespace {

constexpr uint64_t GiB = 1ull << 30;

// A 24 GiB host without swap, 20 GiB of it available, CPUs 0-3 online.
HostFacts smallHost() {
  HostFacts host;
  host.memory = parseMeminfo(
      "MemTotal:       25165824 kB\nMemFree: 1 kB\nMemAvailable:   20971520 kB\n"
      "SwapTotal:             0 kB\n");
  host.onlineCpus = {0, 1, 2, 3};
  return host;
}

MachineConfig configOf(ConfigStore& store) {
  return store.build();
}

TEST(HostMemory, ParsesMeminfo) {
  HostFacts host = smallHost();
  EXPECT_EQ(host.memory.total, 24 * GiB);
  EXPECT_EQ(host.memory.available, 20 * GiB);
  EXPECT_EQ(host.memory.swap, 0u);
  EXPECT_THROW(parseMeminfo("MemTotal: 1 kB\n"), std::runtime_error);
  EXPECT_EQ(formatBytes(1ull << 40), "1 TiB");
  EXPECT_EQ(formatBytes(GiB + GiB / 2), "1.5 GiB");
  EXPECT_EQ(formatBytes(512), "512 bytes");
}

TEST(HostChecks, MemoryAboveRamAndSwapIsRefusedUnlessOvercommitted) {
  ConfigStore store;
  store.set("memory.size", "1T", "-m");
  try {
    checkHostFits(configOf(store), store, smallHost());
    ADD_FAILURE() << "-m 1T was accepted on a 24 GiB host";
  } catch (const ConfigError& error) {
    EXPECT_STREQ(
        error.what(),
        "-m: memory.size: 1 TiB of guest memory is more than this host's RAM and swap together (24 GiB); "
        "set memory.overcommit=true (-o memory.overcommit=true) to run it anyway");
  }
  store.set("memory.overcommit", "true", "-o memory.overcommit=true");
  auto warnings = checkHostFits(configOf(store), store, smallHost());
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("more than this host has available now (20 GiB)"), std::string::npos)
      << warnings[0];
}

TEST(HostChecks, MemoryAboveAvailableOnlyWarns) {
  ConfigStore store;
  store.set("memory.size", "22G", "-m");
  auto warnings = checkHostFits(configOf(store), store, smallHost());
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_EQ(
      warnings[0].rfind("-m: memory.size: 22 GiB of guest memory is more than this host has available", 0),
      0u)
      << warnings[0];
  store.set("memory.size", "16G", "-m");
  EXPECT_TRUE(checkHostFits(configOf(store), store, smallHost()).empty());
}

TEST(HostChecks, PinnedHostCpusMustBeOnline) {
  ConfigStore store;
  store.set("cpus", "2", "-c");
  store.set("vcpu.1.cpuset", "3", "-p 1:3");
  EXPECT_TRUE(checkHostFits(configOf(store), store, smallHost()).empty());
  store.set("vcpu.1.cpuset", "3,7", "-p 1:7");
  try {
    checkHostFits(configOf(store), store, smallHost());
    ADD_FAILURE() << "host CPU 7 was accepted";
  } catch (const ConfigError& error) {
    EXPECT_STREQ(error.what(),
                 "-p 1:7: vcpu.1.cpuset: host CPU 7 does not exist or is offline (online: 0,1,2,3)");
  }
}

// The smaps VmFlags of the mapping that starts at `data`.
std::string vmFlagsOf(const void* data) {
  std::ifstream smaps("/proc/self/smaps");
  char start[32];
  std::snprintf(start, sizeof(start), "%lx-", reinterpret_cast<unsigned long>(data));
  bool inside = false;
  for (std::string line; std::getline(smaps, line);) {
    if (line.rfind(start, 0) == 0) inside = true;
    if (inside && line.rfind("VmFlags:", 0) == 0) return line;
  }
  return "";
}

TEST(HostMemory, CoreDumpExclusionAndWiring) {
  Mapping memory = Mapping::anonymous(4 << 20);
  EXPECT_EQ(vmFlagsOf(memory.data()).find(" dd"), std::string::npos);
  excludeFromCoreDumps(memory.data(), memory.size());
  EXPECT_NE(vmFlagsOf(memory.data()).find(" dd"), std::string::npos) << vmFlagsOf(memory.data());
  wireMemory(memory.data(), memory.size());  // 4 MiB: within any default RLIMIT_MEMLOCK (8 MiB).
  EXPECT_NE(vmFlagsOf(memory.data()).find(" lo"), std::string::npos) << vmFlagsOf(memory.data());
}

}  // namespace
}  // namespace cellvisor
