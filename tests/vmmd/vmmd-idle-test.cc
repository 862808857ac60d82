// A daemon that sits on every host must cost nothing while nothing happens:
// vmmd's own CPU time (all its threads, from the scheduler's nanosecond
// accounting) across idle seconds, with no VM and with one idle VM.
#include <dirent.h>

#include <chrono>
#include <fstream>
#include <string>
#include <thread>

#include "tests/vmmd/vmmd-fixture.h"

namespace cellvisor::testing {
namespace {

// CPU time a process has run, in nanoseconds: the first field of each
// thread's schedstat (utime+stime from stat would do, at 10 ms ticks).
uint64_t cpuNanoseconds(pid_t pid) {
  uint64_t total = 0;
  std::string tasks = "/proc/" + std::to_string(pid) + "/task";
  DIR* directory = ::opendir(tasks.c_str());
  if (directory == nullptr) return 0;
  while (dirent* entry = ::readdir(directory)) {
    if (entry->d_name[0] == '.') continue;
    std::ifstream schedstat(tasks + "/" + entry->d_name + "/schedstat");
    uint64_t ran = 0;
    if (schedstat >> ran) total += ran;
  }
  ::closedir(directory);
  return total;
}

// The share of one core `pid` used over `seconds` of wall time.
double idleShare(pid_t pid, std::chrono::seconds seconds) {
  uint64_t before = cpuNanoseconds(pid);
  auto start = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(seconds);
  double wall = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start).count();
  return static_cast<double>(cpuNanoseconds(pid) - before) / wall;
}

constexpr double IDLE_LIMIT = 0.005;  // Half a percent of one core.

TEST_F(Vmctl, IdleDaemonCostsNothing) {
  ASSERT_GT(cpuNanoseconds(daemon->pid()), 0u) << "no schedstat for vmmd";
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // Past its start.
  double share = idleShare(daemon->pid(), std::chrono::seconds(3));
  EXPECT_LE(share, IDLE_LIMIT) << "idle vmmd used " << share * 100 << "% of a core";
}

TEST_F(Vmctl, DaemonWithAnIdleVmCostsNothing) {
  writeTemplate("idle", "test=idle");
  ASSERT_EQ(vmctl({"create", "-t", "idle", "quiet"}).first, 0);
  ASSERT_EQ(vmctl({"start", "quiet"}).first, 0);
  // Until the guest idles: its server is up and the core has reached the
  // `sti; hlt` loop.
  int console = connectConsole("quiet");
  ASSERT_GE(console, 0);
  std::string seen = readUntil(console, "idle: waiting with interrupts on");
  ::close(console);
  ASSERT_NE(seen.find("idle: waiting with interrupts on"), std::string::npos) << seen << log("quiet");
  double share = idleShare(daemon->pid(), std::chrono::seconds(3));
  EXPECT_LE(share, IDLE_LIMIT) << "vmmd with an idle VM used " << share * 100 << "% of a core";
  EXPECT_EQ(vmctl({"poweroff", "quiet"}).first, 0);
  EXPECT_EQ(vmctl({"destroy", "-f", "quiet"}).first, 0);
}

}  // namespace
}  // namespace cellvisor::testing
