// vm-bhyve configuration files and the datastore around them.
#include "vmmd/vm-config.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "vmmd/datastore.h"
#include "vmmd/system-config.h"

namespace cellvisor {
namespace {

namespace fs = std::filesystem;

std::string errorOf(const std::string& text) {
  try {
    parseVmConfig(text, "vm.conf");
  } catch (const VmConfigError& error) {
    return error.what();
  }
  return "";
}

constexpr const char* GOOD = R"(# a VM
loader="kernel"
kernel="/srv/guest.elf"
kernel_cmdline="console=ttyS0 quiet"
cpu=2
memory="1G"
disk0_type="virtio-blk"
disk0_name="disk0.img"
disk0_opts="nocache"
network0_type="virtio-net"
network0_switch="public"
network0_mac="58:9c:fc:0a:0b:0c"
comports="com1 com2"
utctime="no"
uuid="1b4e28ba-2fa1-11d2-883f-0016d3cca427"
graphics="yes"
graphics_port="5900"
graphics_res="1024x768"
)";

TEST(VmConfig, ParsesVmBhyveKeys) {
  VmConfig config = parseVmConfig(GOOD, "vm.conf");
  EXPECT_EQ(config.cpu, 2u);
  EXPECT_EQ(config.memoryBytes, 1ull << 30);
  EXPECT_EQ(config.kernelCmdline, "console=ttyS0 quiet");
  ASSERT_EQ(config.disks.size(), 1u);
  EXPECT_EQ(config.disks[0].type, "virtio-blk");
  EXPECT_EQ(config.disks[0].opts, "nocache");
  EXPECT_EQ(config.networks[0].vmSwitch, "public");
  EXPECT_EQ(config.comports, (std::vector<std::string>{"com1", "com2"}));
  EXPECT_FALSE(config.utctime);
  EXPECT_TRUE(config.graphics);
  EXPECT_EQ(*config.graphicsPort, 5900);
  EXPECT_EQ(config.entries.size(), 17u);
  // Round trip.
  VmConfig again = parseVmConfig(formatVmConfig(config.entries), "again.conf");
  EXPECT_EQ(again.entries, config.entries);
}

TEST(VmConfig, ErrorsNameFileLineAndKey) {
  EXPECT_EQ(errorOf("loader=\"kernel\"\nkernel=\"/k\"\nmemroy=\"1G\"\n"),
            "vm.conf:3: memroy: unknown configuration key");
  EXPECT_EQ(errorOf("kernel=\"/k\"\ncpu=0\n"), "vm.conf:2: cpu: expected 1 to 255");
  EXPECT_NE(errorOf("kernel=\"/k\"\nmemory=\"lots\"\n").find("vm.conf:2: memory:"), std::string::npos);
  EXPECT_NE(errorOf("kernel=\"/k\"\ndisk0_type=\"floppy\"\n").find("disk0_type: expected"),
            std::string::npos);
  EXPECT_NE(
      errorOf("kernel=\"/k\"\nnetwork0_type=\"virtio-net\"\nnetwork0_mac=\"xx\"\n").find("network0_mac"),
      std::string::npos);
  EXPECT_NE(errorOf("kernel=\"/k\"\ncomports=\"com3\"\n").find("comports"), std::string::npos);
  EXPECT_NE(errorOf("kernel=\"/k\"\nuuid=\"nope\"\n").find("uuid"), std::string::npos);
  EXPECT_NE(errorOf("kernel=\"/k\nmemory=1G\n").find("unterminated"), std::string::npos);
  EXPECT_NE(errorOf("kernel=/k with spaces\n").find("must be written"), std::string::npos);
  EXPECT_NE(errorOf("just words\n").find("vm.conf:1: expected key"), std::string::npos);
  EXPECT_NE(errorOf("loader=\"kernel\"\n").find("needs kernel"), std::string::npos);
  EXPECT_NE(errorOf("loader=\"bhyveload\"\n").find("no Linux host equivalent; use loader=\"uefi\""),
            std::string::npos);
  EXPECT_NE(errorOf("loader=\"pxe\"\n").find("expected kernel, uefi, uefi-csm, bios or grub"),
            std::string::npos);
  EXPECT_NE(errorOf("loader=\"uefi\"\nuefi_vars=\"maybe\"\n").find("uefi_vars: expected yes or no"),
            std::string::npos);
}

TEST(VmConfig, HostileDiskAndSwitchNamesAreRefused) {
  for (const char* name : {"../../etc/shadow", "a/b.img", "/etc/passwd", ".."}) {
    std::string text = std::string("kernel=\"/k\"\ndisk0_type=\"virtio-blk\"\ndisk0_name=\"") + name + "\"\n";
    EXPECT_NE(errorOf(text).find("plain file name"), std::string::npos) << name;
  }
  EXPECT_NE(
      errorOf("kernel=\"/k\"\ndisk0_type=\"virtio-blk\"\ndisk0_dev=\"custom\"\ndisk0_name=\"rel.img\"\n")
          .find("absolute path"),
      std::string::npos);
  EXPECT_NE(errorOf("kernel=\"/k\"\nnetwork0_type=\"virtio-net\"\nnetwork0_switch=\"../x\"\n").find("switch"),
            std::string::npos);
}

// vm-bhyve's usual templates load: firmware loaders need no kernel, and keys
// for devices not here yet are warnings naming the key, not refusals.
TEST(VmConfig, VmBhyveFirmwareTemplatesLoadWithWarnings) {
  VmConfig windows = parseVmConfig(
      "loader=\"uefi\"\ngraphics=\"yes\"\nxhci_mouse=\"yes\"\ncpu=2\nmemory=2G\n"
      "network0_type=\"e1000\"\nnetwork0_switch=\"public\"\ndisk0_type=\"nvme\"\ndisk0_name=\"disk0.img\"\n"
      "uefi_vars=\"yes\"\nvirt_random=\"yes\"\nutctime=\"no\"\n",
      "windows.conf");
  EXPECT_EQ(windows.loader, "uefi");
  EXPECT_TRUE(windows.uefiVars);
  EXPECT_TRUE(windows.graphics);
  EXPECT_TRUE(windows.xhciMouse);
  ASSERT_EQ(windows.warnings.size(), 1u);
  EXPECT_EQ(windows.warnings[0],
            "windows.conf:11: virt_random=\"yes\": ignored: that device is not supported yet");

  VmConfig debian = parseVmConfig(
      "loader=\"grub\"\ncpu=1\nmemory=512M\nnetwork0_type=\"virtio-net\"\nnetwork0_switch=\"public\"\n"
      "disk0_type=\"virtio-blk\"\ndisk0_name=\"disk0.img\"\ngrub_run_partition=\"1\"\n",
      "debian.conf");
  EXPECT_EQ(debian.loader, "grub");
  ASSERT_EQ(debian.warnings.size(), 1u);
  EXPECT_NE(
      debian.warnings[0].find("grub_run_partition=\"1\": ignored: loader=\"grub\" boots the disk's own GRUB"),
      std::string::npos);
  EXPECT_EQ(parseVmConfig("loader=\"bios\"\n", "bios.conf").warnings.size(), 0u);
}

class DatastoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root = fs::path(::testing::TempDir()) / ("cellvisor-datastore-" + std::to_string(::getpid()));
    fs::remove_all(root);
    store = std::make_unique<Datastore>(root);
    store->installTemplate("default",
                           "loader=\"kernel\"\nkernel=\"/k\"\ncpu=1\nmemory=\"256M\"\n"
                           "disk0_type=\"virtio-blk\"\ndisk0_name=\"disk0.img\"\ndisk0_size=\"16M\"\n");
  }
  void TearDown() override { fs::remove_all(root); }
  fs::path root;
  std::unique_ptr<Datastore> store;
};

