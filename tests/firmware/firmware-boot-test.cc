// Firmware nobody here wrote, on the real core: Debian's SeaBIOS boots from
// each disk server through its own drivers (virtio-blk, NVMe) and serves the
// disk-check boot sector's int 13h reads, also while the server is killed.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <iterator>
#include <random>
#include <thread>

#include "core/kvm/hypervisor.h"
#include "tests/boot/core-process.h"
#include "tests/boot/guest-boot.h"
#include "tests/firmware/disk-check-image.h"

namespace cellvisor::testing {
namespace {

constexpr int DISK_CHECK_PASSED = GUEST_PASSED;  // The boot sector writes 0x10 to debug-exit.
std::string tempPath(const std::string& name) {
  return ::testing::TempDir() + "/cellvisor-" + name + "-" + std::to_string(::getpid());
}

std::vector<std::string> firmwareArgs(const std::string& emulation, const std::string& disk) {
  return {coreBinary(),           "-m",     "128M", "-s", "4," + emulation + "," + disk, "-l",
          "bootrom," + seabios(), "fw-test"};
}

size_t count(const std::string& haystack, const std::string& needle) {
  size_t found = 0;
  for (size_t at = 0; (at = haystack.find(needle, at)) != std::string::npos; at += needle.size()) ++found;
  return found;
}

class SeaBiosDisk : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (auto reason = kvmUnavailableReason(); !reason.empty()) GTEST_SKIP() << reason;
    if (::access(seabios().c_str(), R_OK) != 0)
      GTEST_SKIP() << seabios() << " missing (apt-get install seabios)";
  }
};

// SeaBIOS finds the disk on PCI, assigns its BARs, boots LBA 0 from it and
// serves 1 MiB of int 13h reads twice; its log reaches ours.
TEST_P(SeaBiosDisk, BootsTheBootSectorAndServesItsReads) {
  std::string disk = tempPath("fw-disk");
  writeDiskCheckImage(disk, 2048, 2);
  CoreProcess core(firmwareArgs(GetParam(), disk));
  EXPECT_EQ(core.wait(std::chrono::seconds(120)), DISK_CHECK_PASSED) << core.output();
  EXPECT_NE(core.err().find("firmware: SeaBIOS (version"), std::string::npos) << core.err();
  EXPECT_NE(core.err().find("firmware: Booting from Hard Disk"), std::string::npos) << core.err();
  // It installed the core's ACPI tables from the table-loader and walked them
  // (RSDP -> XSDT -> FADT -> DSDT), and programmed Q35's ECAM window.
  EXPECT_NE(core.err().find("firmware: ACPI: parse DSDT at"), std::string::npos) << core.err();
  EXPECT_NE(core.err().find("firmware: PCIe: using q35 mmconfig at 0xb0000000"), std::string::npos);
  EXPECT_EQ(count(core.err(), "firmware: disk-check: round ok"), 2u) << core.err();
  ::unlink(disk.c_str());
}

// kill -9 of the disk's server while SeaBIOS's driver reads for the boot
// sector: every kill restarts the server, and int 13h never fails.
TEST_P(SeaBiosDisk, Int13ReadsSurviveServerKills) {
  std::string disk = tempPath("fw-kill-disk");
  writeDiskCheckImage(disk, 1024, 16);
  CoreProcess core(firmwareArgs(GetParam(), disk));
  ASSERT_TRUE(core.waitFor("firmware: Booting from 0000:7c00")) << core.output();
  std::mt19937 random(static_cast<unsigned>(::getpid()));
  int kills = 0;
  pid_t previous = 0;
  auto killAt = std::chrono::steady_clock::time_point::max();
  while (kills < 8 && core.err().find("debug-exit") == std::string::npos) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    core.poll();
    auto children = deviceServersOf(core.pid());
    if (children.empty()) continue;  // Restarting.
    if (children.front() != previous) {
      // Past the supervisor's "dying young" window, then a random moment.
      previous = children.front();
      killAt = std::chrono::steady_clock::now() + std::chrono::milliseconds(300 + random() % 400);
    } else if (std::chrono::steady_clock::now() >= killAt && ::kill(previous, SIGKILL) == 0) {
      ++kills;
      killAt = std::chrono::steady_clock::time_point::max();
    }
  }
  EXPECT_GE(kills, 4) << "the guest finished before the kills could land";
  EXPECT_EQ(core.wait(std::chrono::seconds(180)), DISK_CHECK_PASSED) << core.output();
  EXPECT_EQ(count(core.err(), "firmware: disk-check: round ok"), 16u) << core.err();
  EXPECT_EQ(count(core.err(), "killed by signal 9 (Killed); restarting"), static_cast<size_t>(kills))
      << core.err();
  ::unlink(disk.c_str());
}

