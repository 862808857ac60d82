// vmmd and vmctl end to end: a daemon on a private datastore and socket,
// driven by the real vmctl, running the test guest on real KVM.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "tests/firmware/disk-check-image.h"
#include "tests/vmmd/vmmd-fixture.h"

namespace cellvisor::testing {
namespace {

TEST_F(Vmctl, LifecycleFromTemplateToDestroy) {
  EXPECT_EQ(vmctl({"create", "-t", "echo", "-m", "256M", "web"}).first, 0);
  auto [status, list] = vmctl({"list"});
  EXPECT_EQ(status, 0);
  EXPECT_NE(list.find("NAME             DATASTORE"), std::string::npos) << list;
  EXPECT_NE(list.find("256M"), std::string::npos) << list;
  EXPECT_NE(list.find("stopped"), std::string::npos) << list;

  EXPECT_EQ(vmctl({"start", "web"}).first, 0);
  EXPECT_NE(vmctl({"list", "--json"}).second.find(R"("state":"running)"), std::string::npos);
  EXPECT_EQ(vmctl({"start", "web"}).first, 1) << "already running";

  // The console: type a line, the guest echoes it.
  int fd = connectConsole("web");
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, "hello-console\n", 14), 14);
  std::string seen = readUntil(fd, "echo: hello-console");
  ::close(fd);
  EXPECT_NE(seen.find("echo: hello-console"), std::string::npos) << seen;

  // The echo test then ends the VM itself; wait for vmmd to see it.
  std::string info = waitStopped("web");
  EXPECT_NE(info.find("state: stopped"), std::string::npos) << info;
  EXPECT_FALSE(fs::exists(root / "store" / "web" / "console.sock")) << "vmmd removes its console socket";
  EXPECT_NE(info.find("last exit: exit status 33"), std::string::npos) << info;
  EXPECT_NE(info.find("memory=\"256M\""), std::string::npos) << info;

