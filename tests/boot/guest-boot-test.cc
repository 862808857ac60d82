// Tier 3: the test guest booted by the real core on real KVM. Each test picks
// a guest test by command line and checks the console and the exit status.
#include "tests/boot/guest-boot.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <regex>
#include <sstream>
#include <thread>

namespace cellvisor::testing {
namespace {

TEST_F(GuestBoot, Hello) {
  CoreProcess core(args("hello"));
  EXPECT_EQ(core.wait(), GUEST_PASSED) << core.output();
  EXPECT_NE(core.out().find("Hello from the cellvisor test guest"), std::string::npos);
  EXPECT_NE(core.out().find("guest: 4 checks, 0 failed"), std::string::npos) << core.out();
}

TEST_F(GuestBoot, MemoryAbove4GiB) {
  CoreProcess core(args("hello", {"-m", "4G"}));
  EXPECT_EQ(core.wait(), GUEST_PASSED) << core.output();
  // All of it but the legacy 0x9FC00-1 MiB hole.
  EXPECT_NE(core.out().find("memory: 4095 MiB usable"), std::string::npos) << core.out();
}

TEST_F(GuestBoot, PciEnumerationSeesHostBridgeAndLpc) {
  CoreProcess core(args("pci", {"-s", "0,hostbridge", "-s", "31,lpc"}));
  EXPECT_EQ(core.wait(), GUEST_PASSED) << core.output();
  EXPECT_NE(core.out().find("pci: 00:00.0 1275:1275 class 060000"), std::string::npos) << core.out();
  EXPECT_NE(core.out().find("pci: 00:1f.0 8086:7000 class 060100"), std::string::npos) << core.out();
  EXPECT_NE(core.out().find("pci: 2 functions on bus 0"), std::string::npos);
}

TEST_F(GuestBoot, SmpBringsUpEveryVcpu) {
  for (int cpus : {2, 4}) {
    CoreProcess core(args("smp", {"-c", std::to_string(cpus)}));
    EXPECT_EQ(core.wait(), GUEST_PASSED) << core.output();
    EXPECT_NE(core.out().find("smp: MADT lists " + std::to_string(cpus) + " CPUs"), std::string::npos)
        << core.out();
    EXPECT_NE(core.out().find("smp: " + std::to_string(cpus) + " CPUs running"), std::string::npos)
        << core.out();
  }
}

TEST_F(GuestBoot, UartRegisters) {
  CoreProcess core(args("uart"));
  EXPECT_EQ(core.wait(), GUEST_PASSED) << core.output();
}

TEST_F(GuestBoot, RealTimeClock) {
  CoreProcess core(args("rtc", {"-u"}));
  EXPECT_EQ(core.wait(), GUEST_PASSED) << core.output();
}

TEST_F(GuestBoot, ExitStatusesFollowBhyve) {
  struct Case {
    const char* test;
    int status;
    const char* reason;
  };
  for (const Case& c : {Case{"reset", 0, "reset via port 0xCF9"}, Case{"reset-i8042", 0, "i8042"},
                        Case{"poweroff", 1, "ACPI S5"}, Case{"halt", 2, "halted with interrupts disabled"},
                        Case{"triple-fault", 3, "triple fault"}}) {
    CoreProcess core(args(c.test));
    EXPECT_EQ(core.wait(), c.status) << c.test << ": " << core.output();
    EXPECT_NE(core.err().find(c.reason), std::string::npos) << core.err();
  }
}

// With the in-kernel LAPIC a HLT never reaches the core, so the core asks
// each vCPU in turn whether it has halted for good. An AP that KVM wakes
// for INIT (after the probe's own kick in the same round) used to be
// counted twice, which with two vCPUs made a false "halted" of a guest
// whose BSP was still working.
TEST_F(GuestBoot, HaltProbeIgnoresLateAndIdleApsWhileTheBspWorks) {
  for (int cpus : {2, 4}) {
    CoreProcess core(args("smp-idle", {"-c", std::to_string(cpus)}));
    EXPECT_EQ(core.wait(), GUEST_PASSED) << cpus << " vCPUs: " << core.output();
    EXPECT_NE(core.out().find("ok - BSP still running after the APs went idle"), std::string::npos)
        << core.out();
  }
}

TEST_F(GuestBoot, HaltWithApsThatNeverStartedIsAHalt) {
  CoreProcess core(args("halt", {"-c", "2"}));
  EXPECT_EQ(core.wait(), 2) << core.output();
  EXPECT_NE(core.err().find("all vCPUs halted with interrupts disabled"), std::string::npos) << core.err();
}

TEST_F(GuestBoot, SigtermPressesThePowerButton) {
  CoreProcess core(args("power-button"));
  ASSERT_TRUE(core.waitFor("power-button: waiting")) << core.output();
  core.signal(SIGTERM);
  EXPECT_EQ(core.wait(), 1) << core.output();
  EXPECT_NE(core.out().find("power-button: pressed"), std::string::npos) << core.out();
}

TEST_F(GuestBoot, SigtermStopsAGuestWithoutAcpiHandler) {
  CoreProcess core(args("idle"));
  ASSERT_TRUE(core.waitFor("idle: waiting")) << core.output();
  core.signal(SIGTERM);
  EXPECT_EQ(core.wait(), 1) << core.output();
  EXPECT_NE(core.err().find("no ACPI power-button handler"), std::string::npos) << core.err();
}

TEST_F(GuestBoot, ConsoleOnUnixSocketCarriesInputAndOutput) {
  std::string path = ::testing::TempDir() + "/cellvisor-console-" + std::to_string(::getpid()) + ".sock";
  std::vector<std::string> argv = args("echo");
  argv[4] = "com1,unix=" + path;
  CoreProcess core(argv);
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, path.c_str(), sizeof(address.sun_path) - 1);
  bool connected = false;
  for (int attempt = 0; attempt < 200 && !connected; ++attempt) {
    connected = ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
    if (!connected) usleep(10000);
  }
  ASSERT_TRUE(connected) << core.output();
  std::string console;
  const std::string line = "typed-by-the-host\n";
  ASSERT_EQ(::write(fd, line.data(), line.size()), static_cast<ssize_t>(line.size()));
  EXPECT_EQ(core.wait(), GUEST_PASSED) << core.output();
  char buffer[4096];
  for (ssize_t count; (count = ::read(fd, buffer, sizeof(buffer))) > 0;)
    console.append(buffer, static_cast<size_t>(count));
  ::close(fd);
  EXPECT_NE(console.find("echo: typed-by-the-host"), std::string::npos) << console;
  EXPECT_EQ(::access(path.c_str(), F_OK), -1) << "the socket is removed on exit";
}

// The pty a core announces on stderr ("console: /dev/pts/N"), or "".
std::string ptyPath(CoreProcess& core) {
  if (!core.waitFor("console: /dev/pts/")) return "";
  // Wait for the whole line: the path's digits may arrive after the prefix.
  std::string tail = core.err().substr(core.err().find("console: /dev/pts/"));
  if (!core.waitFor(tail.substr(0, tail.find('\n')) + "\n")) return "";
  std::smatch match;
  std::string err = core.err();
  return std::regex_search(err, match, std::regex("console: (/dev/pts/[0-9]+)\n")) ? match[1].str() : "";
}

TEST_F(GuestBoot, ConsoleOnPty) {
  auto argv = args("echo", {"-l", "com2,file=/dev/null"});  // A second UART beside it.
  argv[4] = "com1,pty";
  CoreProcess pty(argv);
  std::string path = ptyPath(pty);
  ASSERT_FALSE(path.empty()) << pty.output();
  int terminal = ::open(path.c_str(), O_RDWR | O_NOCTTY);
  ASSERT_GE(terminal, 0);
  const std::string line = "via-pty\n";
  ASSERT_EQ(::write(terminal, line.data(), line.size()), static_cast<ssize_t>(line.size()));
  std::string seen;
  for (int polls = 0; polls < 300 && seen.find("echo: via-pty") == std::string::npos; ++polls) {
    pollfd ready{terminal, POLLIN, 0};
    if (::poll(&ready, 1, 100) <= 0) continue;
    char buffer[512];
    ssize_t count = ::read(terminal, buffer, sizeof(buffer));
    if (count > 0) seen.append(buffer, static_cast<size_t>(count));
  }
  ::close(terminal);
  EXPECT_NE(seen.find("echo: via-pty"), std::string::npos) << seen;
  EXPECT_EQ(pty.wait(), GUEST_PASSED) << pty.output();
}

// A reader that holds the pty but is slow to read (a busy machine) must
// still get the guest's last output: the core waits for it before the
// master's hang-up would throw it away.
TEST_F(GuestBoot, ConsoleOnPtyKeepsTheLastOutputForASlowReader) {
  auto argv = args("hello");
  argv[4] = "com1,pty";
  CoreProcess pty(argv);
  std::string path = ptyPath(pty);
  ASSERT_FALSE(path.empty()) << pty.output();
  int terminal = ::open(path.c_str(), O_RDWR | O_NOCTTY | O_NONBLOCK);
  ASSERT_GE(terminal, 0);
  // Read nothing until the guest has said all it will (the count stops
  // growing) and a while longer: long past the core's end without a wait.
  int unread = -1;
  for (int still = 0; still < 30;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    int now = 0;
    if (::ioctl(terminal, FIONREAD, &now) != 0) break;  // Hung up: the core went without waiting.
    still = now == unread && now > 0 ? still + 1 : 0;
    unread = now;
  }
  std::string seen;
  char buffer[4096];
  for (ssize_t count; (count = ::read(terminal, buffer, sizeof(buffer))) > 0;) seen.append(buffer, count);
  ::close(terminal);
  EXPECT_NE(seen.find("guest: 4 checks, 0 failed"), std::string::npos) << "the tail was lost; read: " << seen;
  EXPECT_EQ(pty.wait(), GUEST_PASSED) << pty.output();
}

// bhyve's null-modem console: the core takes side A, the user side B, as
// the FreeBSD Handbook shows (`-l com1,/dev/nmdm0A`, `cu -l /dev/nmdm0B`).
TEST_F(GuestBoot, ConsoleOnANullModemPair) {
  std::string unit = std::to_string(900000 + ::getpid() % 100000);
  std::string ours = "/dev/nmdm" + unit + "B";
  // One a crashed core left behind, pointing nowhere, is replaced.
  ::unlink(ours.c_str());
  ASSERT_EQ(::symlink("/dev/pts/nonexistent", ours.c_str()), 0) << "needs to write /dev";
  auto argv = args("echo");
  argv[4] = "com1,/dev/nmdm" + unit + "A";
  CoreProcess core(argv);
  ASSERT_TRUE(core.waitFor("console: " + ours)) << core.output();
  int terminal = -1;
  for (int i = 0; i < 100 && terminal < 0; ++i) {
    terminal = ::open(ours.c_str(), O_RDWR | O_NOCTTY);
    if (terminal < 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_GE(terminal, 0) << core.output();
  ASSERT_EQ(::write(terminal, "via-nmdm\n", 9), 9);
  std::string seen;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (seen.find("echo: via-nmdm") == std::string::npos && std::chrono::steady_clock::now() < deadline) {
    pollfd ready{terminal, POLLIN, 0};
    if (::poll(&ready, 1, 100) <= 0) continue;
    char buffer[512];
    ssize_t count = ::read(terminal, buffer, sizeof(buffer));
    if (count <= 0) break;
    seen.append(buffer, static_cast<size_t>(count));
  }
  ::close(terminal);
  EXPECT_NE(seen.find("echo: via-nmdm"), std::string::npos) << seen;
  EXPECT_EQ(core.wait(), GUEST_PASSED) << core.output();
  struct stat st {};
  EXPECT_NE(::lstat(ours.c_str(), &st), 0) << ours << " outlived the VM";
  // A name that leads somewhere is another VM's: refused, left alone.
  ASSERT_EQ(::symlink("/dev/null", ours.c_str()), 0);
  CoreProcess refused(argv);
  EXPECT_EQ(refused.wait(), 4);
  EXPECT_NE(refused.err().find(ours + " is in use"), std::string::npos) << refused.err();
  EXPECT_EQ(::lstat(ours.c_str(), &st), 0);
  ::unlink(ours.c_str());
}

TEST_F(GuestBoot, ConsoleToLogFile) {
  std::string path = ::testing::TempDir() + "/cellvisor-console-" + std::to_string(::getpid()) + ".log";
  ::unlink(path.c_str());
  auto argv = args("hello");
  argv[4] = "com1,file=" + path;
  CoreProcess core(argv);
  EXPECT_EQ(core.wait(), GUEST_PASSED) << core.output();
  std::ifstream log(path);
  std::stringstream text;
  text << log.rdbuf();
  EXPECT_NE(text.str().find("Hello from the cellvisor test guest"), std::string::npos) << text.str();
  ::unlink(path.c_str());
}

TEST_F(GuestBoot, VirtioBlkServerServesTheGuest) {
  std::string disk = ::testing::TempDir() + "/cellvisor-guest-disk-" + std::to_string(::getpid()) + ".img";
  {
    std::ofstream image(disk, std::ios::binary);
    image.seekp((16 << 20) - 1);
    image.put(0);
  }
  CoreProcess core(args("virtio-blk", {"-c", "2", "-s", "4,virtio-blk," + disk}));
  EXPECT_EQ(core.wait(), GUEST_PASSED) << core.output();
  EXPECT_NE(core.out().find("virtio-blk: capacity 32768 sectors"), std::string::npos) << core.out();
  EXPECT_NE(core.out().find("ok - virtio-blk: pattern read back intact"), std::string::npos) << core.out();
  // The pattern is on the host file: byte i of sector 0 is i * 31.
  std::ifstream image(disk, std::ios::binary);
  char first[4];
  image.read(first, 4);
  EXPECT_EQ(static_cast<uint8_t>(first[1]), 31);
  EXPECT_EQ(static_cast<uint8_t>(first[3]), 93);
  ::unlink(disk.c_str());
}

// The crash test: the guest writes and verifies blocks in a loop while the
// host kill -9's its disk's server at random moments. Every kill is followed
// by a restart from the state segment; the guest must see no error.
// `test` is the guest's (e.g. "nvme-stress"), `checks` how its checks are
// named ("nvme stress").
void runDiskStressAcrossKills(const std::string& emulation, const std::string& test,
                              const std::string& checks, int rounds) {
  std::string disk = ::testing::TempDir() + "/cellvisor-crash-disk-" + std::to_string(::getpid()) + ".img";
  {
    std::ofstream image(disk, std::ios::binary);
    image.seekp((16 << 20) - 1);
    image.put(0);
  }
  auto argv = GuestBoot::args(test, {"-s", "4," + emulation + "," + disk});
  argv[8] = "test=" + test + " rounds=" + std::to_string(rounds);
  CoreProcess core(argv);
  // Let the guest start, then kill: the run must outlast the kills.
  core.waitFor("guest: running test");
  std::mt19937 random(static_cast<unsigned>(::getpid()));
  int kills = 0;
  pid_t previous = 0;
  auto newInstanceSince = std::chrono::steady_clock::now();
  for (int attempt = 0; kills < 25 && attempt < 2000; ++attempt) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    core.poll();
    auto children = deviceServersOf(core.pid());
    if (children.empty()) continue;  // Restarting.
    if (children.front() != previous) {
      // A new instance: let it live a random 300-600 ms, past what the
      // supervisor treats as dying young (a crash loop), then kill it.
      previous = children.front();
      newInstanceSince = std::chrono::steady_clock::now() + std::chrono::milliseconds(300 + random() % 300);
      continue;
    }
    if (std::chrono::steady_clock::now() >= newInstanceSince && ::kill(previous, SIGKILL) == 0) {
      ++kills;
      newInstanceSince = std::chrono::steady_clock::time_point::max();
    }
  }
  EXPECT_GE(kills, 20);
  EXPECT_EQ(core.wait(std::chrono::seconds(120)), GUEST_PASSED) << core.output();
  EXPECT_NE(core.out().find("ok - " + checks + ": no I/O errors"), std::string::npos) << core.out();
  EXPECT_NE(core.out().find("ok - " + checks + ": every block verified"), std::string::npos) << core.out();
  EXPECT_EQ(core.out().find("not ok"), std::string::npos) << core.out();
  size_t restarts = 0;
  for (size_t at = 0;
       (at = core.err().find("killed by signal 9 (Killed); restarting", at)) != std::string::npos; ++at) {
    ++restarts;
  }
  EXPECT_EQ(restarts, static_cast<size_t>(kills)) << core.err();
  ::unlink(disk.c_str());
}

TEST_F(GuestBoot, VirtioBlkSurvivesRepeatedServerKills) {
  runDiskStressAcrossKills("virtio-blk", "virtio-blk-stress", "virtio-blk stress", 24);
}

TEST_F(GuestBoot, AhciSurvivesRepeatedServerKills) {
  runDiskStressAcrossKills("ahci-hd", "ahci-stress", "ahci stress", 24);
}

// The test guest's own driver for `emulation` on a 1 MiB disk: the guest
// test `test` passes, its console shows each of `lines`, and the pattern it
// wrote reached the image.
void runGuestDiskPattern(const std::string& emulation, const std::string& test,
                         const std::vector<std::string>& lines) {
  std::string disk =
      ::testing::TempDir() + "/cellvisor-" + test + "-disk-" + std::to_string(::getpid()) + ".img";
  {
    std::ofstream image(disk, std::ios::binary);
    image.seekp((1 << 20) - 1);
    image.put(0);
  }
  CoreProcess core(GuestBoot::args(test, {"-s", "4," + emulation + "," + disk}));
  EXPECT_EQ(core.wait(std::chrono::seconds(60)), GUEST_PASSED) << core.output();
  for (const auto& line : lines)
    EXPECT_NE(core.out().find(line), std::string::npos) << line << ": " << core.out();
  std::ifstream image(disk, std::ios::binary);
  char first[4];
  image.read(first, 4);
  EXPECT_EQ(static_cast<uint8_t>(first[1]), 37) << "the pattern reached the image";
  ::unlink(disk.c_str());
}

// The test guest's own AHCI driver: HBA reset, port start, IDENTIFY, a
// pattern written and read back, a past-the-end read refused, a flush.
TEST_F(GuestBoot, AhciIdentifiesAndServesAPattern) {
  runGuestDiskPattern("ahci-hd", "ahci",
                      {"ahci: 2048 sectors, LBA48 yes", "ok - ahci: pattern read back intact",
                       "ok - ahci: past-the-end read fails with ID not found"});
}

TEST_F(GuestBoot, NvmeSurvivesRepeatedServerKills) {
  runDiskStressAcrossKills("nvme", "nvme-stress", "nvme stress", 24);
}

// The test guest's own NVMe driver: enable, identify, an I/O queue pair, a
// pattern written and read back, an out-of-range read refused.
TEST_F(GuestBoot, NvmeIdentifiesAndServesAPattern) {
  runGuestDiskPattern("nvme", "nvme",
                      {"nvme: namespace 1: 2048 blocks of 512 bytes", "ok - nvme: pattern read back intact",
                       "ok - nvme: past-the-end read fails with LBA out of range"});
}

// A NIC on a tap in a private network namespace, the tap on a bridge with
// an address: the guest resolves the bridge by ARP and pings it, and keeps
// pinging while the host kill -9's its virtio-net server twice.
TEST_F(GuestBoot, VirtioNetReachesTheHostAcrossServerKills) {
  if (auto reason = networkUnavailableReason(); !reason.empty()) GTEST_SKIP() << reason;
  std::string script = ::testing::TempDir() + "/cellvisor-net-" + std::to_string(::getpid()) + ".sh";
  std::ofstream(script)
      << "set -e\nip link set lo up\nip link add br0 type bridge\n"
         "ip addr add 10.77.0.1/24 dev br0\nip link set br0 up\nip tuntap add tap0 mode tap\n"
         "ip link set tap0 master br0 up\nexec \"$@\"\n";
  auto argv = args("virtio-net", {"-s", "5,virtio-net,tap0"});
  argv[8] = "test=virtio-net ip=10.77.0.2 peer=10.77.0.1 pings=100";
  argv.insert(argv.begin(), {"/usr/bin/unshare", "-n", "/bin/sh", script});
  CoreProcess core(argv);  // unshare and sh exec: the pid becomes the core's.
  ASSERT_TRUE(core.waitFor("ok - virtio-net: ping answered by the peer")) << core.output();
  int kills = 0;
  for (int round = 0; round < 2; ++round) {
    std::this_thread::sleep_for(std::chrono::milliseconds(400));
    auto children = deviceServersOf(core.pid());
    if (!children.empty() && ::kill(children.front(), SIGKILL) == 0) ++kills;
  }
  EXPECT_EQ(kills, 2);
  EXPECT_EQ(core.wait(std::chrono::seconds(60)), GUEST_PASSED) << core.output();
  EXPECT_NE(core.out().find("ok - virtio-net: ARP reply from the peer"), std::string::npos) << core.out();
  EXPECT_NE(core.out().find("virtio-net: 100 pings, 0 unanswered"), std::string::npos) << core.out();
  EXPECT_NE(core.err().find("virtio-net-5.0: pid"), std::string::npos) << core.err();
  ::unlink(script.c_str());
}

TEST_F(GuestBoot, BadInputGetsAClearError) {
  struct Case {
    std::vector<std::string> argv;
    const char* message;
  };
  std::vector<Case> cases = {
      {{coreBinary(), "--kernel", "/etc/hostname", "vm"}, "bad magic"},
      {{coreBinary(), "--kernel", "/nonexistent/kernel", "vm"}, "cannot open"},
      {{coreBinary(), "--kernel", "/dev/zero", "vm"},
       "kernel /dev/zero: not a regular file (a character device)"},
      {{coreBinary(), "--kernel", guestImage(), "--initrd", "/dev/urandom", "vm"},
       "initrd /dev/urandom: not a regular file"},
      {{coreBinary(), "--kernel", guestImage(), "--initrd", "/", "vm"},
       "initrd /: not a regular file (a directory)"},
      {{coreBinary(), "--kernel", guestImage(), "-o", "memroy.size=1G", "vm"},
       "memroy.size: unknown configuration key"},
      {{coreBinary(), "--kernel", guestImage(), "-m", "3M", "vm"}, "multiple of 2 MiB"},
      {{coreBinary(), "--kernel", guestImage(), "-s", "5,virtio-gpu", "vm"},
       "-s 5,virtio-gpu: pci.0.5.0.device: unknown emulation 'virtio-gpu'; this build has: hostbridge, "
       "amd_hostbridge, lpc, ahci, ahci-cd, ahci-hd, fbuf, nvme, virtio-blk, virtio-net"},
      {{coreBinary(), "--kernel", guestImage(), "-s", "5,xhci,tablet", "vm"},
       "'xhci' is a bhyve emulation cellvisor does not have yet (this build has: hostbridge, "
       "amd_hostbridge, lpc, ahci, ahci-cd, ahci-hd, fbuf, nvme, virtio-blk, virtio-net)"},
      {{coreBinary(), "--kernel", guestImage(), "-s", "5,ahci-cd,/dev/zero", "vm"},
       "-s 5:0,ahci-cd: /dev/zero: not a regular file or block device"},
      {{coreBinary(), "--kernel", guestImage(), "-s", "5,ahci,hd:/etc/hostname,cd:/nonexistent.iso", "vm"},
       "-s 5:0,ahci: port 1: /nonexistent.iso: No such file or directory"},
      {{coreBinary(), "--kernel", guestImage(), "-s", "5,ahci,ro,hd:/etc/hostname", "vm"},
       "ahci: expected hd:PATH or cd:PATH, got 'ro'"},
      {{coreBinary(), "--kernel", guestImage(), "-s", "5,ahci,hd:/etc/hostname,cd:/etc/hostname,nmrr=7",
        "vm"},
       "ahci: port 1: nmrr:"},
      {{coreBinary(), "--kernel", guestImage(), "-s", "5,ahci-hd,/etc/hostname,cd:/etc/hostname", "vm"},
       "ahci-hd has one port"},
      {{coreBinary(), "--kernel", guestImage(), "-s", "5,ahci-hd,/etc/hostname,nmrr=7", "vm"}, "ahci: nmrr:"},
      {{coreBinary(), "--kernel", guestImage(), "--uid", "0:0", "vm"},
       "sandbox.identity: expected UID:GID, neither 0"},
      {{coreBinary(), "--kernel", guestImage(), "--uid", "1000", "vm"},
       "sandbox.identity: expected UID:GID, neither 0"},
      {{coreBinary(), "--kernel", guestImage(), "--sandbox-fault", "reboot", "vm"},
       "sandbox.fault: expected open, socket, execve or signal"},
      {{coreBinary(), "--kernel", guestImage(), "-l", "com1,carrier-pigeon", "vm"}, "bad serial backend"},
      {{coreBinary(), "--kernel", guestImage(), "-l", "com1,listening-fd=2", "vm"}, "bad descriptor '2'"},
      {{coreBinary(), "--kernel", guestImage(), "-l", "com1,listening-fd=99", "vm"},
       "listening-fd=99 is not a listening socket"},
      {{coreBinary(), "--kernel", guestImage(), "../../etc"}, "invalid VM name"},
      {{coreBinary(), "--kernel", guestImage(), "-c", "0", "vm"}, "vCPU count"},
      {{coreBinary(), "--kernel", guestImage(), "-s", "4,virtio-blk,/nonexistent/disk.img", "vm"},
       "-s 4:0,virtio-blk: /nonexistent/disk.img: No such file or directory"},
      {{coreBinary(), "--kernel", guestImage(), "-s", "4,virtio-blk,/dev/null,sectorsize=3", "vm"},
       "sectorsize"},
      {{coreBinary(), "--kernel", guestImage(), "-s", "4,virtio-blk", "vm"}, "no disk image path"},
      {{coreBinary(), "--kernel", guestImage(), "-s", "4,virtio-blk,/proc/self/mem", "vm"},
       "-s 4:0,virtio-blk: /proc/self/mem: the disk image is empty (0 bytes)"},
      {{coreBinary(), "--kernel", guestImage(), "-s", "4,virtio-blk,/dev/zero", "vm"},
       "-s 4:0,virtio-blk: /dev/zero: not a regular file or block device"},
  };
  for (const auto& c : cases) {
    CoreProcess core(c.argv);
    EXPECT_EQ(core.wait(), 4) << c.message << ": " << core.output();
    EXPECT_NE(core.err().find(c.message), std::string::npos) << core.err();
  }
}

}  // namespace
}  // namespace cellvisor::testing
