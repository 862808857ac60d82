// The core as vmmd runs it: confined (seccomp filter, no_new_privs, its own
// namespaces) under the VM's own uid, every device server under another;
// two VMs share no uid, and a process of one cannot signal or read the
// memory of the other's. A core that breaks its sandbox dies of SIGSYS and
// `vmctl info` names the syscall.
#include <fcntl.h>
#include <sys/wait.h>

#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "tests/vmmd/vmmd-fixture.h"

namespace cellvisor::testing {
namespace {

// /proc/PID/status's fields.
std::map<std::string, std::string> status(pid_t pid) {
  std::map<std::string, std::string> fields;
  std::ifstream file("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(file, line);) {
    auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    auto value = line.substr(colon + 1);
    value.erase(0, value.find_first_not_of(" \t"));
    fields[line.substr(0, colon)] = value;
  }
  return fields;
}

uid_t uidOf(pid_t pid) {
  std::string uid = status(pid)["Uid"];
  if (uid.empty()) ADD_FAILURE() << "pid " << pid << " is gone";
  return uid.empty() ? 0 : static_cast<uid_t>(std::stoul(uid));
}

// The children of `parent` whose command line ends in `lastArgument`.
pid_t childWithLastArgument(pid_t parent, const std::string& lastArgument) {
  for (const auto& entry : fs::directory_iterator("/proc")) {
    pid_t pid = std::atoi(entry.path().filename().c_str());
    if (pid <= 0 || parentOf(pid) != parent) continue;
    std::ifstream file(entry.path() / "cmdline");
    std::string cmdline((std::istreambuf_iterator<char>(file)), {});
    if (!cmdline.empty() && cmdline.back() == '\0') cmdline.pop_back();
    auto last = cmdline.rfind('\0');
    if (cmdline.substr(last == std::string::npos ? 0 : last + 1) == lastArgument) return pid;
  }
  return 0;
}

// Waits (up to 5 s) until the core `pid` has confined itself: it starts as
// root and takes on its identity only once the VM is built.
bool waitConfined(pid_t pid) {
  for (int i = 0; i < 250; ++i) {
    if (status(pid)["Seccomp"] == "2") return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

// In a child as `uid`: whether it may signal `target` and open its memory.
std::pair<bool, bool> reachAs(uid_t uid, pid_t target) {
  int pipes[2];
  if (::pipe(pipes) != 0) return {true, true};
  pid_t child = ::fork();
  if (child == 0) {
    char result[2] = {'1', '1'};
    if (::setresgid(uid, uid, uid) == 0 && ::setresuid(uid, uid, uid) == 0) {
      result[0] = ::kill(target, 0) == 0 ? '1' : '0';
      int memory = ::open(("/proc/" + std::to_string(target) + "/mem").c_str(), O_RDONLY);
      result[1] = memory >= 0 ? '1' : '0';
    }
    [[maybe_unused]] ssize_t written = ::write(pipes[1], result, 2);
    ::_exit(0);
  }
  ::close(pipes[1]);
  char result[2] = {'1', '1'};
  [[maybe_unused]] ssize_t got = ::read(pipes[0], result, 2);
  ::close(pipes[0]);
  ::waitpid(child, nullptr, 0);
  return {result[0] == '1', result[1] == '1'};
}

TEST_F(Vmctl, EachVmRunsConfinedUnderItsOwnUids) {
  if (::geteuid() != 0) GTEST_SKIP() << "vmmd hands out uids only as root";
  for (const char* vm : {"alpha", "beta"}) {
    ASSERT_EQ(vmctl({"create", "-t", "echo", vm}).first, 0);
    ASSERT_EQ(vmctl({"start", vm}).first, 0);
  }
  std::map<std::string, pid_t> cores;
  std::map<std::string, pid_t> servers;
  for (const char* vm : {"alpha", "beta"}) {
    for (int i = 0; i < 100 && (cores[vm] <= 0 || servers[vm] <= 0); ++i) {
      cores[vm] = childWithLastArgument(daemon->pid(), vm);
      servers[vm] = serverPid(vm);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ASSERT_GT(cores[vm], 0) << vm << log(vm);
    ASSERT_GT(servers[vm], 0) << vm << log(vm);
    ASSERT_TRUE(waitConfined(cores[vm])) << vm << log(vm);
    auto fields = status(cores[vm]);
    EXPECT_EQ(fields["Seccomp"], "2") << vm << ": the core runs under its filter";
    EXPECT_EQ(fields["NoNewPrivs"], "1") << vm;
    EXPECT_EQ(fields["CapEff"], "0000000000000000") << vm << ": no capabilities left";
    EXPECT_NE(fs::read_symlink("/proc/" + std::to_string(cores[vm]) + "/ns/net"),
              fs::read_symlink("/proc/self/ns/net"))
        << vm << ": its own network namespace";
    EXPECT_TRUE(fs::is_empty("/proc/" + std::to_string(cores[vm]) + "/root/dev"))
        << vm << ": no host device node";
    EXPECT_NE(uidOf(cores[vm]), 0u) << vm;
    EXPECT_NE(uidOf(cores[vm]), uidOf(servers[vm])) << vm << ": the server is not the core";
  }
  std::set<uid_t> uids = {uidOf(cores["alpha"]), uidOf(servers["alpha"]), uidOf(cores["beta"]),
                          uidOf(servers["beta"])};
  EXPECT_EQ(uids.size(), 4u) << "no two processes share a uid";
  // As alpha's server (were it out of its sandbox): neither beta's core nor
  // beta's server, nor alpha's own core, can be signalled or read.
  for (pid_t target : {cores["beta"], servers["beta"], cores["alpha"]}) {
    auto [signal, memory] = reachAs(uidOf(servers["alpha"]), target);
    EXPECT_FALSE(signal) << "signal " << target;
    EXPECT_FALSE(memory) << "/proc/" << target << "/mem";
  }
  uid_t lowest = std::min(uidOf(cores["alpha"]), uidOf(cores["beta"]));
  for (const char* vm : {"alpha", "beta"}) {
    EXPECT_EQ(vmctl({"poweroff", vm}).first, 0);
    waitStopped(vm);
  }
  // Stopped VMs give their uids back: a new one takes alpha's block again.
  ASSERT_EQ(vmctl({"start", "beta"}).first, 0);
  pid_t again = 0;
  for (int i = 0; i < 100 && again <= 0; ++i) {
    again = childWithLastArgument(daemon->pid(), "beta");
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_GT(again, 0);
  ASSERT_TRUE(waitConfined(again)) << log("beta");
  EXPECT_EQ(uidOf(again), lowest) << log("beta");
  EXPECT_EQ(vmctl({"poweroff", "beta"}).first, 0);
}

TEST_F(Vmctl, AMalformedUidRangeIsRefusedByName) {
  if (::geteuid() != 0) GTEST_SKIP() << "vmmd hands out uids only as root";
  ASSERT_EQ(vmctl({"create", "-t", "echo", "ranged"}).first, 0);
  fs::create_directories(root / "store" / ".config");
  for (const char* range : {"100-50", "0-1000", "5000", "1000-1010"}) {
    std::ofstream(root / "store" / ".config" / "system.conf") << "vm_uid_range=\"" << range << "\"\n";
    auto [status, output] = vmctl({"start", "ranged"});
    EXPECT_NE(status, 0) << range << ": " << output;
    EXPECT_NE(output.find(std::string("vm_uid_range=\"") + range + "\": expected FIRST-LAST"),
              std::string::npos)
        << output;
    EXPECT_NE(vmctl({"info", "ranged"}).second.find("state: stopped"), std::string::npos) << range;
  }
  // Fixed, the same VM starts with a uid from the range.
  std::ofstream(root / "store" / ".config" / "system.conf") << "vm_uid_range=\"3000000000-3000000127\"\n";
  ASSERT_EQ(vmctl({"start", "ranged"}).first, 0);
  pid_t core = 0;
  for (int i = 0; i < 100 && core <= 0; ++i) {
    core = childWithLastArgument(daemon->pid(), "ranged");
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_GT(core, 0);
  ASSERT_TRUE(waitConfined(core)) << log("ranged");
  EXPECT_EQ(uidOf(core), 3000000000u) << log("ranged");
  EXPECT_EQ(vmctl({"poweroff", "ranged"}).first, 0);
}

TEST_F(Vmctl, ACoreThatBreaksItsSandboxIsReportedByName) {
  // vmmd's core, through a wrapper that asks it to open a host file once
  // it is confined (the core's test hook).
  stopDaemon();
  fs::path wrapper = root / "core-that-opens";
  std::ofstream(wrapper) << "#!/bin/sh\nexec " << env("CELLVISOR_CORE") << " --sandbox-fault open \"$@\"\n";
  fs::permissions(wrapper, fs::perms::owner_all);
  startDaemon({"--core", wrapper.string()});
  ASSERT_EQ(vmctl({"create", "-t", "echo", "broken"}).first, 0);
  ASSERT_EQ(vmctl({"start", "broken"}).first, 0);
  std::string info = waitStopped("broken");
  EXPECT_NE(info.find("last exit: killed by signal 31 (Bad system call): sandbox violation, syscall openat"),
            std::string::npos)
      << info << log("broken");
  EXPECT_NE(log("broken").find("the core broke its sandbox: openat"), std::string::npos) << log("broken");
}

}  // namespace
}  // namespace cellvisor::testing
