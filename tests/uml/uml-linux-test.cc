// Linux's own drivers against the real device servers on a host without
// KVM: User-Mode Linux 6.1 (build-kernel.sh --uml) boots the same /init as
// the guest kernel, and its PCI bus reaches uml-pci-bridge over vhost-user,
// where each device is a real, sandboxed, supervised server behind the
// core's own PciServerProxy. Linux's xhci_hcd and usbhid, virtio_blk, nvme,
// ahci, virtio_net and bochs-drm are the peers; the host kill -9's the
// servers meanwhile.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <map>
#include <regex>
#include <set>
#include <thread>

#include "tests/boot/core-process.h"
#include "tests/linux/linux-guest.h"

namespace cellvisor::testing {
namespace {

using namespace std::chrono_literals;

std::string umlKernel() {
  const char* script = std::getenv("CELLVISOR_LINUX_BUILD");
  if (script == nullptr) return "";
  CoreProcess print({"/bin/sh", script, "--uml", "--print-path"});
  if (print.wait(30s) != 0) return "";
  std::string path = print.out();
  while (!path.empty() && path.back() == '\n') path.pop_back();
  return path;
}

// The server of `binary` ("xhci-server") among the bridge's children; 0
// while it is being restarted.
pid_t serverOf(pid_t bridge, const std::string& binary) {
  for (pid_t child : childrenOf(bridge)) {
    std::error_code error;
    if (fs::read_symlink("/proc/" + std::to_string(child) + "/exe", error).filename() == binary) return child;
  }
  return 0;
}

class UmlLinux : public ::testing::Test {
 protected:
  void SetUp() override {
    kernel = umlKernel();
    if (kernel.empty() || ::access(kernel.c_str(), X_OK) != 0) {
      GTEST_SKIP() << "no User-Mode Linux at '" << kernel
                   << "': tests/linux/build-kernel.sh --uml builds it (tools/test.sh does)";
    }
    initramfs = testInitramfs();
    if (initramfs.empty() || ::access(initramfs.c_str(), R_OK) != 0) {
      GTEST_SKIP() << "no initramfs: the build makes it from busybox-static (apt-get install busybox-static)";
    }
    stem = (fs::path(::testing::TempDir()) / ("cellvisor-uml-" + std::to_string(::getpid()) + "-")).string();
  }
  void TearDown() override {
    if (uml) {
      // timeout(1) runs UML in a process group of its own and, on SIGALRM,
      // kills that whole group (UML's helper processes too).
      ::kill(uml->pid(), SIGALRM);
      uml->wait(10s);
    }
    if (bridge) {
      bridge->signal(SIGTERM);
      bridge->wait(10s);
    }
    for (const auto& path : scratchFiles) ::unlink(path.c_str());
  }

  // Starts the bridge with `devices` ("SOCKET-NAME=EMULATION,OPTIONS"), then
  // UML with one virtio_uml device per socket and /init's `arguments`.
  // `prefix` runs the bridge through another program (unshare).
  void boot(const std::vector<std::string>& devices, const std::string& arguments,
            const std::string& display = "", std::vector<std::string> prefix = {}) {
    std::vector<std::string> bridgeArgs = std::move(prefix);
    bridgeArgs.push_back(std::getenv("CELLVISOR_UML_BRIDGE"));
    std::vector<std::string> umlArgs = {
        "/usr/bin/timeout", "-s",      "KILL", "600", kernel, "mem=256M", "initrd=" + initramfs,
        "con0=null,fd:1",   "con=null"};
    for (const auto& device : devices) {
      std::string socket = stem + device.substr(0, device.find('=')) + ".sock";
      scratchFiles.push_back(socket);
      bridgeArgs.insert(bridgeArgs.end(), {"--device", socket + device.substr(device.find('='))});
      umlArgs.push_back("virtio_uml.device=" + socket + ":4660");
    }
    if (!display.empty()) bridgeArgs.insert(bridgeArgs.end(), {"--display", display});
    bridge = std::make_unique<CoreProcess>(bridgeArgs);
    ASSERT_TRUE(bridge->waitFor("uml-pci-bridge: ready", 30s)) << bridge->output();
    std::smatch port;
    std::string out = bridge->out();
    if (std::regex_search(out, port, std::regex("vnc port ([0-9]+)"))) vncPort = std::stoi(port[1]);
    std::istringstream words(arguments);
    for (std::string word; words >> word;) umlArgs.push_back(word);
    uml = std::make_unique<CoreProcess>(umlArgs);
  }