// El Torito from an AHCI CD on port 1 of a controller whose port 0 holds a
// blank disk (bhyve's `-s 4,ahci,hd:A,cd:B`): SeaBIOS probes both ports,
// finds the ATAPI drive, reads the boot catalog and the no-emulation image
// through its own AHCI driver, and the image then reads a file on the same
// CD through int 13h — also while the server is killed underneath.
TEST(SeaBiosCd, BootsAnElToritoIsoFromAhciCd) {
  if (auto reason = kvmUnavailableReason(); !reason.empty()) GTEST_SKIP() << reason;
  if (::access(seabios().c_str(), R_OK) != 0)
    GTEST_SKIP() << seabios() << " missing (apt-get install seabios)";
  std::string iso = tempPath("fw-cd.iso");
  if (!writeDiskCheckIso(iso, 12)) GTEST_SKIP() << "xorriso missing (apt-get install xorriso)";
  std::string blank = tempPath("fw-blank.img");
  std::ofstream(blank, std::ios::trunc).close();  // 1 MiB of zeros: no boot sector.
  ASSERT_EQ(::truncate(blank.c_str(), 1 << 20), 0);
  CoreProcess core({coreBinary(), "-m", "128M", "-s", "4,ahci,hd:" + blank + ",cd:" + iso, "-l",
                    "bootrom," + seabios(), "cd-test"});
  ASSERT_TRUE(core.waitFor("firmware: Booting from DVD/CD")) << core.output();
  // Two kills in the middle of the reads, past the supervisor's young-death window.
  int kills = 0;
  for (int attempt = 0; attempt < 2; ++attempt) {
    std::this_thread::sleep_for(std::chrono::milliseconds(700));
    core.poll();
    auto children = deviceServersOf(core.pid());
    if (!children.empty() && core.err().find("debug-exit") == std::string::npos &&
        ::kill(children.front(), SIGKILL) == 0) {
      ++kills;
    }
  }
  EXPECT_GE(kills, 1) << "the guest finished before the kills could land";
  EXPECT_EQ(core.wait(std::chrono::seconds(120)), DISK_CHECK_PASSED) << core.output();
  EXPECT_NE(core.err().find("DVD/CD [AHCI/1:"), std::string::npos) << core.err();
  EXPECT_NE(core.err().find("AHCI/0: "), std::string::npos) << "SeaBIOS found port 0's disk: " << core.err();
  EXPECT_EQ(count(core.err(), "firmware: disk-check: round ok"), 12u) << core.err();
  EXPECT_EQ(count(core.err(), "killed by signal 9 (Killed); restarting"), static_cast<size_t>(kills));
  ::unlink(iso.c_str());
  ::unlink(blank.c_str());
}

// bhyve's bootindex becomes the firmware's bootorder: of two bootable
// disks, SeaBIOS boots the one given the lowest index, not the first slot.
TEST(SeaBiosBootOrder, BootIndexPicksTheDisk) {
  if (auto reason = kvmUnavailableReason(); !reason.empty()) GTEST_SKIP() << reason;
  if (::access(seabios().c_str(), R_OK) != 0)
    GTEST_SKIP() << seabios() << " missing (apt-get install seabios)";
  // Slot 4's disk expects the wrong checksum: booting it ends with 0x11.
  // Both are 1 MiB: SeaBIOS refuses to boot a disk of a few sectors.
  std::string wrong = tempPath("fw-order-wrong");
  std::string right = tempPath("fw-order-right");
  for (const auto& path : {wrong, right}) {
    std::ofstream(path).close();
    ASSERT_EQ(::truncate(path.c_str(), 1 << 20), 0) << path;
  }
  writeDiskCheckImage(wrong, 16, 1);
  {
    std::fstream image(wrong, std::ios::binary | std::ios::in | std::ios::out);
    image.seekp(0x1f4);
    image.put('\x5a');
  }
  writeDiskCheckImage(right, 16, 1);
  constexpr int CHECKSUM_MISMATCH = (0x11 << 1) | 1;
  auto boot = [&](const std::string& nvmeOptions) {
    CoreProcess core({coreBinary(), "-m", "128M", "-s", "4,virtio-blk," + wrong, "-s",
                      "5,nvme," + right + nvmeOptions, "-l", "bootrom," + seabios(), "order-test"});
    int status = core.wait(std::chrono::seconds(120));
    return std::pair{status, core.err()};
  };
  auto [byIndex, log] = boot(",bootindex=1");
  EXPECT_EQ(byIndex, DISK_CHECK_PASSED) << log;
  EXPECT_NE(log.find("firmware: Searching bootorder for: /pci@i0cf8/*@5"), std::string::npos) << log;
  auto [bySlot, slotLog] = boot("");
  EXPECT_EQ(bySlot, CHECKSUM_MISMATCH) << "without bootindex the first slot boots: " << slotLog;
  // bhyve's -f hands the firmware a fw_cfg file of the user's: here its own
  // boot order, naming slot 5.
  CoreProcess core({coreBinary(), "-m", "128M", "-s", "4,virtio-blk," + wrong, "-s", "5,nvme," + right, "-f",
                    "bootorder,string=/pci@i0cf8/*@5", "-l", "bootrom," + seabios(), "order-test"});
  EXPECT_EQ(core.wait(std::chrono::seconds(120)), DISK_CHECK_PASSED) << core.err();
  ::unlink(wrong.c_str());
  ::unlink(right.c_str());
}

