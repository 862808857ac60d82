// vmm-core's command line: bhyve(8)'s flags alone and grouped, the keys
// they set, the order they apply in, and an exit status for every refusal.
#include "core/machine/command-line.h"

#include <gtest/gtest.h>

#include <fstream>

namespace cellvisor {
namespace {

CommandLine parse(std::vector<std::string> words) {
  words.insert(words.begin(), "vmm-core");
  std::vector<const char*> argv;
  for (const auto& word : words) argv.push_back(word.c_str());
  return parseCommandLine(static_cast<int>(argv.size()), argv.data());
}

TEST(CommandLine, EveryBhyveFlagIsAccepted) {
  CommandLine line = parse({"-a",
                            "-A",
                            "-C",
                            "-D",
                            "-e",
                            "-H",
                            "-P",
                            "-S",
                            "-u",
                            "-W",
                            "-w",
                            "-x",
                            "-Y",
                            "-c",
                            "2",
                            "-m",
                            "512M",
                            "-l",
                            "com1,stdio",
                            "-s",
                            "0,hostbridge",
                            "-o",
                            "cpuid.mask=cx16",
                            "-p",
                            "0:0",
                            "-U",
                            "5b6d4a0c-6f6b-11ee-8c99-0242ac120002",
                            "-K",
                            "us_unix",
                            "vm"});
  ASSERT_FALSE(line.exitStatus) << line.message;
  EXPECT_EQ(line.store.valueOf("acpi_tables"), "true");
  EXPECT_EQ(line.store.valueOf("x86.x2apic"), "true") << "-x came after -a";
  EXPECT_EQ(line.store.valueOf("memory.guest_in_core"), "true");
  EXPECT_EQ(line.store.valueOf("memory.wired"), "true");
  EXPECT_EQ(line.store.valueOf("x86.strictio"), "true");
  EXPECT_EQ(line.store.valueOf("x86.strictmsr"), "false");
  EXPECT_EQ(line.store.valueOf("rtc.use_localtime"), "false");
  EXPECT_EQ(line.store.valueOf("vcpu.0.cpuset"), "0");
  EXPECT_EQ(line.store.valueOf("uuid"), "5b6d4a0c-6f6b-11ee-8c99-0242ac120002");
  EXPECT_EQ(line.store.valueOf("keyboard.layout"), "us_unix");
  EXPECT_EQ(line.store.valueOf("name"), "vm");
  MachineConfig config = line.store.build();
  EXPECT_TRUE(config.x2apic);
  EXPECT_FALSE(config.strictMsr);
  EXPECT_TRUE(config.memoryWired);
}

TEST(CommandLine, FlagsGroupAsInGetopt) {
  CommandLine line = parse({"-AHPSuw", "-c2", "-m512M", "-Hs", "31,lpc", "vm"});
  ASSERT_FALSE(line.exitStatus) << line.message;
  EXPECT_EQ(line.store.valueOf("acpi_tables"), "true");
  EXPECT_EQ(line.store.valueOf("x86.vmexit_on_hlt"), "true");
  EXPECT_EQ(line.store.valueOf("x86.vmexit_on_pause"), "true");
  EXPECT_EQ(line.store.valueOf("memory.wired"), "true");
  EXPECT_EQ(line.store.valueOf("x86.strictmsr"), "false");
  EXPECT_EQ(line.store.valueOf("cpus"), "2");
  EXPECT_EQ(line.store.valueOf("memory.size"), "512M");
  EXPECT_EQ(line.store.valueOf("pci.0.31.0.device"), "lpc");
}

TEST(CommandLine, LaterOptionsWin) {
  std::string file = ::testing::TempDir() + "/cellvisor-cmdline-" + std::to_string(::getpid()) + ".conf";
  std::ofstream(file) << "memory.size=1G\ncpus=4\n";
  CommandLine line = parse({"-m", "256M", "-k", file, "-o", "cpus=2", "-a", "-x", "-a", "vm"});
  ASSERT_FALSE(line.exitStatus) << line.message;
  EXPECT_EQ(line.store.valueOf("memory.size"), "1G") << "-k after -m";
  EXPECT_EQ(line.store.valueOf("cpus"), "2") << "-o after -k";
  EXPECT_EQ(line.store.valueOf("x86.x2apic"), "false") << "the last of -a and -x";
  ::unlink(file.c_str());
}

TEST(CommandLine, CpuTopologyAndPinning) {
  CommandLine line = parse({"-c", "sockets=2,cores=2", "-p", "3:1", "-p", "3:0", "vm"});
  ASSERT_FALSE(line.exitStatus) << line.message;
  EXPECT_EQ(line.store.valueOf("sockets"), "2");
  EXPECT_EQ(line.store.valueOf("vcpu.3.cpuset"), "1,0");
  MachineConfig config = line.store.build();
  EXPECT_EQ(config.cpus, 4u) << "numcpus from the topology";
  EXPECT_EQ(config.vcpuHostCpus.at(3), (std::vector<uint32_t>{1, 0}));
  EXPECT_EQ(parse({"-c", "cpus=4,cores=2,threads=2", "vm"}).store.build().threads, 2u);
}

TEST(CommandLine, SlotSpellings) {
  CommandLine line =
      parse({"-s", "0:3:1,virtio-blk,/disk.img,ro", "-s", "4:2,lpc", "-s", "5,hostbridge", "vm"});
  ASSERT_FALSE(line.exitStatus) << line.message;
  EXPECT_EQ(line.store.valueOf("pci.0.3.1.device"), "virtio-blk");
  EXPECT_EQ(line.store.valueOf("pci.0.3.1.options"), "/disk.img,ro");
  EXPECT_EQ(line.store.valueOf("pci.0.4.2.device"), "lpc");
  EXPECT_EQ(line.store.valueOf("pci.0.5.0.device"), "hostbridge");
}

TEST(CommandLine, ArgumentErrorsExit4WithUsage) {
  for (const auto& words : std::vector<std::vector<std::string>>{{"-Z", "vm"},
                                                                 {"-AZ", "vm"},
                                                                 {"vm", "-m"},
                                                                 {"vm", "extra"},
                                                                 {"-c", "dies=2", "vm"},
                                                                 {"-c", "", "vm"},
                                                                 {"-p", "0", "vm"},
                                                                 {"-p", "0:x", "vm"},
                                                                 {"-s", "hostbridge", "vm"},
                                                                 {"-s", "a:b,lpc", "vm"},
                                                                 {"-s", "1:0:0,lpc", "vm"},
                                                                 {"-l", "com1", "vm"},
                                                                 {"-o", "=x", "vm"},
                                                                 {"--status-fd", "x", "vm"}}) {
    CommandLine line = parse(words);
    ASSERT_TRUE(line.exitStatus) << words.front();
    EXPECT_EQ(*line.exitStatus, 4) << words.front();
    EXPECT_NE(line.message.find(USAGE), std::string::npos) << line.message;
  }
  EXPECT_NE(parse({"-s", "1:0:0,lpc", "vm"}).message.find("-s 1:0:0,lpc: only bus 0 exists"),
            std::string::npos);
  EXPECT_NE(parse({"-p", "0", "vm"}).message.find("-p 0: expected vcpu:hostcpu"), std::string::npos);
}

TEST(CommandLine, UnsupportedFlagsAreRefusedByNameWithoutUsage) {
  struct Case {
    std::vector<std::string> words;
    const char* message;
  };
  for (const auto& c :
       {Case{{"-G", "1234", "vm"}, "vmm-core: -G 1234: a GDB debug server is not supported yet\n"},
        Case{{"-r", "snap", "vm"}, "vmm-core: -r snap: resuming from a snapshot is not supported yet\n"},
        Case{{"-n", "0,1G,0", "vm"}, "vmm-core: -n 0,1G,0: guest NUMA domains are not supported yet\n"}}) {
    CommandLine line = parse(c.words);
    ASSERT_TRUE(line.exitStatus);
    EXPECT_EQ(*line.exitStatus, 4);
    EXPECT_EQ(line.message, c.message);
  }
}

TEST(CommandLine, HelpExits0) {
  for (const auto& words :
       std::vector<std::vector<std::string>>{{"-h"}, {"--help"}, {"-s", "help"}, {"-l", "help"}}) {
    CommandLine line = parse(words);
    ASSERT_TRUE(line.exitStatus) << words.front();
    EXPECT_EQ(*line.exitStatus, 0);
    EXPECT_FALSE(line.message.empty());
  }
  EXPECT_NE(parse({"-s", "help"}).message.find("virtio-blk, virtio-net"), std::string::npos);
}

}  // namespace
}  // namespace cellvisor