TEST_F(DatastoreTest, LaysOutLikeVmBhyve) {
  for (const char* sub : {".templates", ".iso", ".config"}) EXPECT_TRUE(fs::is_directory(root / sub)) << sub;
  struct stat st {};
  ASSERT_EQ(::stat(root.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u) << "private to its owner";
}

TEST_F(DatastoreTest, CreateListLoadDestroy) {
  store->create("web", {"default", "64M", "2", "512M"});
  EXPECT_EQ(store->list(), std::vector<std::string>{"web"});
  VmConfig config = store->load("web");
  EXPECT_EQ(config.cpu, 2u);
  EXPECT_EQ(config.memoryBytes, 512ull << 20);
  EXPECT_EQ(fs::file_size(root / "web" / "disk0.img"), 64ull << 20) << "sparse image of the asked size";
  EXPECT_THROW(store->create("web", {}), DatastoreError) << "already exists";
  store->rename("web", "www");
  EXPECT_EQ(store->list(), std::vector<std::string>{"www"});
  EXPECT_TRUE(fs::exists(root / "www" / "www.conf"));
  store->destroy("www");
  EXPECT_TRUE(store->list().empty());
}

TEST_F(DatastoreTest, HostileNamesNeverBecomePaths) {
  for (const char* name : {"../escape", "a/b", "", ".hidden", "x y"}) {
    EXPECT_THROW(store->create(name, {}), DatastoreError) << name;
    EXPECT_THROW(store->load(name), DatastoreError) << name;
  }
  EXPECT_THROW(store->create("ok", {"../../etc/passwd"}), DatastoreError);
  EXPECT_FALSE(fs::exists(root.parent_path() / "escape"));
}

TEST_F(DatastoreTest, BadValuesAtCreateLeaveNothingBehind) {
  EXPECT_THROW(store->create("bad", {"default", "", "999", ""}), VmConfigError);
  EXPECT_FALSE(fs::exists(root / "bad"));
}

TEST_F(DatastoreTest, ConfigWritesAreValidatedAndAtomic) {
  store->create("db", {});
  std::string before = formatVmConfig(store->load("db").entries);
  EXPECT_THROW(store->writeConfig("db", "kernel=\"/k\"\nbogus=1\n"), VmConfigError);
  EXPECT_EQ(formatVmConfig(store->load("db").entries), before) << "a refused edit changes nothing";
  store->writeConfig("db", before + "cpu=\"4\"\n");
  EXPECT_EQ(store->load("db").cpu, 4u);
  for (const auto& entry : fs::directory_iterator(root / "db")) {
    EXPECT_EQ(entry.path().string().find(".tmp-"), std::string::npos) << "no temporary left behind";
  }
}

TEST(VmConfig, ShippedTemplatesParse) {
  const char* directory = std::getenv("CELLVISOR_TEMPLATES");
  if (directory == nullptr) GTEST_SKIP() << "CELLVISOR_TEMPLATES is not set";
  int templates = 0;
  for (const auto& entry : fs::directory_iterator(directory)) {
    EXPECT_NO_THROW(loadVmConfig(entry.path())) << entry.path();
    ++templates;
  }
  EXPECT_GE(templates, 3);
}

TEST_F(DatastoreTest, SystemConfigKeepsVmBhyveKeysAndRefusesOthers) {
  fs::path path = root / ".config" / "system.conf";
  std::ofstream(path) << "# comment\nvm_list=\"a b\"\nswitch_list=\"public\"\nports_public=\"eth0\"\n";
  SystemConfig config = SystemConfig::load(path);
  EXPECT_EQ(config.words("vm_list"), (std::vector<std::string>{"a", "b"}));
  config.setWords("datastore_list", {"default", "other"});
  config.set("path_other", "/srv/vms");
  config.erase("ports_public");
  config.save();
  SystemConfig again = SystemConfig::load(path);
  EXPECT_EQ(again.get("path_other"), "/srv/vms");
  EXPECT_FALSE(again.get("ports_public").has_value());
  EXPECT_EQ(store->autostart().names, (std::vector<std::string>{"a", "b"}));
  EXPECT_THROW(again.set("bogus", "1"), DatastoreError);
  EXPECT_THROW(again.set("path_x", "a\"b"), DatastoreError);
  std::ofstream(path) << "vm_list=\"a\"\nbogus=\"1\"\n";
  try {
    SystemConfig::load(path);
    FAIL() << "an unknown key was accepted";
  } catch (const DatastoreError& error) {
    EXPECT_NE(std::string(error.what()).find("system.conf:2: bogus: unknown configuration key"),
              std::string::npos)
        << error.what();
  }
}

}  // namespace
}  // namespace cellvisor