INSTANTIATE_TEST_SUITE_P(Disks, SeaBiosDisk, ::testing::Values("virtio-blk", "nvme", "ahci-hd"),
                         [](const auto& test) {
                           return test.param == "virtio-blk" ? "VirtioBlk"
                                  : test.param == "nvme"     ? "Nvme"
                                                             : "AhciHd";
                         });

// The whole "grub-bhyve" story with a real bootloader: Debian's GRUB, on a
// disk made the way grub-install lays one out, loaded by SeaBIOS through the
// disk's server, multiboots the test guest from an ext2 partition. The guest
// then checks what the firmware left it: the core's ACPI tables (installed
// by SeaBIOS from the table-loader), PCI as the firmware placed it, the APs.
struct GrubCase {
  const char* disk;
  const char* test;
  const char* cpus;
  const char* name;
};

class GrubBoot : public ::testing::TestWithParam<GrubCase> {
 protected:
  void SetUp() override {
    if (auto reason = kvmUnavailableReason(); !reason.empty()) GTEST_SKIP() << reason;
    if (::access(seabios().c_str(), R_OK) != 0)
      GTEST_SKIP() << seabios() << " missing (apt-get install seabios)";
    if (::access("/usr/lib/grub/i386-pc/boot.img", R_OK) != 0)
      GTEST_SKIP() << "GRUB for BIOS missing (apt-get install grub-pc-bin)";
  }
};

TEST_P(GrubBoot, MultibootsTheTestGuestFromTheDisk) {
  std::string disk = tempPath(std::string("grub-") + GetParam().name);
  std::string command = std::string(std::getenv("CELLVISOR_MAKE_GRUB_DISK")) + " " + disk + " " +
                        guestImage() + " 'test=" + GetParam().test + "' >/dev/null 2>&1";
  ASSERT_EQ(std::system(command.c_str()), 0) << command;
  CoreProcess core({coreBinary(), "-c", GetParam().cpus, "-m", "128M", "-s",
                    std::string("4,") + GetParam().disk + "," + disk, "-l", "com1,stdio", "-l",
                    "bootrom," + seabios(), "grub-test"});
  EXPECT_EQ(core.wait(std::chrono::seconds(180)), GUEST_PASSED) << core.output();
  EXPECT_NE(core.out().find("GRUB loading"), std::string::npos) << core.out();
  EXPECT_NE(core.out().find(std::string("guest: running test '") + GetParam().test + "'"), std::string::npos);
  EXPECT_NE(core.out().find(", 0 failed"), std::string::npos) << core.out();
  EXPECT_EQ(core.out().find("not ok"), std::string::npos) << core.out();
  ::unlink(disk.c_str());
}

INSTANTIATE_TEST_SUITE_P(Guests, GrubBoot,
                         ::testing::Values(GrubCase{"virtio-blk", "hello", "1", "Hello"},
                                           GrubCase{"nvme", "pci", "1", "PciOverNvme"},
                                           GrubCase{"virtio-blk", "smp", "2", "Smp"}),
                         [](const auto& test) { return std::string(test.param.name); });

