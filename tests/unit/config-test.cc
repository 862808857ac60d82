// bhyve-style configuration: keys, values, origins in error messages.
#include <gtest/gtest.h>

#include <fstream>
#include <map>

#include "core/machine/machine-config.h"

namespace cellvisor {
namespace {

std::string errorOf(const ConfigStore& store) {
  try {
    store.build();
  } catch (const ConfigError& error) {
    return error.what();
  }
  return "";
}

TEST(Config, BuildsFromKeys) {
  ConfigStore store;
  store.set("name", "web-1", "test");
  store.set("cpus", "4", "test");
  store.set("memory.size", "2G", "test");
  store.set("lpc.com1.path", "stdio", "test");
  store.set("rtc.use_localtime", "false", "test");
  store.set("pci.0.31.0.device", "lpc", "test");
  store.set("cpuid.mask", "cx16,xsave", "test");
  MachineConfig config = store.build();
  EXPECT_EQ(config.name, "web-1");
  EXPECT_EQ(config.cpus, 4u);
  EXPECT_EQ(config.memoryBytes, 2ull << 30);
  EXPECT_EQ(config.serial.at("com1"), "stdio");
  EXPECT_TRUE(config.utcClock);
  ASSERT_EQ(config.pciSlots.size(), 1u);
  EXPECT_EQ(config.pciSlots[0].slot, 31);
  EXPECT_EQ(config.pciSlots[0].emulation, "lpc");
  EXPECT_EQ(config.cpuidMask, (std::vector<std::string>{"cx16", "xsave"}));
}

// bhyve's bootindex, in -s options or as its own key, is the platform's:
// taken out of the options the device server sees.
TEST(Config, BootIndexIsTakenFromDeviceOptions) {
  ConfigStore store;
  store.set("pci.0.4.0.device", "virtio-blk", "-s");
  store.set("pci.0.4.0.options", "disk.img,bootindex=2,ro", "-s");
  store.set("pci.0.5.0.device", "nvme", "-s");
  store.set("pci.0.5.0.options", "nvme.img", "-s");
  store.set("pci.0.5.0.bootindex", "1", "vm.conf:4");
  MachineConfig config = store.build();
  EXPECT_EQ(config.pciSlots[0].options, "disk.img,ro");
  EXPECT_EQ(config.bootOrder, (std::map<std::pair<int, int>, int>{{{4, 0}, 2}, {{5, 0}, 1}}));

  ConfigStore twice;
  twice.set("pci.0.4.0.device", "virtio-blk", "-s");
  twice.set("pci.0.4.0.options", "a.img,bootindex=1", "-s");
  twice.set("pci.0.5.0.device", "virtio-blk", "-s");
  twice.set("pci.0.5.0.options", "b.img,bootindex=1", "-s");
  EXPECT_NE(errorOf(twice).find("bootindex 1 given twice"), std::string::npos) << errorOf(twice);
  ConfigStore bad;
  bad.set("pci.0.4.0.device", "virtio-blk", "-s");
  bad.set("pci.0.4.0.options", "a.img,bootindex=first", "-s");
  EXPECT_NE(errorOf(bad).find("bootindex: expected 0 to 255"), std::string::npos) << errorOf(bad);
}

// bhyve's -f: fw_cfg files given as text or as a file's contents.
TEST(Config, FwCfgFilesFromTheCommandLine) {
  ConfigStore store;
  store.set("fw_cfg.file.opt/org.example/greeting", "string=hello", "-f");
  store.set("fw_cfg.file.opt/org.example/blob", "file=/etc/hostname", "-f");
  MachineConfig config = store.build();
  ASSERT_EQ(config.fwCfgFiles.size(), 2u);
  EXPECT_EQ(config.fwCfgFiles[1].name, "opt/org.example/greeting");
  EXPECT_EQ(config.fwCfgFiles[1].data, "hello");
  EXPECT_EQ(config.fwCfgFiles[0].path, "/etc/hostname");
  ConfigStore bad;
  bad.set("fw_cfg.file.opt/x", "blob=1", "-f opt/x,blob=1");
  EXPECT_NE(errorOf(bad).find("expected string=DATA or file=PATH"), std::string::npos) << errorOf(bad);
  ConfigStore longName;
  longName.set("fw_cfg.file." + std::string(56, 'n'), "string=x", "-f");
  EXPECT_NE(errorOf(longName).find("1-55 characters"), std::string::npos);
}

TEST(Config, ErrorsNameOriginAndKey) {
  ConfigStore unknown;
  unknown.set("memroy.size", "1G", "vm.conf:3");
  EXPECT_EQ(errorOf(unknown), "vm.conf:3: memroy.size: unknown configuration key");

  ConfigStore badCpus;
  badCpus.set("cpus", "lots", "-c");
  EXPECT_NE(errorOf(badCpus).find("-c: cpus:"), std::string::npos);

  ConfigStore badMemory;
  badMemory.set("memory.size", "12Q", "-m");
  EXPECT_NE(errorOf(badMemory).find("suffix"), std::string::npos);

  ConfigStore oddMemory;
  oddMemory.set("memory.size", "3M", "-m");
  EXPECT_NE(errorOf(oddMemory).find("multiple of 2 MiB"), std::string::npos);

  ConfigStore badSlot;
  badSlot.set("pci.0.40.0.device", "lpc", "-s");
  EXPECT_NE(errorOf(badSlot).find("0-31"), std::string::npos);

  ConfigStore badMask;
  badMask.set("cpuid.mask", "cx16,warp", "-o");
  EXPECT_NE(errorOf(badMask).find("unknown CPUID feature 'warp'"), std::string::npos);
}

TEST(Config, HostileNamesAreRefused) {
  for (const char* name : {"../etc", "a/b", "", ".hidden", "x y", "name\n", "-rf"}) {
    EXPECT_FALSE(isValidVmName(name)) << name;
    ConfigStore store;
    store.set("name", name, "test");
    EXPECT_NE(errorOf(store).find("invalid VM name"), std::string::npos) << name;
  }
  EXPECT_TRUE(isValidVmName("debian-12.vm_1"));
  EXPECT_FALSE(isValidVmName(std::string(65, 'a')));
}

TEST(Config, MemorySizes) {
  EXPECT_EQ(parseMemorySize("512"), 512ull << 20) << "bhyve: bare numbers are MiB";
  EXPECT_EQ(parseMemorySize("1g"), 1ull << 30);
  EXPECT_EQ(parseMemorySize("64K"), 64ull << 10);
  EXPECT_THROW(parseMemorySize("0"), ConfigError);
  EXPECT_THROW(parseMemorySize("-1G"), ConfigError);
  EXPECT_THROW(parseMemorySize("99999999999T"), ConfigError);
}

TEST(Config, BhyveVariables) {
  ConfigStore store;
  for (const char* key :
       {"acpi_tables", "destroy_on_poweroff", "virtio_msix", "x86.mptable", "x86.vmexit_on_hlt",
        "x86.vmexit_on_pause", "memory.wired", "memory.guest_in_core", "x86.strictio", "x86.x2apic"})
    store.set(key, "true", "test");
  store.set("x86.strictmsr", "no", "test");
  store.set("uuid", "5B6D4A0C-6F6B-11EE-8C99-0242AC120002", "test");
  store.set("keyboard.layout", "de_noacc", "test");
  MachineConfig config = store.build();
  EXPECT_TRUE(config.memoryWired);
  EXPECT_TRUE(config.guestMemoryInCore);
  EXPECT_TRUE(config.strictIo);
  EXPECT_TRUE(config.x2apic);
  EXPECT_FALSE(config.strictMsr);
  EXPECT_EQ(config.keyboardLayout, "de_noacc");

  ConfigStore notBool;
  notBool.set("x86.mptable", "maybe", "-o x86.mptable=maybe");
  EXPECT_EQ(errorOf(notBool), "-o x86.mptable=maybe: x86.mptable: expected true or false, got 'maybe'");
  ConfigStore badUuid;
  badUuid.set("uuid", "5b6d4a0c", "-U");
  EXPECT_NE(errorOf(badUuid).find("-U: uuid: '5b6d4a0c' is not a UUID"), std::string::npos);
  ConfigStore badLayout;
  badLayout.set("keyboard.layout", "../../etc/passwd", "-K");
  EXPECT_NE(errorOf(badLayout).find("is not a keyboard layout name"), std::string::npos);
  ConfigStore gdb;
  gdb.set("gdb.port", "1234", "vm.conf:2");
  EXPECT_EQ(errorOf(gdb), "vm.conf:2: gdb.port: a GDB debug server is not supported yet");
}

TEST(Config, TopologyMustMatchTheVcpuCount) {
  ConfigStore product;
  product.set("sockets", "2", "-c");
  product.set("threads", "2", "-c");
  EXPECT_EQ(product.build().cpus, 4u);
  ConfigStore mismatch;
  mismatch.set("cpus", "3", "-c 3,cores=2");
  mismatch.set("cores", "2", "-c 3,cores=2");
  EXPECT_EQ(errorOf(mismatch), "-c 3,cores=2: cpus=3 but sockets*cores*threads = 1*2*1 = 2");
  ConfigStore tooMany;
  tooMany.set("sockets", "16", "-c");
  tooMany.set("cores", "16", "-c");
  EXPECT_NE(errorOf(tooMany).find("256 vCPUs; at most 255"), std::string::npos);
}

TEST(Config, PinnedVcpusMustExist) {
  ConfigStore store;
  store.set("cpus", "2", "-c");
  store.set("vcpu.1.cpuset", "0-2,5", "-p 1:5");
  EXPECT_EQ(store.build().vcpuHostCpus.at(1), (std::vector<uint32_t>{0, 1, 2, 5}));
  store.set("vcpu.2.cpuset", "0", "-p 2:0");
  EXPECT_EQ(errorOf(store), "-p 2:0: vcpu.2.cpuset: the VM has 2 vCPUs (0-1)");
  ConfigStore badList;
  badList.set("vcpu.0.cpuset", "3-1", "-o");
  EXPECT_NE(errorOf(badList).find("bad CPU list '3-1'"), std::string::npos);
  EXPECT_THROW(parseCpuList("5000"), ConfigError) << "beyond CPU_SETSIZE";
}

TEST(Config, EmulationsAreNamedWithWhatThisBuildHas) {
  constexpr const char* AVAILABLE =
      "hostbridge, amd_hostbridge, lpc, ahci, ahci-cd, ahci-hd, fbuf, nvme, virtio-blk, virtio-net, xhci";
  ConfigStore bhyveOnly;
  bhyveOnly.set("pci.0.4.0.device", "e1000", "-s 5,e1000,tap0");
  EXPECT_EQ(errorOf(bhyveOnly), std::string("-s 5,e1000,tap0: pci.0.4.0.device: 'e1000' is a bhyve "
                                            "emulation cellvisor does not have yet (this build has: ") +
                                    AVAILABLE + ")");
  ConfigStore unknown;
  unknown.set("pci.0.4.0.device", "foo", "-s 4,foo");
  EXPECT_EQ(errorOf(unknown),
            std::string("-s 4,foo: pci.0.4.0.device: unknown emulation 'foo'; this build has: ") + AVAILABLE);
  for (const char* name : {"e1000", "passthru", "uart", "virtio-9p", "virtio-console", "virtio-rnd",
                           "virtio-input", "virtio-scsi", "hda"}) {
    ConfigStore store;
    store.set("pci.0.4.0.device", name, "-s");
    EXPECT_NE(errorOf(store).find("is a bhyve emulation cellvisor does not have yet"), std::string::npos)
        << name;
  }
  ConfigStore amd;
  amd.set("pci.0.0.0.device", "amd_hostbridge", "-s");
  EXPECT_EQ(amd.build().pciSlots.at(0).emulation, "amd_hostbridge");
}

TEST(Config, FileLinesAndComments) {
  std::string path = ::testing::TempDir() + "/cellvisor-config-test.conf";
  {
    std::ofstream file(path);
    file << "# a comment\n\ncpus = 2   # trailing\nmemory.size=1G\nthis is not a pair\n";
  }
  ConfigStore store;
  try {
    store.loadFile(path);
    FAIL() << "expected an error";
  } catch (const ConfigError& error) {
    EXPECT_NE(std::string(error.what()).find(path + ":5: expected key=value"), std::string::npos)
        << error.what();
  }
  EXPECT_THROW(store.loadFile("/nonexistent/vm.conf"), ConfigError);
}

}  // namespace
}  // namespace cellvisor