  EXPECT_EQ(vmctl({"destroy", "web"}).first, 0);
  EXPECT_FALSE(fs::exists(root / "store" / "web"));
}

// vm-bhyve's firmware loaders: loader="bios" boots the VM's disk through
// SeaBIOS (its log in vmm.log); a template with keys for devices not here
// yet is created with a warning naming each key.
TEST_F(Vmctl, BiosLoaderBootsTheDiskThroughSeaBios) {
  if (::access(seabios().c_str(), R_OK) != 0)
    GTEST_SKIP() << seabios() << " missing (apt-get install seabios)";
  std::ofstream(root / "store" / ".templates" / "bios.conf")
      << "loader=\"bios\"\ncpu=\"1\"\nmemory=\"128M\"\ndisk0_type=\"nvme\"\ndisk0_name=\"disk0.img\"\n"
         "disk0_size=\"16M\"\nvirt_random=\"yes\"\nuuid=\"0f2a9a5e-4c1d-4f54-9d9e-2a41c8a6a2b7\"\n";
  auto [created, output] = vmctl({"create", "-t", "bios", "legacy"});
  ASSERT_EQ(created, 0) << output;
  EXPECT_NE(output.find("warning: "), std::string::npos) << output;
  EXPECT_NE(output.find("virt_random=\"yes\": ignored: that device is not supported yet"), std::string::npos)
      << output;
  writeDiskCheckImage((root / "store" / "legacy" / "disk0.img").string(), 256, 1);
  ASSERT_EQ(vmctl({"start", "legacy"}).first, 0);
  std::string info = waitStopped("legacy");
  EXPECT_NE(info.find("last exit: exit status 33"), std::string::npos) << info << log("legacy");
  EXPECT_NE(log("legacy").find("firmware: Booting from Hard Disk"), std::string::npos) << log("legacy");
  EXPECT_NE(log("legacy").find("firmware: disk-check: round ok"), std::string::npos) << log("legacy");
  EXPECT_EQ(vmctl({"destroy", "legacy"}).first, 0);
}

// `vmctl install` with firmware: the ISO goes into an AHCI CD drive that
// SeaBIOS boots first (El Torito), ahead of the VM's own disk.
TEST_F(Vmctl, InstallBootsTheIsoThroughFirmware) {
  if (::access(seabios().c_str(), R_OK) != 0)
    GTEST_SKIP() << seabios() << " missing (apt-get install seabios)";
  fs::path iso = root / "boot-check.iso";
  if (!writeDiskCheckIso(iso.string(), 2)) GTEST_SKIP() << "xorriso missing (apt-get install xorriso)";
  std::ofstream(root / "store" / ".templates" / "bios.conf")
      << "loader=\"bios\"\ncpu=\"1\"\nmemory=\"128M\"\ndisk0_type=\"ahci-hd\"\ndisk0_name=\"disk0.img\"\n"
         "disk0_size=\"16M\"\n";
  ASSERT_EQ(vmctl({"create", "-t", "bios", "setup"}).first, 0);
  writeDiskCheckImage((root / "store" / "setup" / "disk0.img").string(), 16, 1);  // Bootable too.
  ASSERT_EQ(vmctl({"iso", iso.string()}).first, 0);
  auto [installed, text] = vmctl({"install", "setup", "boot-check.iso"});
  ASSERT_EQ(installed, 0) << text;
  std::string info = waitStopped("setup");
  EXPECT_NE(info.find("last exit: exit status 33"), std::string::npos) << info << log("setup");
  EXPECT_NE(log("setup").find("firmware: Booting from DVD/CD"), std::string::npos) << log("setup");
  EXPECT_EQ(vmctl({"destroy", "setup"}).first, 0);
}

TEST_F(Vmctl, DeviceCrashShowsInDevices) {
  ASSERT_EQ(vmctl({"create", "-t", "stress", "db"}).first, 0);
  ASSERT_EQ(vmctl({"start", "db"}).first, 0);
  std::string devices;
  for (int i = 0; i < 100 && devices.find(R"("state":"running")") == std::string::npos; ++i) {
    devices = vmctl({"devices", "db", "--json"}).second;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  auto pidAt = devices.find(R"("pid":)");
  ASSERT_NE(pidAt, std::string::npos) << devices;
  pid_t server = std::atoi(devices.c_str() + pidAt + 6);
  ASSERT_GT(server, 0);
  EXPECT_NE(devices.find(R"("policy":"virtio-blk.policy","sandbox":"enforce")"), std::string::npos)
      << devices;
  EXPECT_NE(devices.find(R"("backend":")" + (root / "store" / "db" / "disk0.img").string() + "\""),
            std::string::npos)
      << devices;
  EXPECT_EQ(parentOf(server), daemon->pid()) << "vmmd, not the core, runs the device servers";
  ASSERT_EQ(::kill(server, SIGKILL), 0);
  for (int i = 0; i < 100 && devices.find(R"("restarts":1)") == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    devices = vmctl({"devices", "db", "--json"}).second;
  }
  EXPECT_NE(devices.find(R"("restarts":1)"), std::string::npos) << devices;
  EXPECT_NE(devices.find("killed by signal 9"), std::string::npos) << devices;
  auto table = vmctl({"devices", "db"}).second;
  EXPECT_NE(table.find("virtio-blk-4.0"), std::string::npos) << table;
  pidAt = devices.find(R"("pid":)");
  pid_t restarted = std::atoi(devices.c_str() + pidAt + 6);
  EXPECT_EQ(vmctl({"poweroff", "db"}).first, 0);
  // Pulling the plug on the core takes its device servers with it.
  bool gone = false;
  for (int i = 0; i < 100 && !gone; ++i) {
    // Gone, or a zombie waiting for whoever inherited it to reap it.
    std::ifstream stat("/proc/" + std::to_string(restarted) + "/stat");
    std::string line;
    gone = !std::getline(stat, line) || line.substr(line.rfind(')') + 2, 1) == "Z";
    if (!gone) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(gone) << "server " << restarted << " outlived its core";
  EXPECT_EQ(vmctl({"destroy", "-f", "db"}).first, 0);
}

// Live upgrade: the blk server is replaced by another binary while the guest
// writes and verifies its disk; the guest must finish with no error.
TEST_F(Vmctl, DeviceRestartOnANewBinaryIsInvisibleToTheGuest) {
  upgradeDiskServerMidRun("virtio-blk", "virtio-blk-stress", "virtio-blk-4.0");
}

TEST_F(Vmctl, NvmeLiveUpgradeIsInvisibleToTheGuest) {
  upgradeDiskServerMidRun("nvme", "nvme-stress", "nvme-4.0");
}

// The crash test through vmmd: the guest writes and verifies its disk while
// the test kill -9's the blk server over and over; vmmd restarts it each
// time, the guest sees no error, and `vmctl devices` counts every restart.
TEST_F(Vmctl, GuestSeesNoErrorWhileItsServerIsKilledRepeatedly) {
  writeTemplate("long", "test=virtio-blk-stress rounds=24");
  ASSERT_EQ(vmctl({"create", "-t", "long", "crash"}).first, 0);
  ASSERT_EQ(vmctl({"start", "crash"}).first, 0);
  std::mt19937 random(static_cast<unsigned>(::getpid()));
  int kills = 0;
  pid_t previous = 0;
  auto killAt = std::chrono::steady_clock::time_point::max();
  for (int attempt = 0; kills < 20 && attempt < 1000; ++attempt) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    pid_t server = serverPid("crash");
    if (server <= 0) continue;
    if (server != previous) {
      // A new instance: it lives a random 300-600 ms, past what the
      // supervisor treats as dying young (a crash loop), then dies.
      previous = server;
      killAt = std::chrono::steady_clock::now() + std::chrono::milliseconds(300 + random() % 300);
      continue;
    }
    if (std::chrono::steady_clock::now() >= killAt && ::kill(server, SIGKILL) == 0) {
      ++kills;
      killAt = std::chrono::steady_clock::time_point::max();
    }
  }
  EXPECT_EQ(kills, 20);
  // The last kill may not have been restarted yet: give vmmd a moment.
  std::string devices;
  for (int i = 0; i < 100 && devices.find(R"("restarts":20)") == std::string::npos; ++i) {
    if (i > 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    devices = vmctl({"devices", "crash", "--json"}).second;
  }
  EXPECT_NE(devices.find(R"("restarts":20)"), std::string::npos) << devices;
  std::string info = waitStopped("crash");
  EXPECT_NE(info.find("last exit: exit status 33"), std::string::npos) << "the guest saw an error:\n"
                                                                       << info << log("crash");
  std::string text = log("crash");
  size_t restarts = 0;
  for (size_t at = 0; (at = text.find("killed by signal 9 (Killed); restarting", at)) != std::string::npos;
       ++at) {
    ++restarts;
  }
  EXPECT_EQ(restarts, 20u) << text;
  EXPECT_EQ(vmctl({"destroy", "crash"}).first, 0);
}

// vmmd's own stop (systemd, SIGTERM) stops its guests before it goes, and
// leaves no core or server behind.
TEST_F(Vmctl, StoppingVmmdStopsItsVms) {
  writeTemplate("long", "test=virtio-blk-stress rounds=100");
  ASSERT_EQ(vmctl({"create", "-t", "long", "bye"}).first, 0);
  ASSERT_EQ(vmctl({"start", "bye"}).first, 0);
  pid_t server = 0;
  for (int i = 0; i < 100 && server <= 0; ++i) {
    server = serverPid("bye");
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_GT(server, 0);
  std::string info = vmctl({"info", "bye"}).second;
  auto at = info.find("running (");
  ASSERT_NE(at, std::string::npos) << info;
  pid_t core = std::atoi(info.c_str() + at + 9);
  daemon->signal(SIGTERM);
  EXPECT_EQ(daemon->wait(std::chrono::seconds(40)), 0) << daemon->output();
  EXPECT_NE(daemon->output().find("vmmd: stopping bye"), std::string::npos) << daemon->output();
  EXPECT_NE(::kill(core, 0), 0) << "the core outlived vmmd";
  EXPECT_NE(::kill(server, 0), 0) << "the device server outlived vmmd";
  daemon.reset();
}

// Install media: an ISO is imported into .iso/ and attached read-only for
// one boot; a kernel imported into .img/ becomes the VM's kernel.
TEST_F(Vmctl, InstallFromAnIsoOrAKernel) {
  writeTemplate("idle", "test=idle");
  ASSERT_EQ(vmctl({"create", "-t", "idle", "inst"}).first, 0);
  fs::path iso = root / "installer.iso";
  {
    std::ofstream file(iso, std::ios::binary);
    std::string image(64 * 1024, '\0');
    image.replace(16 * 2048 + 1, 5, "CD001");  // An ISO 9660 volume descriptor.
    file << image;
  }
  auto [imported, importText] = vmctl({"iso", iso.string()});
  EXPECT_EQ(imported, 0) << importText;
  EXPECT_NE(vmctl({"iso"}).second.find("installer.iso"), std::string::npos);
  EXPECT_NE(vmctl({"iso", "--json"}).second.find(R"({"name":"installer.iso","size":65536})"),
            std::string::npos);
  EXPECT_EQ(vmctl({"iso", iso.string()}).first, 1) << "already there";
  auto [absent, absentText] = vmctl({"iso", (root / "nosuch.iso").string()});
  EXPECT_NE(absentText.find("no file '" + (root / "nosuch.iso").string() + "' to import"), std::string::npos)
      << absentText;
  EXPECT_EQ(vmctl({"iso", "--json"}).second, R"([{"name":"installer.iso","size":65536}])"
                                             "\n")
      << "nothing added";

  auto [installed, installText] = vmctl({"install", "inst", "installer.iso"});
  ASSERT_EQ(installed, 0) << installText;
  std::string devices;
  for (int i = 0; i < 100 && devices.find("ahci-cd-5.0") == std::string::npos; ++i) {
    devices = vmctl({"devices", "inst"}).second;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_NE(devices.find("virtio-blk-4.0"), std::string::npos) << devices;
  EXPECT_NE(devices.find("ahci-cd-5.0"), std::string::npos) << "the ISO, in a CD drive: " << devices;
  EXPECT_EQ(vmctl({"install", "inst", "installer.iso"}).first, 1) << "running VMs are not installed";
  EXPECT_EQ(vmctl({"poweroff", "inst"}).first, 0);
  waitStopped("inst");
  EXPECT_EQ(vmctl({"info", "inst"}).second.find("installer.iso"), std::string::npos)
      << "not kept in the config";

  fs::path kernel = root / "guest-kernel";
  fs::copy_file(guestImage(), kernel);
  EXPECT_EQ(vmctl({"img", kernel.string()}).first, 0);
  auto [booted, bootText] = vmctl({"install", "inst", "guest-kernel"});
  EXPECT_EQ(booted, 0) << bootText;
  EXPECT_NE(
      vmctl({"info", "inst"}).second.find("kernel=\"" + (root / "store" / ".img" / "guest-kernel").string()),
      std::string::npos);
  EXPECT_EQ(vmctl({"poweroff", "inst"}).first, 0);
  waitStopped("inst");

  auto [bad, badText] = vmctl({"install", "inst", "/etc/hostname"});
  EXPECT_EQ(bad, 1);
  EXPECT_NE(badText.find("neither an ISO 9660 image nor a kernel"), std::string::npos) << badText;
  auto [missing, missingText] = vmctl({"install", "inst", "nosuch.iso"});
  EXPECT_NE(missingText.find("no medium 'nosuch.iso'"), std::string::npos) << missingText;
  EXPECT_EQ(vmctl({"destroy", "inst"}).first, 0);
}

// vm-bhyve's datastores: VMs live in any of them, names stay unique, and a
// removed datastore is forgotten but not deleted.
TEST_F(Vmctl, DatastoresHoldVms) {
  fs::path other = root / "other";
  ASSERT_EQ(vmctl({"datastore", "add", "other", other.string()}).first, 0);
  EXPECT_NE(vmctl({"datastore", "list"}).second.find(other.string()), std::string::npos);
  EXPECT_EQ(vmctl({"datastore", "add", "again", other.string()}).first, 1) << "one directory, one datastore";
  writeTemplate("hello", "test=hello");
  ASSERT_EQ(vmctl({"create", "-t", "hello", "-d", "other", "far"}).first, 0);
  EXPECT_TRUE(fs::exists(other / "far" / "far.conf"));
  EXPECT_NE(vmctl({"list", "--json"}).second.find(R"("name":"far","datastore":"other")"), std::string::npos);
  EXPECT_EQ(vmctl({"create", "-t", "echo", "far"}).first, 1) << "names are unique across datastores";
  auto [missing, missingText] = vmctl({"create", "-t", "echo", "-d", "nope", "x"});
  EXPECT_NE(missingText.find("no datastore named 'nope'"), std::string::npos) << missingText;
  ASSERT_EQ(vmctl({"start", "far"}).first, 0);
  std::string info = waitStopped("far");  // The hello guest ends by itself.
  EXPECT_NE(info.find("datastore: other"), std::string::npos) << info;
  EXPECT_NE(vmctl({"datastore", "list", "--json"}).second.find(R"("name":"other","type":"directory")"),
            std::string::npos);
  EXPECT_EQ(vmctl({"datastore", "remove", "default"}).first, 1);
  ASSERT_EQ(vmctl({"datastore", "remove", "other"}).first, 0);
  EXPECT_EQ(vmctl({"list"}).second.find("far"), std::string::npos);
  EXPECT_TRUE(fs::exists(other / "far" / "far.conf")) << "files stay";
}

// Switches are Linux bridges, made in a network namespace of the test's own
// (vmmd runs in it), recreated by vmmd when the host lost them.
TEST_F(Vmctl, SwitchesAreBridges) {
  if (auto reason = networkUnavailableReason(); !reason.empty()) GTEST_SKIP() << reason;
  daemon->signal(SIGTERM);
  daemon->wait(std::chrono::seconds(10));
  // A process holds the namespace so vmmd can be restarted into it.
  CoreProcess holder({"/usr/bin/unshare", "-n", "sleep", "120"});
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  std::string inNamespace = "/usr/bin/nsenter -t " + std::to_string(holder.pid()) + " -n ";
  auto startDaemon = [&] {
    std::vector<std::string> args = {"/usr/bin/nsenter",
                                     "-t",
                                     std::to_string(holder.pid()),
                                     "-n",
                                     env("CELLVISOR_VMMD"),
                                     "-d",
                                     (root / "store").string(),
                                     "-S",
                                     socket};
    if (!cgroupRoot.empty()) args.insert(args.end(), {"--cgroup", cgroupRoot.string()});
    daemon = std::make_unique<CoreProcess>(args);
    ASSERT_TRUE(daemon->waitFor("vmmd: serving")) << daemon->output();
  };
  auto shell = [&](const std::string& command) {
    CoreProcess process({"/bin/sh", "-c", inNamespace + command});
    process.wait(std::chrono::seconds(10));
    return process.output();
  };
  startDaemon();
  ASSERT_EQ(std::system((inNamespace + "ip link add uplink type veth peer name uplink-peer").c_str()), 0);

  auto [created, createText] = vmctl({"switch", "create", "-a", "10.77.0.1/24", "public"});
  ASSERT_EQ(created, 0) << createText;
  auto [added, addText] = vmctl({"switch", "add", "public", "uplink"});
  EXPECT_EQ(added, 0) << addText;
  EXPECT_NE(shell("ip -br link show master vm-public").find("uplink"), std::string::npos);
  EXPECT_NE(shell("ip -br addr show vm-public").find("10.77.0.1/24"), std::string::npos);
  std::string list = vmctl({"switch", "list", "--json"}).second;
  EXPECT_NE(
      list.find(R"({"name":"public","type":"standard","bridge":"vm-public","address":"10.77.0.1/24","mtu":0,)"
                R"("ports":["uplink"],"present":true,"up":true})"),
      std::string::npos)
      << list;
  std::ifstream config(root / "store" / ".config" / "system.conf");
  std::string text{std::istreambuf_iterator<char>(config), {}};
  EXPECT_NE(text.find("switch_list=\"public\""), std::string::npos) << text;
  EXPECT_NE(text.find("ports_public=\"uplink\""), std::string::npos) << text;

  // Errors: bad names, unknown interfaces, a port in two switches.
  EXPECT_NE(vmctl({"switch", "create", "a/b"}).second.find("invalid switch name"), std::string::npos);
  EXPECT_NE(vmctl({"switch", "create", "public"}).second.find("exists"), std::string::npos);
  EXPECT_NE(vmctl({"switch", "add", "public", "nosuch0"}).second.find("no interface nosuch0"),
            std::string::npos);
  // A bad address: the half-made bridge is taken down again, nothing kept.
  auto [badAddress, badAddressText] = vmctl({"switch", "create", "-a", "10.1.2.3/99", "lan"});
  EXPECT_EQ(badAddress, 1) << badAddressText;
  EXPECT_NE(badAddressText.find("vmctl: add 10.1.2.3/99 to vm-lan: "), std::string::npos) << badAddressText;
  EXPECT_NE(shell("ip link show vm-lan").find("does not exist"), std::string::npos);
  EXPECT_EQ(vmctl({"switch", "list", "--json"}).second.find("\"lan\""), std::string::npos);
  // One interface, one switch.
  ASSERT_EQ(vmctl({"switch", "create", "other"}).first, 0);
  EXPECT_NE(
      vmctl({"switch", "add", "other", "uplink"}).second.find("uplink is already a port of switch 'public'"),
      std::string::npos);
  EXPECT_EQ(vmctl({"switch", "destroy", "other"}).first, 0);
  EXPECT_NE(vmctl({"switch", "create", "-t", "manual", "-b", "nosuch0", "m"}).second.find("not a bridge"),
            std::string::npos);

  // The host loses its bridges (a reboot): vmmd makes them again at start.
  daemon->signal(SIGTERM);
  daemon->wait(std::chrono::seconds(10));
  shell("ip link del vm-public");
  startDaemon();
  EXPECT_NE(shell("ip -br link show master vm-public").find("uplink"), std::string::npos) << daemon->output();

  // A VM on the switch: its NIC's tap joins the bridge, and the guest
  // resolves the bridge's address by ARP and pings it.
  writeTemplate("net", "test=virtio-net ip=10.77.0.2 peer=10.77.0.1 pings=100");
  ASSERT_EQ(vmctl({"create", "-t", "net", "web"}).first, 0);
  EXPECT_NE(vmctl({"add", "-d", "network", "-s", "nosuch", "web"}).second.find("no switch named 'nosuch'"),
            std::string::npos);
  auto [addedNic, nicText] = vmctl({"add", "-d", "network", "-s", "public", "web"});
  ASSERT_EQ(addedNic, 0) << nicText;
  EXPECT_NE(nicText.find("Added network0 to web on switch public"), std::string::npos) << nicText;
  auto [started, startText] = vmctl({"start", "web"});
  ASSERT_EQ(started, 0) << startText;
  // Early in the guest's 100 pings (about 4 s), the NIC's server is replaced
  // (the live-upgrade path): the pings go on, none unanswered.
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  auto [replaced, replaceText] = vmctl({"device", "restart", "web", "virtio-net-5.0"});
  EXPECT_EQ(replaced, 0) << replaceText;
  std::string info = waitStopped("web");
  EXPECT_NE(info.find("last exit: exit status 33"), std::string::npos) << info << log("web");
  EXPECT_NE(log("web").find("virtio-net-5.0: restarting on request"), std::string::npos) << log("web");
  std::string nics = vmctl({"devices", "web", "--json"}).second;
  EXPECT_NE(nics.find(R"("name":"virtio-net-5.0")"), std::string::npos) << nics;
  EXPECT_NE(nics.find(R"("backend":"cvtap)"), std::string::npos) << nics;
  EXPECT_NE(nics.find(R"( on switch public")"), std::string::npos) << nics;
  EXPECT_EQ(shell("ip -br link show master vm-public").find("cvtap"), std::string::npos)
      << "the tap left with the VM";
  EXPECT_EQ(vmctl({"destroy", "web"}).first, 0);

  EXPECT_EQ(vmctl({"switch", "remove", "public", "uplink"}).first, 0);
  EXPECT_EQ(shell("ip -br link show master vm-public").find("uplink"), std::string::npos);
  EXPECT_EQ(vmctl({"switch", "destroy", "public"}).first, 0);
  EXPECT_NE(shell("ip link show vm-public").find("does not exist"), std::string::npos);
  EXPECT_EQ(vmctl({"switch", "list", "--json"}).second, "[]\n");
  holder.signal(SIGKILL);
}

// start -f: the VM runs on this terminal's console; info --json describes it.
TEST_F(Vmctl, StartInForegroundOnTheConsole) {
  ASSERT_EQ(vmctl({"create", "-t", "echo", "fg"}).first, 0);
  std::string command = "(sleep 1; printf 'hello-foreground\\n'; sleep 2; printf '~.') | " +
                        env("CELLVISOR_VMCTL") + " -S " + socket + " start -f fg";
  CoreProcess process({"/bin/sh", "-c", command});
  EXPECT_EQ(process.wait(std::chrono::seconds(30)), 0) << process.output();
  EXPECT_NE(process.output().find("echo: hello-foreground"), std::string::npos) << process.output();
  std::string info = vmctl({"info", "--json", "fg"}).second;
  EXPECT_NE(info.find(R"("name":"fg","datastore":"default","loader":"kernel","cpu":1,)"), std::string::npos)
      << info;
  EXPECT_NE(info.find(R"("state":"stopped")"), std::string::npos) << "start -f ends with its VM: " << info;
  EXPECT_NE(info.find(R"("lastExit":"exit status 33")"), std::string::npos) << info;
  EXPECT_NE(info.find(R"("config":"loader=\"kernel\"\u000a)"), std::string::npos) << info;
  auto [badPort, badPortText] = vmctl({"console", "fg", "com3"});
  EXPECT_NE(badPortText.find("com3 not in {com1,com2}"), std::string::npos) << badPortText;
  auto [stopped, stoppedText] = vmctl({"console", "fg"});
  EXPECT_NE(stoppedText.find("cannot attach to"), std::string::npos)
      << "the VM is not running: " << stoppedText;
}

TEST_F(Vmctl, ClearErrors) {
  auto [missing, missingText] = vmctl({"start", "nosuch"});
  EXPECT_EQ(missing, 1);
  EXPECT_NE(missingText.find("vmctl: no VM named 'nosuch'"), std::string::npos) << missingText;
  auto [slash, slashText] = vmctl({"create", "a/b"});
  EXPECT_EQ(slash, 1);
  EXPECT_NE(slashText.find("invalid VM name 'a/b'"), std::string::npos) << slashText;
  auto [templateMissing, templateText] = vmctl({"create", "-t", "nope", "x"});
  EXPECT_NE(templateText.find("no template 'nope'"), std::string::npos) << templateText;
  ASSERT_EQ(vmctl({"create", "-t", "stress", "busy"}).first, 0);
  ASSERT_EQ(vmctl({"start", "busy"}).first, 0);
  auto [running, runningText] = vmctl({"destroy", "busy"});
  EXPECT_EQ(running, 1);
  EXPECT_NE(runningText.find("is running"), std::string::npos) << runningText;
  EXPECT_EQ(vmctl({"destroy", "-f", "busy"}).first, 0);
}

TEST_F(Vmctl, StartErrorsNameTheDevice) {
  ASSERT_EQ(vmctl({"create", "-t", "echo", "lost"}).first, 0);
  fs::remove(root / "store" / "lost" / "disk0.img");
  auto [status, text] = vmctl({"start", "lost"});
  EXPECT_EQ(status, 1);
  EXPECT_NE(text.find("vmctl: disk0: " + (root / "store" / "lost" / "disk0.img").string() +
                      ": No such file or directory"),
            std::string::npos)
      << text;
  std::ofstream(root / "store" / "lost" / "disk0.img").put(0);
  std::ofstream(root / "store" / "lost" / "lost.conf", std::ios::app)
      << "network0_type=\"virtio-net\"\nnetwork0_switch=\"nope\"\n";
  auto [nic, nicText] = vmctl({"start", "lost"});
  EXPECT_NE(nicText.find("vmctl: network0: no switch named 'nope'"), std::string::npos) << nicText;
  EXPECT_EQ(vmctl({"devices", "lost", "--json"}).second, "[]\n")
      << "a start that failed leaves no device behind";
  EXPECT_NE(vmctl({"info", "lost"}).second.find("state: stopped"), std::string::npos);
}

TEST_F(Vmctl, ManageStoppedVms) {
  ASSERT_EQ(vmctl({"create", "-t", "stress", "base"}).first, 0);
  EXPECT_EQ(vmctl({"add", "-d", "8M", "base"}).second, "Added disk1 to base\n");
  EXPECT_EQ(fs::file_size(root / "store" / "base" / "disk1.img"), 8u << 20);
  // vm-bhyve's -t: an NVMe disk, served by its own server when the VM runs.
  EXPECT_EQ(vmctl({"add", "-d", "disk", "-t", "nvme", "-s", "4M", "base"}).second, "Added disk2 to base\n");
  auto [badType, badTypeText] = vmctl({"add", "-d", "disk", "-t", "floppy", "-s", "4M", "base"});
  EXPECT_EQ(badType, 1);
  EXPECT_NE(badTypeText.find("expected virtio-blk, nvme or ahci-hd"), std::string::npos) << badTypeText;
  EXPECT_FALSE(fs::exists(root / "store" / "base" / "disk3.img")) << "a refused disk leaves no image";
  EXPECT_EQ(vmctl({"clone", "base", "copy"}).first, 0);
  EXPECT_TRUE(fs::exists(root / "store" / "copy" / "disk1.img"));
  EXPECT_EQ(vmctl({"rename", "copy", "moved"}).first, 0);
  EXPECT_TRUE(fs::exists(root / "store" / "moved" / "moved.conf"));
  EXPECT_FALSE(fs::exists(root / "store" / "copy"));

  // configure: an editor that changes cpu, then one that breaks the file.
  ::setenv("EDITOR", "sed -i s/cpu=.1./cpu=\\\"2\\\"/", 1);
  EXPECT_EQ(vmctl({"configure", "moved"}).first, 0);
  EXPECT_NE(vmctl({"info", "moved"}).second.find("cpu: 2"), std::string::npos);
  ::setenv("EDITOR", "sh -c 'echo bogus=1 >> \"$0\"'", 1);
  auto [refused, message] = vmctl({"configure", "moved"});
  EXPECT_EQ(refused, 1);
  EXPECT_NE(message.find("bogus: unknown configuration key"), std::string::npos) << message;
  EXPECT_NE(vmctl({"info", "moved"}).second.find("cpu: 2"), std::string::npos)
      << "unchanged by the refused edit";
  ::unsetenv("EDITOR");

  // restart: the stress guest has no ACPI handler, so the button stops it at once.
  ASSERT_EQ(vmctl({"start", "moved"}).first, 0);
  std::string devices;
  for (int i = 0; i < 100 && devices.find(R"("name":"nvme-6.0","pid":)") == std::string::npos; ++i) {
    devices = vmctl({"devices", "moved", "--json"}).second;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_NE(devices.find(R"("policy":"nvme.policy","sandbox":"enforce")"), std::string::npos) << devices;
  std::string before = vmctl({"list", "-v"}).second;
  EXPECT_NE(before.find("UPTIME"), std::string::npos) << before;
  std::string state = vmctl({"info", "moved"}).second + log("moved");
  EXPECT_EQ(vmctl({"rename", "moved", "x"}).first, 1) << "running VMs are not renamed:\n" << state;
  EXPECT_EQ(vmctl({"restart", "moved"}).first, 0);
  std::string after = vmctl({"list"}).second;
  EXPECT_NE(after.find("running"), std::string::npos) << after;
  EXPECT_EQ(vmctl({"destroy", "-f", "moved"}).first, 0);
}

TEST_F(Vmctl, AutostartFromVmList) {
  ASSERT_EQ(vmctl({"create", "-t", "stress", "first"}).first, 0);
  ASSERT_EQ(vmctl({"create", "-t", "stress", "second"}).first, 0);
  std::ofstream(root / "store" / ".config" / "system.conf") << "vm_list=\"first second\"\nvm_delay=\"0\"\n";
  // A new vmmd starts them on its own.
  stopDaemon();
  std::vector<std::string> args = {env("CELLVISOR_VMMD"), "-d", (root / "store").string(), "-S", socket};
  if (!cgroupRoot.empty()) args.insert(args.end(), {"--cgroup", cgroupRoot.string()});
  daemon = std::make_unique<CoreProcess>(args);
  ASSERT_TRUE(daemon->waitFor("autostart: started second")) << daemon->output();
  std::string list = vmctl({"list", "--json"}).second;
  EXPECT_NE(list.find(R"("name":"first","datastore":)"), std::string::npos) << list;
  EXPECT_NE(list.find(R"("auto":true,"state":"running)"), std::string::npos) << list;
  EXPECT_EQ(vmctl({"destroy", "-f", "first"}).first, 0);
  EXPECT_EQ(vmctl({"destroy", "-f", "second"}).first, 0);
}

TEST_F(Vmctl, InitAndReset) {
  auto [status, output] = vmctl({"init"});
  EXPECT_EQ(status, 0);
  EXPECT_NE(output.find("Installed template default"), std::string::npos) << output;
  EXPECT_TRUE(fs::exists(root / "store" / ".templates" / "default.conf"));
  EXPECT_EQ(vmctl({"init"}).second, "") << "nothing left to install";
  ASSERT_EQ(vmctl({"create", "-t", "stress", "r"}).first, 0);
  ASSERT_EQ(vmctl({"start", "r"}).first, 0);
  auto pid = [&] {
    std::string json = vmctl({"list", "--json"}).second;
    auto at = json.find(R"("pid":)");
    return at == std::string::npos ? 0 : std::atoi(json.c_str() + at + 6);
  };
  int before = pid();
  EXPECT_EQ(vmctl({"reset", "r"}).first, 0);
  int after = pid();
  EXPECT_GT(after, 0);
  EXPECT_NE(after, before) << "a new core after the reset";
  EXPECT_EQ(vmctl({"destroy", "-f", "r"}).first, 0);
}

// Without a vmmd to talk to, vmctl says which socket it tried and why it
// failed, in words a user can act on.
TEST_F(Vmctl, UnreachableVmmdIsExplained) {
  auto run = [](const std::vector<std::string>& args) {
    CoreProcess process(args);
    int status = process.wait(std::chrono::seconds(10));
    return std::make_pair(status, process.output());
  };
  std::string missing = (root / "nosuch.sock").string();
  auto [status, text] = run({env("CELLVISOR_VMCTL"), "-S", missing, "list"});
  EXPECT_EQ(status, 1);
  EXPECT_NE(text.find("vmmd is not running: there is no control socket at " + missing), std::string::npos)
      << text;
  EXPECT_NE(text.find("vmmd -d"), std::string::npos) << text;
  // A socket a vmmd left behind: nobody listens.
  std::string stale = (root / "stale.sock").string();
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, stale.c_str(), sizeof(address.sun_path) - 1);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  ::close(fd);
  std::tie(status, text) = run({env("CELLVISOR_VMCTL"), "-S", stale, "list"});
  EXPECT_EQ(status, 1);
  EXPECT_NE(text.find("nothing listens on " + stale), std::string::npos) << text;
}

TEST_F(Vmctl, SocketIsPrivateToItsOwner) {
  struct stat st {};
  ASSERT_EQ(::stat(socket.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to try as another user";
  pid_t child = ::fork();
  if (child == 0) {
    if (::setresgid(65534, 65534, 65534) != 0 || ::setresuid(65534, 65534, 65534) != 0) _exit(2);
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, socket.c_str(), sizeof(address.sun_path) - 1);
    _exit(::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 ? 1 : 0);
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "another user could connect";
  // vmctl run by that user says whose daemon it is.
  int output[2];
  ASSERT_EQ(::pipe(output), 0);
  child = ::fork();
  if (child == 0) {
    ::dup2(output[1], 1);
    ::dup2(output[1], 2);
    if (::setresgid(65534, 65534, 65534) != 0 || ::setresuid(65534, 65534, 65534) != 0) _exit(2);
    std::string vmctl = env("CELLVISOR_VMCTL");
    ::execl(vmctl.c_str(), vmctl.c_str(), "-S", socket.c_str(), "list", nullptr);
    _exit(127);
  }
  ::close(output[1]);
  std::string text;
  char buffer[1024];
  for (ssize_t count; (count = ::read(output[0], buffer, sizeof(buffer))) > 0;) text.append(buffer, count);
  ::close(output[0]);
  ::waitpid(child, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1) << text;
  EXPECT_NE(text.find(socket + " belongs to root (uid 0): that vmmd serves its owner only"),
            std::string::npos)
      << text;
}

}  // namespace
}  // namespace cellvisor::testing
