// vm-bhyve's resource keys as the VM's cgroup files get them, on a stand-in
// tree of plain files (this host's cgroup v2 offers no cpu or io controller:
// the vmmd tests apply them for real where a host does).
#include "vmmd/vm-cgroup.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <fstream>

namespace cellvisor {
namespace {

namespace fs = std::filesystem;

std::string readText(const fs::path& path) {
  std::ifstream file(path);
  return {std::istreambuf_iterator<char>(file), {}};
}

class VmCgroupFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    root = fs::path(::testing::TempDir()) / ("cgroup-files-" + std::to_string(::getpid()));
    fs::remove_all(root);
    // The tree offers and has enabled every controller vmmd uses; the VM's
    // cgroup exists with its interface files, as the kernel would make them.
    fs::create_directories(root / "vm-web");
    std::ofstream(root / "cgroup.controllers") << "cpu io memory pids\n";
    std::ofstream(root / "cgroup.subtree_control") << "cpu io memory pids\n";
    for (const char* file : {"cpu.max", "cpu.weight.nice", "io.max", "memory.max", "cgroup.kill"})
      std::ofstream(root / "vm-web" / file);
    std::ofstream(root / "vm-web" / "cgroup.events") << "populated 0\nfrozen 0\n";
    disk = root / "disk0.img";
    std::ofstream(disk) << "data";
  }
  void TearDown() override { fs::remove_all(root); }

  fs::path root;
  fs::path disk;
};

TEST_F(VmCgroupFiles, LimitsBecomeCpuAndIoAndMemoryFiles) {
  ResourceLimits limits;
  limits.priority = 20;
  limits.pcpu = 150;
  limits.readIops = 50;
  limits.writeBps = 10ull << 20;
  auto device = blockDeviceOf(disk);
  if (!device) GTEST_SKIP() << root << " is on a filesystem with no block device";
  CgroupTree tree = CgroupTree::at(root);
  VmCgroup cgroup(tree, "web", limits, 640ull << 20, {disk.string()});
  EXPECT_EQ(readText(root / "vm-web" / "cpu.weight.nice"), "19") << "nice 20 is cpu.weight.nice's 19";
  EXPECT_EQ(readText(root / "vm-web" / "cpu.max"), "150000 100000") << "1.5 CPUs";
  EXPECT_EQ(readText(root / "vm-web" / "io.max"), *device + " wbps=10485760 riops=50");
  EXPECT_EQ(readText(root / "vm-web" / "memory.max"), std::to_string(640ull << 20));
  ASSERT_EQ(cgroup.applied().size(), 4u);
  EXPECT_EQ(cgroup.applied()[1], "limit_pcpu=150: cpu.max 150000 100000");
}

TEST_F(VmCgroupFiles, IoLimitsOnADiskWithNoBlockDeviceAreRefused) {
  fs::path shm = "/dev/shm/cellvisor-cgroup-test-" + std::to_string(::getpid());
  std::ofstream(shm) << "data";
  ResourceLimits limits;
  limits.readBps = 1 << 20;
  CgroupTree tree = CgroupTree::at(root);
  try {
    VmCgroup cgroup(tree, "web", limits, 0, {shm.string()});
    ADD_FAILURE() << "accepted";
  } catch (const VmConfigError& error) {
    EXPECT_NE(std::string(error.what())
                  .find("limit_rbps: " + shm.string() + " is on a filesystem with no block device"),
              std::string::npos)
        << error.what();
  }
  fs::remove(shm);
}

TEST_F(VmCgroupFiles, AKeyWhoseControllerIsMissingIsRefusedByName) {
  std::ofstream(root / "cgroup.controllers") << "memory pids\n";
  std::ofstream(root / "cgroup.subtree_control") << "memory pids\n";
  ResourceLimits limits;
  limits.pcpu = 20;
  CgroupTree tree = CgroupTree::at(root);
  try {
    VmCgroup cgroup(tree, "web", limits, 0, {});
    ADD_FAILURE() << "accepted";
  } catch (const VmConfigError& error) {
    EXPECT_NE(std::string(error.what()).find("limit_pcpu=\"20\": needs cgroup v2's cpu controller"),
              std::string::npos)
        << error.what();
    EXPECT_NE(std::string(error.what()).find("it offers: memory pids"), std::string::npos) << error.what();
  }
  EXPECT_EQ(readText(root / "vm-web" / "cpu.max"), "") << "nothing written";
}

// vmmd's own cgroup found in the mount: at the root (a shell, a test) it
// is the mount point itself, which vmmd must not take for a delegated one.
TEST(CgroupDirectory, TheRootIsTheMountPoint) {
  EXPECT_EQ(cgroupDirectory("/sys/fs/cgroup/unified", "/", "/"), fs::path("/sys/fs/cgroup/unified"));
  EXPECT_EQ(cgroupDirectory("/sys/fs/cgroup", "/", "/system.slice/vmmd.service"),
            fs::path("/sys/fs/cgroup/system.slice/vmmd.service"));
  EXPECT_EQ(cgroupDirectory("/sys/fs/cgroup", "/ns", "/ns/a"), fs::path("/sys/fs/cgroup/a"))
      << "a mount of a namespace's cgroup";
  EXPECT_EQ(cgroupDirectory("/sys/fs/cgroup", "/ns", "/ns"), fs::path("/sys/fs/cgroup"));
}

TEST(BlockDevice, AFileOnTmpfsHasNone) {
  EXPECT_FALSE(blockDeviceOf("/dev/shm").has_value());
  EXPECT_FALSE(blockDeviceOf("/nonexistent/disk.img").has_value());
}

TEST(BlockDevice, ABlockDeviceIsItsOwnDisk) {
  struct stat info {};
  if (::stat("/dev/zram0", &info) != 0 || !S_ISBLK(info.st_mode)) GTEST_SKIP() << "no /dev/zram0 here";
  EXPECT_EQ(blockDeviceOf("/dev/zram0"),
            std::to_string(major(info.st_rdev)) + ":" + std::to_string(minor(info.st_rdev)));
}

}  // namespace
}  // namespace cellvisor
