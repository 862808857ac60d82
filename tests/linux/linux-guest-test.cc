// Tier 4 on this host: Linux 6.1 (tests/linux/build-kernel.sh) boots on the
// real core, and its own virtio_blk, virtio_net and ext2 drivers drive our
// device servers while the host kill -9's them and live-upgrades them. The
// guest's /init (tests/linux/init) prints one "linux-guest:" line per fact.
#include "tests/linux/linux-guest.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <regex>
#include <thread>

#include "core/kvm/hypervisor.h"
#include "tests/boot/core-process.h"
#include "tests/vmmd/vmmd-fixture.h"

namespace cellvisor::testing {
namespace {

using namespace std::chrono_literals;

// Kills the server holding `path` at random moments, at most `most` times
// (each instance lives 300-900 ms first, past what the supervisor counts as
// a crash loop), until `until` appears on the console; returns the kills.
int killServerUntil(CoreProcess& core, pid_t parent, const std::string& path, const std::string& until,
                    int most, std::chrono::seconds timeout) {
  std::mt19937 random(static_cast<unsigned>(::getpid()));
  auto deadline = std::chrono::steady_clock::now() + timeout;
  int kills = 0;
  pid_t previous = 0;
  auto killAt = std::chrono::steady_clock::time_point::max();
  while (core.out().find(until) == std::string::npos && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
    core.poll();
    if (kills == most) continue;
    pid_t server = serverHolding(parent, path);
    if (server == 0) continue;  // Restarting.
    if (server != previous) {
      previous = server;
      killAt = std::chrono::steady_clock::now() + std::chrono::milliseconds(300 + random() % 600);
    } else if (std::chrono::steady_clock::now() >= killAt && ::kill(server, SIGKILL) == 0) {
      ++kills;
      killAt = std::chrono::steady_clock::time_point::max();
    }
  }
  return kills;
}

// Boot to init; virtio-blk, NVMe and an AHCI disk under a checksummed
// pattern, ext2, an ISO 9660 CD on the AHCI controller's second port;
// virtio-net pinging the host's bridge; the blk server killed 20 times
// during its pattern, the NVMe and AHCI servers 10 times each during
// theirs, and the net server during the pings. Nothing may reach the
// guest: no I/O error in its kernel log, every checksum right, each image on the host exactly the
// pattern the guest wrote, the filesystem clean.
TEST_F(LinuxGuest, DriversDisksAndNetworkAcrossServerKills) {
  if (auto reason = networkUnavailableReason(); !reason.empty()) GTEST_SKIP() << reason;
  constexpr int ROUNDS = 8;
  constexpr int KIB = 256;
  std::string pattern = scratch("pattern.img", 32);
  std::string nvmePattern = scratch("nvme.img", 32);
  std::string ahciPattern = scratch("ahci.img", 32);
  // A CD: an ISO 9660 image with one file of random bytes, made with xorriso.
  std::string cdTree =
      (fs::path(::testing::TempDir()) / ("cellvisor-linux-cd-" + std::to_string(::getpid()))).string();
  fs::remove_all(cdTree);
  fs::create_directories(cdTree);
  std::string cdData(512 << 10, '\0');
  std::mt19937 cdRandom(static_cast<unsigned>(::getpid()));
  for (auto& byte : cdData) byte = static_cast<char>(cdRandom());
  std::ofstream(cdTree + "/data.bin", std::ios::binary) << cdData;
  std::string iso = scratch("cd.iso", 0);
  ASSERT_EQ(
      std::system(("xorriso -as mkisofs -quiet -o '" + iso + "' '" + cdTree + "' >/dev/null 2>&1").c_str()),
      0)
      << "xorriso (apt-get install xorriso)";
  fs::remove_all(cdTree);
  std::string source = scratch("source.img", 32);
  writePatternSource(source, KIB, ROUNDS);
  std::string filesystem = scratch("ext2.img", 32);
  std::string script =
      (fs::path(::testing::TempDir()) / ("cellvisor-linux-net-" + std::to_string(::getpid()))).string();
  std::ofstream(script)
      << "set -e\nip link set lo up\nip link add br0 type bridge\n"
         "ip addr add 10.78.0.1/24 dev br0\nip link set br0 up\nip tuntap add tap0 mode tap\n"
         "ip link set tap0 master br0 up\nexec \"$@\"\n";
  auto argv =
      coreArgs({"-s", "4,virtio-blk," + pattern, "-s", "5,virtio-blk," + source + ",ro", "-s",
                "6,virtio-net,tap0", "-s", "7,virtio-blk," + filesystem, "-s", "8,nvme," + nvmePattern, "-s",
                "9,ahci,hd:" + ahciPattern + ",cd:" + iso, "-s", "10,fbuf,tcp=127.0.0.1:0,w=800,h=600"},
               "linux-guest.steps=drivers,input,blk,fs,cdrom,net linux-guest.blk=vda,nvme0n1,sda "
               "linux-guest.blk-source=vdb "
               "linux-guest.blk-kib=" +
                   std::to_string(KIB) + " linux-guest.blk-rounds=" + std::to_string(ROUNDS) +
                   " linux-guest.fs=vdc linux-guest.ip=10.78.0.2 linux-guest.peer=10.78.0.1 "
                   "linux-guest.pings=100 linux-guest.input-seconds=6 vt.global_cursor_default=0");
  argv.insert(argv.begin(), {"/usr/bin/unshare", "-n", "/bin/sh", script});
  auto started = std::chrono::steady_clock::now();
  CoreProcess core(argv);  // unshare and sh exec: the pid becomes the core's.
  // The display: Linux's bochs-drm (in the 800x600 our EDID prefers) and
  // its console, seen through a VNC client in the VM's network namespace,
  // which also types h and i (h as a scan code, i as a keysym), moves the
  // pointer right 30 and up 20, and clicks.
  ASSERT_TRUE(core.waitFor("linux-guest: input: ready", BOOT_TIMEOUT)) << core.output();
  auto init = std::chrono::steady_clock::now() - started;
  std::smatch vnc;
  std::string log = core.output();
  ASSERT_TRUE(std::regex_search(log, vnc, std::regex("VNC server on 127\\.0\\.0\\.1 port ([0-9]+)"))) << log;
  std::string screen = scratch("screen.ppm", 0);
  std::string client =
      "nsenter -t " + std::to_string(core.pid()) + " -n " + std::getenv("CELLVISOR_VNC_CAPTURE") +
      " --expect 800x600 --hold-ms 2000 --key 0x68/0x23 --key 0x69 --pointer 100,100,0 --pointer 130,80,0"
      " --pointer 130,80,1 --pointer 130,80,0 127.0.0.1:" +
      std::string(vnc[1]) + " " + screen;
  EXPECT_EQ(std::system(client.c_str()), 0) << client;
  size_t lit = 0;
  {
    std::ifstream picture(screen, std::ios::binary);
    std::string magic;
    int width = 0, height = 0, maxValue = 0;
    picture >> magic >> width >> height >> maxValue;
    picture.get();
    for (char byte; picture.get(byte);) lit += byte != 0;
  }
  ASSERT_TRUE(core.waitFor("linux-guest: blk: start", BOOT_TIMEOUT)) << core.output();
  int blkKills = killServerUntil(core, core.pid(), pattern, "linux-guest: blk: vda: done", 20, 300s);
  int nvmeKills = killServerUntil(core, core.pid(), nvmePattern, "linux-guest: blk: nvme0n1: done", 10, 300s);
  int ahciKills = killServerUntil(core, core.pid(), ahciPattern, "linux-guest: blk: sda: done", 10, 300s);
  // The ext2 step lies between: mke2fs, 17 files, a remount and a check
  // take 60-150 s of emulated kernel time, depending on the host's load.
  ASSERT_TRUE(core.waitFor("linux-guest: net: start", 300s)) << core.output();
  int netKills = killServerUntil(core, core.pid(), "/dev/net/tun", "linux-guest: net: done", 3, 60s);
  EXPECT_EQ(core.wait(120s), 1) << "the guest powers off through ACPI S5: " << core.output();
  auto total = std::chrono::steady_clock::now() - started;
  std::string out = core.out();

  EXPECT_NE(out.find("linux-guest: init reached: Linux 6.1"), std::string::npos) << out;
  EXPECT_NE(out.find("2 CPUs"), std::string::npos) << out;
  EXPECT_NE(out.find("id 0x0002 driver virtio_blk"), std::string::npos) << out;
  EXPECT_NE(out.find("id 0x0001 driver virtio_net"), std::string::npos) << out;
  EXPECT_NE(out.find("PCI-MSI"), std::string::npos) << "virtio-pci with MSI-X vectors: " << out;
  EXPECT_NE(out.find("class 0x010802 driver nvme"), std::string::npos) << out;
  EXPECT_NE(out.find("nvme0q1"), std::string::npos) << "an NVMe I/O queue on its MSI-X vector: " << out;
  EXPECT_NE(core.err().find("nvme-8.0: 32 doorbells switched to ioeventfds"), std::string::npos)
      << "Linux gave the NVMe server shadow doorbells: " << core.err();
  EXPECT_NE(out.find("class 0x010601 driver ahci"), std::string::npos)
      << "Linux's ahci driver bound: " << out;
  EXPECT_TRUE(std::regex_search(out, std::regex("linux-guest: interrupt [^\n]*PCI-MSI[^\n]*ahci")))
      << "the AHCI port on its MSI vector: " << out;
  EXPECT_NE(out.find("linux-guest: cdrom: data.bin sha256 " + sha256(cdData)), std::string::npos)
      << "the CD's file, read through libata's ATAPI and sr: " << out;
  EXPECT_NE(out.find("linux-guest: all steps passed"), std::string::npos) << out;
  // Linux's drivers for the display and its input, and what they saw.
  EXPECT_NE(out.find("driver bochs-drm"), std::string::npos) << out;
  EXPECT_NE(out.find("linux-guest: display: fb0 bochs-drmdrmfb 800,600"), std::string::npos)
      << "bochs-drm took the mode our EDID prefers: " << out;
  EXPECT_NE(out.find("display: card0-Virtual-1 modes: 800x600 1024x768 800x600 640x480"), std::string::npos)
      << "the EDID's preferred mode first, then its established ones: " << out;
  EXPECT_GT(lit, 1000u) << "the framebuffer console's text, through VNC";
  EXPECT_NE(out.find(": AT Translated Set 2 keyboard"), std::string::npos) << out;
  EXPECT_NE(out.find("PS/2 Generic Explorer Mouse"), std::string::npos)
      << "psmouse unlocked the wheel: " << out;
  for (const char* event : {"input: key 35 1", "input: key 35 0", "input: key 23 1", "input: key 23 0",
                            "input: key 272 1", "input: key 272 0"})
    EXPECT_NE(out.find(std::string("linux-guest: ") + event), std::string::npos) << event << ": " << out;
  int movedX = 0, movedY = 0;
  std::regex motion("linux-guest: input: motion ([01]) (-?[0-9]+)");
  for (auto it = std::sregex_iterator(out.begin(), out.end(), motion); it != std::sregex_iterator(); ++it)
    ((*it)[1] == "0" ? movedX : movedY) += std::stoi((*it)[2]);
  EXPECT_EQ(movedX, 30) << out;
  EXPECT_EQ(movedY, -20) << "REL_Y grows downwards: " << out;

  // Every round read back what it wrote; each image holds exactly the last.
  for (const char* disk : {"vda", "nvme0n1", "sda"}) {
    EXPECT_EQ(unmatchedRounds(out, disk, KIB, ROUNDS), "")
        << disk << ": rounds whose read-back checksum is wrong: " << out;
    EXPECT_NE(out.find(std::string("blk: ") + disk + ": done: " + std::to_string(ROUNDS) +
                       " rounds written and read back"),
              std::string::npos)
        << out;
  }
  EXPECT_TRUE(readPrefix(pattern, KIB << 10) == patternBytes(KIB, ROUNDS))
      << "the virtio-blk image is not the last round";
  EXPECT_TRUE(readPrefix(nvmePattern, KIB << 10) == patternBytes(KIB, ROUNDS))
      << "the NVMe image is not the last round";
  EXPECT_TRUE(readPrefix(ahciPattern, KIB << 10) == patternBytes(KIB, ROUNDS))
      << "the AHCI image is not the last round";
  EXPECT_NE(out.find("fs: done: 17 files verified after a remount"), std::string::npos) << out;
  CoreProcess fsck({"/sbin/e2fsck", "-fn", filesystem});
  EXPECT_EQ(fsck.wait(60s), 0) << "the guest's ext2 is clean on the host: " << fsck.output();
  CoreProcess debugfs({"/sbin/debugfs", "-R", "cat /from-guest", filesystem});
  debugfs.wait(60s);
  EXPECT_NE(debugfs.out().find("written by the cellvisor linux guest"), std::string::npos)
      << debugfs.output();

  std::smatch lost;
  std::string netLine = out.substr(out.find("linux-guest: net: done"));
  ASSERT_TRUE(std::regex_search(netLine, lost, std::regex(R"(100 pings, (\d+) unanswered)"))) << out;
  int unanswered = std::stoi(lost[1]);
  // A restart may drop the frames in flight at the kill, never more than a
  // ping per kill.
  EXPECT_LE(unanswered, netKills) << out;

  EXPECT_EQ(blkKills, 20) << "the pattern phase ended before 20 kills: " << out;
  EXPECT_EQ(nvmeKills, 10) << "the NVMe pattern phase ended before 10 kills: " << out;
  EXPECT_EQ(ahciKills, 10) << "the AHCI pattern phase ended before 10 kills: " << out;
  EXPECT_EQ(netKills, 3) << "the pings ended before 3 kills: " << out;
  size_t restarts = 0;
  for (size_t at = 0;
       (at = core.err().find("killed by signal 9 (Killed); restarting", at)) != std::string::npos; ++at) {
    ++restarts;
  }
  EXPECT_EQ(restarts, static_cast<size_t>(blkKills + nvmeKills + ahciKills + netKills)) << core.err();
  std::printf(
      "linux guest: /init after %.1f s, powered off after %.1f s; blk server killed %d times, NVMe server "
      "%d times, AHCI server %d times, net server %d times, %d of 100 pings unanswered\n",
      std::chrono::duration<double>(init).count(), std::chrono::duration<double>(total).count(), blkKills,
      nvmeKills, ahciKills, netKills, unanswered);
  ::unlink(script.c_str());
}

// The same guest the way a user runs it: vmmd and vmctl, loader="kernel".
// While Linux writes and verifies its disk, `vmctl device restart` replaces
// the blk server by another binary (a live upgrade): the guest must see
// nothing, and the image must hold exactly what it wrote.
class LinuxGuestOnVmmd : public Vmctl {
 protected:
  void SetUp() override {
    if (auto reason = linuxUnavailableReason(kernel, initramfs); !reason.empty()) GTEST_SKIP() << reason;
    Vmctl::SetUp();
  }
  std::string kernel;
  std::string initramfs;
};

TEST_F(LinuxGuestOnVmmd, LiveUpgradeOfTheBlkServerIsInvisibleToLinux) {
  constexpr int ROUNDS = 6;
  constexpr int KIB = 256;
  std::ofstream(root / "store" / ".templates" / "linux.conf")
      << "loader=\"kernel\"\nkernel=\"" << kernel << "\"\nkernel_initrd=\"" << initramfs
      << "\"\nkernel_cmdline=\""
      << kernelCommandLine(
             "linux-guest.steps=drivers,blk linux-guest.blk=vda linux-guest.blk-source=nvme0n1 "
             "linux-guest.blk-kib=" +
             std::to_string(KIB) + " linux-guest.blk-rounds=" + std::to_string(ROUNDS))
      << "\"\ncpu=\"2\"\nmemory=\"256M\"\ndisk0_type=\"virtio-blk\"\ndisk0_name=\"disk0.img\"\n"
         "disk0_size=\"32M\"\ndisk1_type=\"nvme\"\ndisk1_name=\"source.img\"\ndisk1_size=\"32M\"\n"
         "comports=\"com1\"\n";
  ASSERT_EQ(vmctl({"create", "-t", "linux", "tux"}).first, 0);
  writePatternSource((root / "store" / "tux" / "source.img").string(), KIB, ROUNDS);
  ASSERT_EQ(vmctl({"start", "tux"}).first, 0);
  int console = connectConsole("tux");
  ASSERT_GE(console, 0);
  std::string seen = readUntil(console, "linux-guest: blk: start", BOOT_TIMEOUT);
  ASSERT_NE(seen.find("linux-guest: blk: start"), std::string::npos) << seen << log("tux");
  pid_t before = serverPid("tux");
  ASSERT_GT(before, 0);
  fs::path upgraded = copyOfServerBinary(before);
  std::this_thread::sleep_for(std::chrono::seconds(2));  // Mid-pattern.
  auto [status, output] = vmctl({"device", "restart", "tux", "virtio-blk-4.0", upgraded.string()});
  ASSERT_EQ(status, 0) << output;
  pid_t after = waitForNewServer("tux", before);
  ASSERT_GT(after, 0);
  EXPECT_NE(after, before);
  EXPECT_EQ(fs::read_symlink("/proc/" + std::to_string(after) + "/exe"), upgraded);

  seen += readUntil(console, "linux-guest: blk: vda: done", std::chrono::seconds(300));
  seen += readUntil(console, "reboot: Power down", std::chrono::seconds(60));
  ::close(console);
  EXPECT_NE(seen.find("linux-guest: all steps passed"), std::string::npos) << seen;
  EXPECT_EQ(unmatchedRounds(seen, "vda", KIB, ROUNDS), "")
      << "rounds whose read-back checksum is wrong: " << seen;
  EXPECT_NE(seen.find("class 0x010802 driver nvme"), std::string::npos)
      << "the source disk, over NVMe: " << seen;
  std::string info = waitStopped("tux");
  EXPECT_NE(info.find("last exit: poweroff"), std::string::npos) << info << log("tux");
  EXPECT_TRUE(readPrefix((root / "store" / "tux" / "disk0.img").string(), KIB << 10) ==
              patternBytes(KIB, ROUNDS))
      << "the image is not the last round";
  EXPECT_EQ(vmctl({"destroy", "tux"}).first, 0);
}

}  // namespace
}  // namespace cellvisor::testing
