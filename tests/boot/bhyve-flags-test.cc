// bhyve(8)'s flags on the real core: a command line from the FreeBSD
// Handbook runs, every argument error exits 4 with a usage line, what is
// not supported yet is refused by name, and the flags KVM can honour change
// what the guest (or the host) sees.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/kvm/hypervisor.h"
#include "tests/boot/guest-boot.h"

namespace cellvisor::testing {
namespace {

std::string readFile(const std::string& path) {
  std::ifstream file(path);
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

// The value of "Name:" in a /proc status file, or "".
std::string statusField(const std::string& status, const std::string& name) {
  std::istringstream lines(status);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind(name + ":", 0) == 0) {
      auto value = line.substr(name.size() + 1);
      return value.substr(value.find_first_not_of(" \t"));
    }
  }
  return "";
}

// /proc/PID/task/TID of the thread named `name`, or "".
std::string threadNamed(int pid, const std::string& name) {
  for (const auto& task : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task")) {
    if (readFile(task.path() / "comm") == name + "\n") return task.path();
  }
  return "";
}

// The smaps entry (header line to the next header) of the guest RAM mapping.
std::string guestRamSmaps(int pid) {
  std::string smaps = readFile("/proc/" + std::to_string(pid) + "/smaps");
  auto at = smaps.find("/memfd:guest-ram");
  if (at == std::string::npos) return "";
  auto end = smaps.find("VmFlags:", at);
  return smaps.substr(at, smaps.find('\n', end) - at);
}

class BhyveFlags : public GuestBoot {};

TEST_F(BhyveFlags, HandbookCommandLineRuns) {
  // The Handbook's line, less its disk and NIC, in both spellings.
  for (const auto& flags :
       {std::vector<std::string>{"-A", "-H", "-P", "-s", "0:0,hostbridge", "-s", "1:0,lpc", "-c", "2"},
        std::vector<std::string>{"-AHP", "-s0:0,hostbridge", "-s1:0,lpc", "-c2", "-DWYu", "-U",
                                 "5b6d4a0c-6f6b-11ee-8c99-0242ac120002", "-K", "us_unix", "-a"}}) {
    CoreProcess core(args("hello", flags));
    EXPECT_EQ(core.wait(), GUEST_PASSED) << core.output();
  }
}

TEST_F(BhyveFlags, ArgumentErrorsExit4WithAUsageLine) {
  for (const auto& bad : std::vector<std::vector<std::string>>{{"-Z", "vm"},
                                                               {"-AZ", "vm"},
                                                               {"vm", "-m"},
                                                               {"-c", "cpus=2,dies=2", "vm"},
                                                               {"-p", "1", "vm"},
                                                               {"-p", "a:b", "vm"},
                                                               {"-s", "x,hostbridge", "vm"},
                                                               {"-s", "1:0:0:0,lpc", "vm"},
                                                               {"-o", "novalue", "vm"},
                                                               {"vm", "extra"}}) {
    std::vector<std::string> argv = {coreBinary(), "--kernel", guestImage()};
    argv.insert(argv.end(), bad.begin(), bad.end());
    CoreProcess core(argv);
    EXPECT_EQ(core.wait(), 4) << bad.front() << ": " << core.output();
    EXPECT_NE(core.err().find("usage: vmm-core [-aACDeHhPSuWwxY]"), std::string::npos) << core.err();
  }
}

TEST_F(BhyveFlags, WhatIsNotSupportedYetIsRefusedByName) {
  struct Case {
    std::vector<std::string> flag;
    const char* message;
  };
  for (const auto& c :
       {Case{{"-G", "w127.0.0.1:1234"}, "-G w127.0.0.1:1234: a GDB debug server is not supported yet"},
        Case{{"-r", "/tmp/snapshot"}, "-r /tmp/snapshot: resuming from a snapshot is not supported yet"},
        Case{{"-n", "0,1G,0"}, "-n 0,1G,0: guest NUMA domains are not supported yet"},
        Case{{"-o", "gdb.port=1234"}, "gdb.port: a GDB debug server is not supported yet"}}) {
    std::vector<std::string> argv = {coreBinary(), "--kernel", guestImage()};
    argv.insert(argv.end(), c.flag.begin(), c.flag.end());
    argv.push_back("vm");
    CoreProcess core(argv);
    EXPECT_EQ(core.wait(), 4) << core.output();
    EXPECT_NE(core.err().find(c.message), std::string::npos) << core.err();
  }
}

TEST_F(BhyveFlags, HelpAndHelpListsExit0) {
  CoreProcess help({coreBinary(), "-h"});
  EXPECT_EQ(help.wait(), 0) << help.output();
  EXPECT_NE(help.out().find("wire guest memory"), std::string::npos) << help.out();
  CoreProcess slots({coreBinary(), "-s", "help"});
  EXPECT_EQ(slots.wait(), 0) << slots.output();
  EXPECT_NE(
      slots.out().find(
          "hostbridge, amd_hostbridge, lpc, ahci, ahci-cd, ahci-hd, fbuf, nvme, virtio-blk, virtio-net"),
      std::string::npos)
      << slots.out();
  CoreProcess lpc({coreBinary(), "-l", "help"});
  EXPECT_EQ(lpc.wait(), 0) << lpc.output();
  EXPECT_NE(lpc.out().find("com1, com2"), std::string::npos) << lpc.out();
}

TEST_F(BhyveFlags, StrictIoEndsTheVmAtAPortNobodyEmulates) {
  CoreProcess lenient(args("unclaimed-port"));
  EXPECT_EQ(lenient.wait(), GUEST_PASSED) << lenient.output();
  CoreProcess strict(args("unclaimed-port", {"-e"}));
  EXPECT_EQ(strict.wait(), 4) << strict.output();
  EXPECT_NE(strict.err().find("guest read port 0x2e0 (1 bytes), which nothing emulates (-e"),
            std::string::npos)
      << strict.err();
  CoreProcess hello(args("hello", {"-e"}));  // The platform itself needs no unclaimed port.
  EXPECT_EQ(hello.wait(), GUEST_PASSED) << hello.output();
}

TEST_F(BhyveFlags, UnknownMsrsFaultUnlessIgnoredWithW) {
  CoreProcess strict(args("unknown-msr"));
  EXPECT_EQ(strict.wait(), 3) << "#GP without an IDT: " << strict.output();
  CoreProcess ignored(args("unknown-msr", {"-w"}));
  EXPECT_EQ(ignored.wait(), GUEST_PASSED) << ignored.output();
}

TEST_F(BhyveFlags, X2apicIsInCpuidOnlyWithX) {
  struct Case {
    std::vector<std::string> flags;
    const char* seen;
  };
  for (const auto& c : {Case{{}, "cpuid: x2apic 0"}, Case{{"-x"}, "cpuid: x2apic 1"},
                        Case{{"-xa"}, "cpuid: x2apic 0"}, Case{{"-a", "-x"}, "cpuid: x2apic 1"}}) {
    CoreProcess core(args("cpuid", c.flags));
    EXPECT_EQ(core.wait(), GUEST_PASSED) << core.output();
    EXPECT_NE(core.out().find(c.seen), std::string::npos) << core.out();
  }
}

// On an emulating host the core hides, by itself, the features whose
// instructions the emulator cannot run (Linux uses them once it sees them),
// and says so. Ring 0 reads CPUID through KVM's table. KVM-PVM here honours
// the mask for cx16 (and x2apic) but keeps popcnt, xsave and smap visible
// whatever the table says (measured: QEMU's -cpu flags fail the same way),
// so the Linux test guest also carries clearcpuid= on its command line.
TEST_F(BhyveFlags, EmulatingHostPresetHidesWhatTheEmulatorCannotRun) {
  if (!hostEmulatesGuestKernel()) GTEST_SKIP() << "host KVM runs guest ring 0 natively: no preset applies";
  CoreProcess preset(args("cpuid"));
  EXPECT_EQ(preset.wait(), GUEST_PASSED) << preset.output();
  EXPECT_NE(preset.out().find("cpuid: cx16 0"), std::string::npos) << preset.out();
  EXPECT_NE(preset.err().find("CPUID hides what its emulator cannot run (cx16,smap,popcnt,"),
            std::string::npos)
      << preset.err();
  // An explicit mask replaces the preset: the host's own cx16 shows again.
  CoreProcess explicitMask(args("cpuid", {"--cpuid-mask", "pdpe1gb"}));
  EXPECT_EQ(explicitMask.wait(), GUEST_PASSED) << explicitMask.output();
  EXPECT_EQ(explicitMask.err().find("CPUID hides"), std::string::npos) << explicitMask.err();
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string text((std::istreambuf_iterator<char>(cpuinfo)), std::istreambuf_iterator<char>());
  if (text.find(" cx16") != std::string::npos) {
    EXPECT_NE(explicitMask.out().find("cpuid: cx16 1"), std::string::npos) << explicitMask.out();
  }
}

TEST_F(BhyveFlags, WiredMemoryIsLockedOrRefusedWithTheLimit) {
  CoreProcess wired(args("idle", {"-S"}));
  ASSERT_TRUE(wired.waitFor("idle: waiting")) << wired.output();
  std::string locked =
      statusField(readFile("/proc/" + std::to_string(guestCoreOf(wired.pid())) + "/status"), "VmLck");
  EXPECT_GE(std::stoul(locked), 128u << 10) << "VmLck: " << locked;  // kB
  wired.signal(SIGTERM);
  EXPECT_EQ(wired.wait(), 1) << wired.output();

  if (::geteuid() != 0 || ::access("/usr/bin/setpriv", X_OK) != 0 ||
      ::access("/usr/bin/prlimit", X_OK) != 0) {
    GTEST_SKIP() << "needs root, setpriv and prlimit to run the core without CAP_IPC_LOCK";
  }
  auto argv = args("hello", {"-S"});
  argv.insert(argv.begin(), {"/usr/bin/setpriv", "--inh-caps=-ipc_lock", "--bounding-set=-ipc_lock",
                             "/usr/bin/prlimit", "--memlock=1048576"});
  CoreProcess limited(argv);
  EXPECT_EQ(limited.wait(), 4) << limited.output();
  EXPECT_NE(limited.err().find("-S (memory.wired): cannot wire 128 MiB of guest memory"), std::string::npos)
      << limited.err();
  EXPECT_NE(limited.err().find("RLIMIT_MEMLOCK is 1 MiB"), std::string::npos) << limited.err();
}

TEST_F(BhyveFlags, GuestMemoryStaysOutOfCoreDumpsUnlessC) {
  for (bool inCore : {false, true}) {
    CoreProcess core(args("idle", inCore ? std::vector<std::string>{"-C"} : std::vector<std::string>{}));
    ASSERT_TRUE(core.waitFor("idle: waiting")) << core.output();
    std::string smaps = guestRamSmaps(guestCoreOf(core.pid()));
    ASSERT_NE(smaps, "") << "no guest RAM mapping";
    std::string flags = smaps.substr(smaps.find("VmFlags:"));
    EXPECT_EQ(flags.find(" dd") != std::string::npos, !inCore) << flags;
    core.signal(SIGTERM);
    EXPECT_EQ(core.wait(), 1) << core.output();
  }
}

TEST_F(BhyveFlags, VcpuThreadsArePinnedToExistingHostCpus) {
  long last = ::sysconf(_SC_NPROCESSORS_ONLN) - 1;
  CoreProcess core(args("idle", {"-c", "2", "-p", "0:0", "-p", "1:" + std::to_string(last), "-p", "1:0"}));
  ASSERT_TRUE(core.waitFor("idle: waiting")) << core.output();
  std::string vcpu0 = threadNamed(guestCoreOf(core.pid()), "vcpu 0");
  std::string vcpu1 = threadNamed(guestCoreOf(core.pid()), "vcpu 1");
  ASSERT_NE(vcpu0, "");
  ASSERT_NE(vcpu1, "");
  EXPECT_EQ(statusField(readFile(vcpu0 + "/status"), "Cpus_allowed_list"), "0");
  EXPECT_EQ(statusField(readFile(vcpu1 + "/status"), "Cpus_allowed_list"),
            last == 0 ? "0" : (last == 1 ? "0-1" : "0," + std::to_string(last)));
  core.signal(SIGTERM);
  EXPECT_EQ(core.wait(), 1) << core.output();

  CoreProcess missing({coreBinary(), "--kernel", guestImage(), "-p", "0:1023", "vm"});
  EXPECT_EQ(missing.wait(), 4) << missing.output();
  EXPECT_NE(missing.err().find("-p 0:1023: vcpu.0.cpuset: host CPU 1023 does not exist or is offline"),
            std::string::npos)
      << missing.err();
}

TEST_F(BhyveFlags, MemoryBeyondRamAndSwapNeedsOvercommit) {
  std::string meminfo = readFile("/proc/meminfo");
  uint64_t kib =
      std::stoull(statusField(meminfo, "MemTotal")) + std::stoull(statusField(meminfo, "SwapTotal"));
  // A whole number of GiB just above RAM and swap: small enough that KVM's
  // own bookkeeping for the memory slot stays modest when it is allowed.
  std::string size = std::to_string((kib >> 20) + 2) + "G";
  CoreProcess refused(args("hello", {"-m", size}));
  EXPECT_EQ(refused.wait(), 4) << refused.output();
  EXPECT_NE(refused.err().find("-m: memory.size: " + std::to_string((kib >> 20) + 2) +
                               " GiB of guest memory is more than this host's RAM and swap"),
            std::string::npos)
      << refused.err();
  EXPECT_NE(refused.err().find("-o memory.overcommit=true"), std::string::npos) << refused.err();
  CoreProcess allowed(args("hello", {"-m", size, "-o", "memory.overcommit=true"}));
  EXPECT_EQ(allowed.wait(), GUEST_PASSED) << allowed.output();
  EXPECT_NE(allowed.err().find("warning: -m: memory.size: "), std::string::npos) << allowed.err();
  EXPECT_NE(allowed.err().find("of guest memory is more than this host has available now"), std::string::npos)
      << allowed.err();
}

}  // namespace
}  // namespace cellvisor::testing
