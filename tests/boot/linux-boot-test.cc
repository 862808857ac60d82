// Tier 4: Debian's own Linux kernel booted by the core. Linux cannot boot on
// hosts whose KVM emulates guest ring 0 (KVM-PVM, no VT-x/AMD-V), so there the
// boot test reports SKIP with that reason. The kernel comes from Debian's
// linux-image-cloud-amd64 package (tools/fetch-linux.sh puts it in .cache/linux), or
// CELLVISOR_LINUX_KERNEL.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>

#include "core/kvm/hypervisor.h"
#include "tests/boot/core-process.h"

namespace cellvisor::testing {
namespace {

std::string linuxKernel() {
  const char* path = std::getenv("CELLVISOR_LINUX_KERNEL");
  return path && ::access(path, R_OK) == 0 ? path : "";
}

TEST(LinuxBoot, BootsToRootMount) {
  if (auto reason = kvmUnavailableReason(); !reason.empty()) GTEST_SKIP() << reason;
  if (hostEmulatesGuestKernel()) {
    GTEST_SKIP() << "host KVM emulates guest ring 0 (kvm_pvm loaded or no vmx/svm in /proc/cpuinfo): "
                    "Linux guests do not boot here";
  }
  std::string kernel = linuxKernel();
  if (kernel.empty())
    GTEST_SKIP() << "no Linux kernel: run tools/fetch-linux.sh or set CELLVISOR_LINUX_KERNEL";
  // No root disk yet: the kernel boots, finds no root and panics; panic=-1
  // turns that into a reboot, which the core reports as status 0.
  CoreProcess core({coreBinary(), "-c", "2", "-m", "512M", "-l", "com1,stdio", "--kernel", kernel,
                    "--cmdline", "console=ttyS0 panic=-1 reboot=acpi", "linux"});
  EXPECT_EQ(core.wait(std::chrono::seconds(120)), 0) << core.output();
  EXPECT_NE(core.out().find("Linux version"), std::string::npos) << core.out();
  EXPECT_NE(core.out().find("smpboot: Total of 2 processors activated"), std::string::npos) << core.out();
  EXPECT_NE(core.out().find("VFS: Unable to mount root fs"), std::string::npos) << core.out();
}

}  // namespace
}  // namespace cellvisor::testing