// OVMF (Debian's, as vm-bhyve's loader="uefi" runs it) boots a UEFI
// application built with gnu-efi from an EFI system partition on a
// virtio-blk disk: the application prints through the firmware's console and
// powers off through ResetSystem. The variable store is a per-VM copy.
TEST(OvmfBoot, BootsAUefiApplicationFromAnEsp) {
  if (auto reason = kvmUnavailableReason(); !reason.empty()) GTEST_SKIP() << reason;
  if (hostEmulatesGuestKernel()) {
    GTEST_SKIP()
        << "host KVM emulates guest ring 0 (kvm_pvm loaded or no vmx/svm in /proc/cpuinfo): OVMF stops "
           "at the first fwait of its SEC phase, which the emulator lacks; this test runs on VT-x/AMD-V";
  }
  const char* code = "/usr/share/OVMF/OVMF_CODE_4M.fd";
  const char* varsTemplate = "/usr/share/OVMF/OVMF_VARS_4M.fd";
  if (::access(code, R_OK) != 0) GTEST_SKIP() << code << " missing (apt-get install ovmf)";
  const char* app = std::getenv("CELLVISOR_UEFI_APP");
  if (app == nullptr)
    GTEST_SKIP() << "no UEFI application was built (apt-get install gnu-efi, then reconfigure)";
  std::string disk = tempPath("esp");
  std::string command = std::string(std::getenv("CELLVISOR_MAKE_ESP_DISK")) + " " + disk + " " + app;
  ASSERT_EQ(std::system(command.c_str()), 0) << command;
  std::string vars = tempPath("uefi-vars");
  {
    std::ifstream from(varsTemplate, std::ios::binary);
    std::ofstream to(vars, std::ios::binary);
    to << from.rdbuf();
  }
  CoreProcess core({coreBinary(), "-m", "256M", "-s", "4,virtio-blk," + disk, "-l", "com1,stdio", "-l",
                    std::string("bootrom,") + code + "," + vars, "uefi-test"});
  constexpr int POWERED_OFF = 1;  // bhyve's exit status for a guest that powered off.
  EXPECT_EQ(core.wait(std::chrono::seconds(180)), POWERED_OFF) << core.output();
  EXPECT_NE(core.out().find("cellvisor-uefi: hello from a UEFI application"), std::string::npos)
      << core.output();
  ::unlink(disk.c_str());
  ::unlink(vars.c_str());
}

class FirmwareInput : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto reason = kvmUnavailableReason(); !reason.empty()) GTEST_SKIP() << reason;
  }
};

std::string fileOfSize(const std::string& name, size_t size) {
  std::string path = tempPath(name);
  std::ofstream file(path, std::ios::binary);
  std::vector<char> bytes(size, '\xff');
  file.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return path;
}

TEST_F(FirmwareInput, BadFirmwareGetsAClearError) {
  std::string empty = fileOfSize("empty-rom", 0);
  std::string huge = fileOfSize("huge-rom", (16 << 20) + 4096);
  std::string odd = fileOfSize("odd-rom", 100000);
  std::string rom = fileOfSize("rom", 128 << 10);
  std::string vars = fileOfSize("vars", 128 << 10);
  ::chmod(vars.c_str(), 0444);
  // Root opens a 0444 file for writing anyway; a read-only sysfs attribute it cannot.
  std::string readOnlyVars = ::geteuid() == 0 ? "/sys/kernel/uevent_seqnum" : vars;
  struct Case {
    std::vector<std::string> argv;
    std::string message;
  };
  std::vector<Case> cases = {
      {{coreBinary(), "-l", "bootrom," + empty, "vm"}, "bootrom " + empty + ": the file is empty"},
      {{coreBinary(), "-l", "bootrom," + huge, "vm"},
       "bytes is more than the firmware area below 4 GiB (16 MiB)"},
      {{coreBinary(), "-l", "bootrom," + odd, "vm"}, "100000 bytes is not a whole number of 4 KiB pages"},
      {{coreBinary(), "-l", "bootrom,/nonexistent/bios.bin", "vm"},
       "bootrom /nonexistent/bios.bin: cannot open"},
      {{coreBinary(), "-l", "bootrom," + rom + "," + readOnlyVars, "vm"},
       "bootvars " + readOnlyVars + ": cannot open for writing"},
      {{coreBinary(), "-l", "bootrom," + rom, "-s", "1,lpc", "vm"},
       "with a bootrom the LPC bridge must be at slot 31 (-s 31,lpc)"},
      {{coreBinary(), "-l", "bootrom," + rom, "--kernel", guestImage(), "vm"},
       "both a bootrom (-l bootrom) and a kernel (--kernel) given"},
      {{coreBinary(), "vm"}, "nothing to boot: give a bootrom (-l bootrom,FILE) or a kernel (--kernel)"},
      {{coreBinary(), "-l", "bootrom", "vm"}, "expected com1|com2,BACKEND or bootrom,FILE"},
  };
  for (const auto& c : cases) {
    CoreProcess core(c.argv);
    EXPECT_NE(core.wait(), 0) << c.message << ": " << core.output();
    EXPECT_NE(core.err().find(c.message), std::string::npos) << c.message << ": " << core.err();
  }
  for (const auto& path : {empty, huge, odd, rom, vars}) ::unlink(path.c_str());
}

}  // namespace
}  // namespace cellvisor::testing