  // Waits for /init's verdict and the halt after it; returns the console.
  std::string finish(std::chrono::seconds timeout) {
    bool halted = uml->waitFor("reboot: System halted", timeout);
    // UML itself can fault on its way out after the halt (a block-layer
    // worker in klist_put, with virtio_blk or ahci present): what counts was
    // said before. The group is killed in TearDown.
    bridge->poll();
    // UML's console is a tty: its lines end in "\r\n".
    std::string console;
    for (char c : uml->out()) {
      if (c != '\r') console += c;
    }
    EXPECT_TRUE(halted) << console << uml->err() << bridge->err();
    return console.substr(0, console.find("reboot: System halted"));
  }

  std::string scratch(const std::string& name, int mib) {
    std::string path = stem + name;
    fs::remove(path);
    std::ofstream(path, std::ios::binary).close();
    fs::resize_file(path, static_cast<uintmax_t>(mib) << 20);
    scratchFiles.push_back(path);
    return path;
  }

  // A VNC client doing `actions`; its exit status.
  int vncClient(const std::string& actions) {
    std::string out = stem + "capture.ppm";
    scratchFiles.push_back(out);
    std::string command = std::string(std::getenv("CELLVISOR_VNC_CAPTURE")) + " " + actions +
                          " 127.0.0.1:" + std::to_string(vncPort) + " " + out + " >/dev/null 2>&1";
    int status = std::system(command.c_str());
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  std::string kernel;
  std::string initramfs;
  std::string stem;
  int vncPort = 0;
  std::unique_ptr<CoreProcess> bridge;
  std::unique_ptr<CoreProcess> uml;
  std::vector<std::string> scratchFiles;
};

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// bhyve's `-s 30,xhci,tablet` under Linux's xhci_hcd, usbhid and
// hid-generic: a VNC client's clicks on the display server reach /init as
// absolute positions and BTN_LEFT, before and after kill -9 of the xHCI
// server.
TEST_F(UmlLinux, TabletFollowsAVncPointerAcrossAServerKill) {
  boot({"xhci=xhci,tablet"}, "linux-guest.steps=drivers,tablet linux-guest.input-seconds=8",
       "tcp=127.0.0.1:0,w=800,h=600");
  ASSERT_TRUE(uml->waitFor("linux-guest: input: ready", 60s)) << uml->output() << bridge->err();
  // (130,80) and (400,300) of 800x600 on 0..32767.
  ASSERT_EQ(vncClient("--pointer 130,80,0 --pointer 130,80,1 --pointer 130,80,0"), 0);
  pid_t server = serverOf(bridge->pid(), "xhci-server");
  ASSERT_GT(server, 0);
  ASSERT_EQ(::kill(server, SIGKILL), 0);
  for (auto until = std::chrono::steady_clock::now() + 10s;
       serverOf(bridge->pid(), "xhci-server") == 0 && std::chrono::steady_clock::now() < until;) {
    std::this_thread::sleep_for(20ms);
  }
  ASSERT_EQ(vncClient("--pointer 400,300,0 --pointer 400,300,1 --pointer 400,300,0"), 0);
  std::string console = finish(60s);

  EXPECT_NE(console.find("class 0x0c0330 driver xhci_hcd"), std::string::npos) << console;
  EXPECT_NE(console.find(": cellvisor USB Tablet"), std::string::npos) << console;
  EXPECT_NE(console.find("linux-guest: input: tablet position 0 5331\n"), std::string::npos) << console;
  EXPECT_NE(console.find("linux-guest: input: tablet position 1 4376\n"), std::string::npos) << console;
  EXPECT_NE(console.find("linux-guest: input: tablet position 0 16404\n"), std::string::npos) << console;
  EXPECT_NE(console.find("linux-guest: input: tablet position 1 16410\n"), std::string::npos) << console;
  EXPECT_EQ(count(console, "linux-guest: input: tablet key 272 1\n"), 2u) << console;
  EXPECT_EQ(count(console, "linux-guest: input: tablet key 272 0\n"), 2u) << console;
  EXPECT_NE(console.find("linux-guest: all steps passed"), std::string::npos) << console;
  EXPECT_NE(bridge->err().find("killed by signal 9"), std::string::npos) << bridge->err();
}

// virtio_blk, nvme and ahci copy a checksummed pattern from a virtio-blk
// source onto a virtio-blk, an NVMe and an AHCI disk and read it back
// (O_DIRECT), while each target's server is killed during its own rounds.
TEST_F(UmlLinux, DisksAcrossServerKills) {
  constexpr int ROUNDS = 32;
  constexpr int KIB = 256;
  std::string source = scratch("source.img", 16);
  writePatternSource(source, KIB, ROUNDS);
  std::string vdb = scratch("vdb.img", 8);
  std::string nvme = scratch("nvme.img", 8);
  std::string sda = scratch("sda.img", 8);
  boot({"source=virtio-blk," + source, "vdb=virtio-blk," + vdb, "nvme=nvme," + nvme, "sda=ahci,hd:" + sda},
       "linux-guest.steps=drivers,blk linux-guest.blk=vdb,nvme0n1,sda linux-guest.blk-source=vda "
       "linux-guest.blk-kib=" +
           std::to_string(KIB) + " linux-guest.blk-rounds=" + std::to_string(ROUNDS));
  // Each target's server (the one holding its image: the source's is a
  // virtio-blk server too) dies up to three times during its rounds; only
  // kills made before its last round was reported count.
  std::map<std::string, int> killsDuring;
  std::set<pid_t> killed;
  for (const auto& [disk, image] :
       {std::pair<std::string, std::string>{"vdb", vdb}, {"nvme0n1", nvme}, {"sda", sda}}) {
    ASSERT_TRUE(uml->waitFor("blk: " + disk + ": round 1:", 60s)) << uml->output() << bridge->err();
    for (int i = 0; i < 3; ++i) {
      pid_t server = serverHolding(bridge->pid(), image);
      uml->poll();
      if (uml->out().find("blk: " + disk + ": round " + std::to_string(ROUNDS - 1) + ":") !=
          std::string::npos)
        break;
      // A server killed a moment ago can still hold its files while it
      // exits: the same process is not killed (and counted) twice.
      if (server != 0 && killed.insert(server).second && ::kill(server, SIGKILL) == 0) ++killsDuring[disk];
      std::this_thread::sleep_for(100ms);
    }
  }
  std::string console = finish(120s);

  EXPECT_NE(console.find("class 0x010802 driver nvme"), std::string::npos) << console;
  EXPECT_NE(console.find("class 0x010601 driver ahci"), std::string::npos) << console;
  EXPECT_NE(console.find("driver virtio_blk"), std::string::npos) << console;
  for (const std::string disk : {"vdb", "nvme0n1", "sda"}) {
    EXPECT_EQ(unmatchedRounds(console, disk, KIB, ROUNDS), "") << disk << '\n' << console;
  }
  // Every round went to the start of the disk: the last one is there.
  std::string last = patternBytes(KIB, ROUNDS);
  EXPECT_TRUE(readPrefix(vdb, last.size()) == last) << "vdb.img";
  EXPECT_TRUE(readPrefix(nvme, last.size()) == last) << "nvme.img";
  EXPECT_TRUE(readPrefix(sda, last.size()) == last) << "sda.img";
  EXPECT_NE(console.find("linux-guest: all steps passed"), std::string::npos) << console;
  int kills = 0;
  for (const std::string disk : {"vdb", "nvme0n1", "sda"}) {
    EXPECT_GE(killsDuring[disk], 1) << disk << ": its rounds ended before a kill";
    kills += killsDuring[disk];
  }
  EXPECT_EQ(count(bridge->err(), "killed by signal 9"), static_cast<size_t>(kills)) << bridge->err();
}

// The picture the display test draws, 800x600 as XRGB8888 rows (what
// /dev/fb0 takes): red across, green down, blue their XOR.
std::string testPicture() {
  std::string bytes;
  for (int y = 0; y < 600; ++y) {
    for (int x = 0; x < 800; ++x) {
      bytes += static_cast<char>((x ^ y) & 0xff);  // Blue, then green, red, unused.
      bytes += static_cast<char>(y * 255 / 599);
      bytes += static_cast<char>(x * 255 / 799);
      bytes += '\0';
    }
  }
  return bytes;
}

// How many pixels of a P6 capture differ from `picture`; -1 if it is not
// an 800x600 P6 file.
long pixelsDiffering(const std::string& ppm, const std::string& picture) {
  std::string header = "P6\n800 600\n255\n";
  if (ppm.compare(0, header.size(), header) != 0 || ppm.size() != header.size() + 800 * 600 * 3) return -1;
  long differing = 0;
  for (size_t pixel = 0; pixel < 800 * 600; ++pixel) {
    const char* rgb = ppm.data() + header.size() + pixel * 3;
    const char* xrgb = picture.data() + pixel * 4;
    if (rgb[0] != xrgb[2] || rgb[1] != xrgb[1] || rgb[2] != xrgb[0]) ++differing;
  }
  return differing;
}

// Linux's bochs DRM driver reads the display's EDID, lists its modes
// (800x600 preferred, as configured) and sets the mode through the DISPI
// registers; /init copies a host-made picture into /dev/fb0, and a real VNC
// client sees it pixel for pixel, and again after kill -9 of the display
// server (VRAM is the supervisor's memory; the port stays open).
TEST_F(UmlLinux, BochsDriversPictureSurvivesADisplayServerKill) {
  std::string picture = testPicture();
  std::string source = scratch("picture.img", 2);
  {
    std::fstream file(source, std::ios::binary | std::ios::in | std::ios::out);
    file.write(picture.data(), static_cast<std::streamsize>(picture.size()));
  }
  boot({"picture=virtio-blk," + source + ",ro", "fb=fbuf,tcp=127.0.0.1:0,w=800,h=600"},
       "linux-guest.steps=drivers,display linux-guest.fb-source=vda linux-guest.display-seconds=15");
  ASSERT_TRUE(uml->waitFor("linux-guest: display: drawn", 60s)) << uml->output() << bridge->err();
  std::string capture = stem + "capture.ppm";
  ASSERT_EQ(vncClient("--expect 800x600"), 0);
  EXPECT_EQ(pixelsDiffering(readPrefix(capture, 2 << 20), picture), 0);
  pid_t server = serverOf(bridge->pid(), "display-server");
  ASSERT_GT(server, 0);
  ASSERT_EQ(::kill(server, SIGKILL), 0);
  ::unlink(capture.c_str());
  ASSERT_EQ(vncClient("--expect 800x600"), 0);
  EXPECT_EQ(pixelsDiffering(readPrefix(capture, 2 << 20), picture), 0);
  std::string console = finish(60s);

  EXPECT_NE(console.find("driver bochs-drm"), std::string::npos) << console;
  EXPECT_NE(console.find("[drm] Found EDID data blob."), std::string::npos) << console;
  EXPECT_NE(console.find("linux-guest: display: fb0 bochs-drmdrmfb 800,600"), std::string::npos) << console;
  EXPECT_NE(console.find("linux-guest: display: card0-Virtual-1 modes: 800x600 "), std::string::npos)
      << console;
  EXPECT_NE(console.find("linux-guest: display: mode U:800x600p-0 set"), std::string::npos) << console;
  EXPECT_NE(console.find("linux-guest: display: drawn 800,600 from /dev/vda"), std::string::npos) << console;
  EXPECT_NE(console.find("linux-guest: all steps passed"), std::string::npos) << console;
  EXPECT_NE(bridge->err().find("killed by signal 9"), std::string::npos) << bridge->err();
}

// virtio_net pings the host's bridge through the net server's tap (the
// bridge runs in a network namespace of its own) while that server is
// killed three times: at most one ping per kill may go unanswered.
TEST_F(UmlLinux, NetworkAcrossServerKills) {
  if (auto reason = networkUnavailableReason(); !reason.empty()) GTEST_SKIP() << reason;
  constexpr int PINGS = 60;
  std::string script = stem + "net.sh";
  scratchFiles.push_back(script);
  std::ofstream(script)
      << "set -e\nip link set lo up\nip link add br0 type bridge\n"
         "ip addr add 10.79.0.1/24 dev br0\nip link set br0 up\nip tuntap add tap0 mode tap\n"
         "ip link set tap0 master br0 up\nexec \"$@\"\n";
  boot(
      {"net=virtio-net,tap0"},
      "linux-guest.steps=drivers,net linux-guest.ip=10.79.0.2 linux-guest.peer=10.79.0.1 linux-guest.pings=" +
          std::to_string(PINGS),
      "", {"/usr/bin/unshare", "-n", "/bin/sh", script});
  ASSERT_TRUE(uml->waitFor("linux-guest: net: start", 60s)) << uml->output() << bridge->err();
  int kills = 0;
  for (int i = 0; i < 3; ++i) {
    std::this_thread::sleep_for(2s);
    uml->poll();
    if (uml->out().find("net: done") != std::string::npos) break;
    pid_t server = serverOf(bridge->pid(), "virtio-net-server");
    if (server != 0 && ::kill(server, SIGKILL) == 0) ++kills;
  }
  std::string console = finish(120s);

  EXPECT_NE(console.find("driver virtio_net"), std::string::npos) << console;
  std::smatch lost;
  ASSERT_TRUE(std::regex_search(
      console, lost, std::regex("net: done: " + std::to_string(PINGS) + R"( pings, (\d+) unanswered)")))
      << console;
  EXPECT_LE(std::stoi(lost[1]), kills) << console;
  EXPECT_EQ(kills, 3) << "the pings ended before three kills: " << console;
  EXPECT_NE(console.find("linux-guest: all steps passed"), std::string::npos) << console;
  EXPECT_EQ(count(bridge->err(), "killed by signal 9"), static_cast<size_t>(kills)) << bridge->err();
}

}  // namespace
}  // namespace cellvisor::testing
