// Each VM in a cgroup (v2) of its own under vmmd's: the core and every
// device server in a child each (a restarted server born in its own
// again), usage in `vmctl info`, the whole VM ended through cgroup.kill,
// the cgroup gone with the VM; vm-bhyve's limits applied where the host's
// cgroups have the controller, refused by name at start where not.
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>

#include <fstream>
#include <sstream>

#include "tests/vmmd/vmmd-fixture.h"

namespace cellvisor::testing {
namespace {

std::string readText(const fs::path& path) {
  std::ifstream file(path);
  return {std::istreambuf_iterator<char>(file), {}};
}

// A process's cgroup v2 path ("/cellvisor-test-1/vm-a/core").
std::string cgroupOf(pid_t pid) {
  std::ifstream file("/proc/" + std::to_string(pid) + "/cgroup");
  for (std::string line; std::getline(file, line);) {
    if (line.rfind("0::", 0) == 0) return line.substr(3);
  }
  return "";
}

uint64_t statField(const fs::path& file, const std::string& key) {
  std::istringstream stream(readText(file));
  for (std::string name, value; stream >> name >> value;) {
    if (name == key) return std::stoull(value);
  }
  return 0;
}

bool blockDeviceBacked(const fs::path& path) {
  struct stat info {};
  return ::stat(path.c_str(), &info) == 0 && major(info.st_dev) != 0;
}

class VmCgroups : public Vmctl {
 protected:
  void SetUp() override {
    Vmctl::SetUp();
    if (IsSkipped()) return;
    if (cgroupRoot.empty()) GTEST_SKIP() << "this host mounts no cgroup v2 hierarchy";
    if (::geteuid() != 0) GTEST_SKIP() << "vmmd makes cgroups here only as root";
  }
  // Whether the test's cgroup offers `controller` to the VMs' cgroups.
  bool offers(const std::string& controller) {
    std::istringstream words(readText(cgroupRoot / "cgroup.controllers"));
    for (std::string word; words >> word;) {
      if (word == controller) return true;
    }
    return false;
  }
  std::string hostLacks(const std::string& controller) {
    return "the host's cgroup v2 hierarchy has no " + controller + " controller (" +
           (cgroupRoot / "cgroup.controllers").string() + ": \"" +
           readText(cgroupRoot / "cgroup.controllers") + "\"; cgroup v1 holds it on this host)";
  }
  pid_t corePid(const std::string& vm) {
    std::string info = vmctl({"info", vm}).second;
    auto at = info.find("running (");
    return at == std::string::npos ? 0 : std::atoi(info.c_str() + at + 9);
  }
  pid_t waitForServer(const std::string& vm) {
    pid_t server = 0;
    for (int i = 0; i < 100 && server <= 0; ++i) {
      server = serverPid(vm);
      if (server <= 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return server;
  }
  std::string relative(const fs::path& cgroup) {
    return "/" + cgroup.lexically_relative(cgroupRoot.parent_path()).string();
  }
};

TEST_F(VmCgroups, EachVmHasOneWithAChildPerProcess) {
  ASSERT_EQ(vmctl({"create", "-t", "echo", "grouped"}).first, 0);
  ASSERT_EQ(vmctl({"start", "grouped"}).first, 0);
  pid_t server = waitForServer("grouped");
  ASSERT_GT(server, 0) << log("grouped");
  pid_t core = corePid("grouped");
  ASSERT_GT(core, 0);
  fs::path vm = cgroupRoot / "vm-grouped";
  EXPECT_EQ(cgroupOf(core), relative(vm / "core")) << log("grouped");
  EXPECT_EQ(cgroupOf(server), relative(vm / "disk0")) << log("grouped");

  // A server killed is restarted in its own cgroup again (born there).
  ::kill(server, SIGKILL);
  pid_t next = waitForNewServer("grouped", server);
  ASSERT_GT(next, 0) << log("grouped");
  EXPECT_EQ(cgroupOf(next), relative(vm / "disk0"));

  std::string info = vmctl({"info", "grouped"}).second;
  EXPECT_NE(info.find("cgroup: " + vm.string()), std::string::npos) << info;
  EXPECT_NE(info.find("cpu: "), std::string::npos) << info;
  EXPECT_NE(info.find("core "), std::string::npos) << info;
  std::string json = vmctl({"info", "grouped", "--json"}).second;
  auto at = json.find(R"("cpuMicroseconds":)");
  ASSERT_NE(at, std::string::npos) << json;
  EXPECT_GT(std::stoull(json.substr(at + 18)), 0u) << "the core has run: " << json;

  // poweroff: cgroup.kill ends core and server at once; nothing restarts,
  // and the cgroup goes with the VM.
  size_t logBefore = log("grouped").size();
  ASSERT_EQ(vmctl({"poweroff", "grouped"}).first, 0);
  waitStopped("grouped");
  EXPECT_NE(::kill(core, 0), 0);
  EXPECT_NE(::kill(next, 0), 0);
  for (int i = 0; i < 100 && fs::exists(vm); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_FALSE(fs::exists(vm)) << log("grouped");
  std::string vmLog = log("grouped");
  EXPECT_EQ(vmLog.find("restarting", logBefore), std::string::npos) << vmLog;
  EXPECT_EQ(vmctl({"info", "grouped"}).second.find("cgroup:"), std::string::npos);
}

TEST_F(VmCgroups, AStaleCgroupLeftByADeadVmmdIsEmptiedAndMadeAnew) {
  ASSERT_EQ(vmctl({"create", "-t", "echo", "stale"}).first, 0);
  // A process left in the VM's cgroup by a vmmd that died.
  fs::create_directories(cgroupRoot / "vm-stale" / "core");
  CoreProcess orphan({"/bin/sleep", "60"});
  std::ofstream(cgroupRoot / "vm-stale" / "core" / "cgroup.procs") << orphan.pid();
  ASSERT_EQ(cgroupOf(orphan.pid()), relative(cgroupRoot / "vm-stale" / "core"));
  ASSERT_EQ(vmctl({"start", "stale"}).first, 0) << log("stale");
  EXPECT_NE(orphan.wait(std::chrono::seconds(5)), 0) << "the orphan was killed";
  pid_t core = corePid("stale");
  ASSERT_GT(core, 0);
  EXPECT_EQ(cgroupOf(core), relative(cgroupRoot / "vm-stale" / "core"));
  EXPECT_EQ(vmctl({"poweroff", "stale"}).first, 0);
}

TEST_F(VmCgroups, ALimitTheHostCannotApplyIsRefusedAtStart) {
  if (offers("cpu")) GTEST_SKIP() << "this host can apply limit_pcpu (LimitPcpuHoldsABusyGuestNearItsShare)";
  writeTemplate("limited", "test=echo", "virtio-blk", "limit_pcpu=\"20\"\npriority=\"10\"\n");
  ASSERT_EQ(vmctl({"create", "-t", "limited", "capped"}).first, 0);
  auto [status, output] = vmctl({"start", "capped"});
  EXPECT_NE(status, 0) << output;
  EXPECT_NE(output.find("priority=\"10\": needs cgroup v2's cpu controller"), std::string::npos) << output;
  EXPECT_NE(vmctl({"info", "capped"}).second.find("state: stopped"), std::string::npos);
  EXPECT_FALSE(fs::exists(cgroupRoot / "vm-capped")) << "nothing is left behind";
  // Without the keys the same VM starts: nothing of the refused start stuck.
  writeTemplate("unlimited", "test=echo");
  ASSERT_EQ(vmctl({"create", "-t", "unlimited", "free"}).first, 0);
  ASSERT_EQ(vmctl({"start", "free"}).first, 0) << log("free");
  EXPECT_EQ(vmctl({"poweroff", "free"}).first, 0);
}

TEST_F(VmCgroups, BadLimitValuesAreRefusedByName) {
  for (const char* line : {"limit_pcpu=\"0\"", "limit_pcpu=\"lots\"", "limit_rbps=\"10X\"", "priority=\"21\"",
                           "limit_wiops=\"-5\""}) {
    writeTemplate("bad", "test=echo", "virtio-blk", std::string(line) + "\n");
    auto [status, output] = vmctl({"create", "-t", "bad", "bad-limits"});
    EXPECT_NE(status, 0) << line;
    std::string key = std::string(line).substr(0, std::string(line).find('='));
    EXPECT_NE(output.find(key + ": expected"), std::string::npos) << line << ": " << output;
  }
}

// A spinning guest under limit_pcpu="20" gets about a fifth of a CPU, by
// its cgroup's own accounting (cpu.stat), not by wall time.
TEST_F(VmCgroups, LimitPcpuHoldsABusyGuestNearItsShare) {
  if (!offers("cpu")) GTEST_SKIP() << hostLacks("cpu");
  writeTemplate("spin", "test=spin", "virtio-blk", "limit_pcpu=\"20\"\n");
  ASSERT_EQ(vmctl({"create", "-t", "spin", "busy"}).first, 0);
  ASSERT_EQ(vmctl({"start", "busy"}).first, 0) << log("busy");
  fs::path vm = cgroupRoot / "vm-busy";
  EXPECT_EQ(readText(vm / "cpu.max"), "20000 100000\n");
  std::this_thread::sleep_for(std::chrono::seconds(1));  // Past boot.
  uint64_t before = statField(vm / "cpu.stat", "usage_usec");
  auto start = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(std::chrono::seconds(4));
  uint64_t used = statField(vm / "cpu.stat", "usage_usec") - before;
  double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  double share = used / 1e6 / wall;
  EXPECT_GT(share, 0.12) << "the guest spins";
  EXPECT_LT(share, 0.28) << "limit_pcpu=20";
  EXPECT_GT(statField(vm / "cpu.stat", "nr_throttled"), 0u);
  EXPECT_EQ(vmctl({"poweroff", "busy"}).first, 0);
}

// limit_riops on an uncached disk: the guest's reads reach the device at
// no more than the limit (counted in io.stat).
TEST_F(VmCgroups, LimitRiopsCapsTheGuestsReads) {
  if (!offers("io")) GTEST_SKIP() << hostLacks("io");
  fs::path store = root / "store";
  if (!blockDeviceBacked(store)) GTEST_SKIP() << store << " has no block device for io.max to throttle";
  writeTemplate("reader", "test=virtio-blk-stress rounds=1000", "virtio-blk",
                "disk0_opts=\"nocache\"\nlimit_riops=\"50\"\n");
  ASSERT_EQ(vmctl({"create", "-t", "reader", "slow"}).first, 0);
  ASSERT_EQ(vmctl({"start", "slow"}).first, 0) << log("slow");
  fs::path vm = cgroupRoot / "vm-slow";
  EXPECT_NE(readText(vm / "io.max").find("riops=50"), std::string::npos) << readText(vm / "io.max");
  std::this_thread::sleep_for(std::chrono::seconds(1));
  auto reads = [&] {
    std::istringstream stat(readText(vm / "io.stat"));
    uint64_t total = 0;
    for (std::string field; stat >> field;) {
      if (field.rfind("rios=", 0) == 0) total += std::stoull(field.substr(5));
    }
    return total;
  };
  uint64_t before = reads();
  std::this_thread::sleep_for(std::chrono::seconds(4));
  uint64_t count = reads() - before;
  EXPECT_GT(count, 0u) << "the guest reads";
  EXPECT_LE(count, 4 * 50 + 50) << "limit_riops=50 over 4 s";
  EXPECT_EQ(vmctl({"poweroff", "slow"}).first, 0);
}

}  // namespace
}  // namespace cellvisor::testing
