// The display server (bhyve's fbuf: the Bochs display adapter and its VNC
// server) driven as a guest's driver drives it — a mode set through the
// DISPI registers, pixels written straight into VRAM — and looked at
// through a real VNC client (libvncclient), pixel for pixel.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <future>
#include <iostream>
#include <regex>
#include <sstream>
#include <thread>

#include "device.capnp.h"
#include "host/server-kind.h"
#include "proto/message-channel.h"
#include "servers/display/bochs-display.h"
#include "servers/display/display-options.h"
#include "tests/harness/virtio-harness.h"

namespace cellvisor::testing {
namespace {

constexpr uint64_t VRAM_ADDRESS = 0xc000'0000;
constexpr uint64_t MMIO_ADDRESS = 0xd000'0000;

struct Picture {
  int width = 0, height = 0;
  std::vector<uint8_t> rgb;
  uint32_t at(int x, int y) const {
    const uint8_t* p = &rgb[3 * (size_t(y) * width + x)];
    return uint32_t{p[0]} << 16 | uint32_t{p[1]} << 8 | p[2];
  }
};

// Rig: the server started through its launch descriptor, as the core does.
struct DisplayRig {
  explicit DisplayRig(const std::string& extraOptions = "") : memory(16 << 20) {
    const ServerKind* kind = findServerKind("fbuf");
    if (kind == nullptr) throw std::runtime_error("no fbuf server kind");
    std::string options = "tcp=127.0.0.1:0,w=800,h=600" + extraOptions;
    PreparedServer prepared = kind->prepare({options, 1, "fbuf-harness"});
    sockaddr_in bound{};
    socklen_t length = sizeof(bound);
    ::getsockname(prepared.backends.at(0).get(), reinterpret_cast<sockaddr*>(&bound), &length);
    port = ntohs(bound.sin_port);
    ServerLaunch launch;
    launch.binary = findServerBinary(kind->folder, kind->binary);
    launch.deviceName = "fbuf-harness";
    launch.options = prepared.options;
    launch.backends = std::move(prepared.backends);
    launch.queues = prepared.doorbells;
    launch.vectors = prepared.vectors;
    launch.barMemoryBytes = prepared.barMemoryBytes;
    launch.input = inputRoleOf(prepared);
    resources = makeDeviceResources(launch);
    process = std::make_unique<DeviceServerProcess>(std::move(launch), *resources, memory.memfd(),
                                                    memory.regions());
    channel = std::make_unique<DeviceChannel>(*resources);
    channel->setServerGone([this] { return !process->supervised() && process->exited(); });
    proxy = std::make_unique<PciServerProxy>(*channel, wiring);
    proxy->assignBar(0, VRAM_ADDRESS);
    proxy->assignBar(2, MMIO_ADDRESS);
    proxy->enableDecoding();
    vram = wiring.sharedBars.at(VRAM_ADDRESS);
  }
  uint16_t readDispi(uint16_t index) {
    return static_cast<uint16_t>(proxy->readBar(2, BochsDisplay::DISPI_OFFSET + 2 * index, 2));
  }
  void writeDispi(uint16_t index, uint16_t value) {
    proxy->writeBar(2, BochsDisplay::DISPI_OFFSET + 2 * index, 2, value);
  }
  // The sequence Linux's bochs driver writes.
  void setMode(uint16_t width, uint16_t height, uint16_t bpp) {
    writeDispi(dispi::ENABLE, 0);
    writeDispi(dispi::BPP, bpp);
    writeDispi(dispi::XRES, width);
    writeDispi(dispi::YRES, height);
    writeDispi(dispi::BANK, 0);
    writeDispi(dispi::VIRT_WIDTH, width);
    writeDispi(dispi::VIRT_HEIGHT, height);
    writeDispi(dispi::X_OFFSET, 0);
    writeDispi(dispi::Y_OFFSET, 0);
    writeDispi(dispi::ENABLE, dispi::ENABLED | dispi::LFB_ENABLED);
  }
  // Runs the VNC client; its exit status, and the picture when it is 0.
  std::pair<int, Picture> capture(const std::string& flags = "", int index = 0) {
    std::string out = ::testing::TempDir() + "vnc-capture-" + std::to_string(::getpid()) + "-" +
                      std::to_string(index) + ".ppm";
    std::string command =
        std::string(VNC_CAPTURE) + " " + flags + " 127.0.0.1:" + std::to_string(port) + " " + out + " 2>&1";
    int status = std::system(command.c_str());
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    Picture picture;
    if (code == 0) {
      std::ifstream file(out, std::ios::binary);
      std::string magic;
      int maxValue;
      file >> magic >> picture.width >> picture.height >> maxValue;
      file.get();
      picture.rgb.resize(size_t(3) * picture.width * picture.height);
      file.read(reinterpret_cast<char*>(picture.rgb.data()),
                static_cast<std::streamsize>(picture.rgb.size()));
    }
    ::unlink(out.c_str());
    return {code, picture};
  }

  GuestMemory memory;
  HarnessWiring wiring;
  uint16_t port = 0;
  std::unique_ptr<DeviceResources> resources;
  std::unique_ptr<DeviceServerProcess> process;
  std::unique_ptr<DeviceChannel> channel;
  std::unique_ptr<PciServerProxy> proxy;
  std::span<uint8_t> vram;
};

// A picture with something different in every tile: gradients, a border
// and a diagonal.
uint32_t pattern(int x, int y, int width, int height) {
  if (x == 0 || y == 0 || x == width - 1 || y == height - 1) return 0xffffff;
  if (x == y) return 0xff0000;
  return uint32_t((x * 255) / width) << 16 | uint32_t((y * 255) / height) << 8 | uint32_t((x ^ y) & 0xff);
}

void drawXrgb(std::span<uint8_t> vram, int width, int height) {
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      uint32_t pixel = pattern(x, y, width, height);
      std::memcpy(vram.data() + 4 * (size_t(y) * width + x), &pixel, 4);
    }
  }
}

::testing::AssertionResult samePicture(const Picture& seen, int width, int height,
                                       const std::function<uint32_t(int, int)>& expected) {
  if (seen.width != width || seen.height != height)
    return ::testing::AssertionFailure() << "size " << seen.width << "x" << seen.height;
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      if (seen.at(x, y) != expected(x, y)) {
        return ::testing::AssertionFailure() << std::hex << "pixel (" << std::dec << x << "," << y << std::hex
                                             << ") is " << seen.at(x, y) << ", not " << expected(x, y);
      }
    }
  }
  return ::testing::AssertionSuccess();
}

TEST(Display, RegistersReadAsDriversExpect) {
  DisplayRig rig;
  EXPECT_EQ(rig.proxy->readConfig(0x00, 4), 0x11111234u);
  EXPECT_EQ(rig.proxy->readConfig(0x08, 4) >> 8, 0x038000u) << "display, other: no legacy VGA";
  EXPECT_EQ(rig.readDispi(dispi::ID), dispi::ID5);
  EXPECT_EQ(uint64_t{rig.readDispi(dispi::VIDEO_MEMORY_64K)} << 16, rig.vram.size());
  EXPECT_EQ(rig.proxy->readBar(2, BochsDisplay::QEXT_OFFSET, 4), 8u);
  EXPECT_EQ(rig.proxy->readBar(2, BochsDisplay::QEXT_OFFSET + 4, 4), 0x1e1e1e1eu) << "little-endian";
  rig.writeDispi(dispi::ENABLE, dispi::GETCAPS);
  EXPECT_EQ(rig.readDispi(dispi::XRES), dispi::MAX_XRES);
  EXPECT_EQ(rig.readDispi(dispi::BPP), 32);
  rig.setMode(1024, 768, 32);
  EXPECT_EQ(rig.readDispi(dispi::XRES), 1024);
  EXPECT_EQ(rig.readDispi(dispi::ENABLE), dispi::ENABLED | dispi::LFB_ENABLED);
  rig.writeDispi(dispi::ID, 0x1234);
  EXPECT_EQ(rig.readDispi(dispi::ID), dispi::ID5) << "the version is not the guest's to change";
}

// The EDID at the register BAR's start names w x h as the preferred mode,
// as Debian's edid-decode (a conformity checker nobody here wrote) reads it;
// edid=off leaves zeros there, as QEMU's edid=off does.
TEST(Display, TheEdidNamesTheResolutionAsked) {
  DisplayRig rig(",w=1280,h=720");
  std::string bytes;
  for (uint64_t at = 0; at < 128; ++at) bytes.push_back(static_cast<char>(rig.proxy->readBar(2, at, 1)));
  EXPECT_EQ(bytes.substr(0, 8), std::string("\0\xff\xff\xff\xff\xff\xff\0", 8));
  EXPECT_EQ(rig.proxy->readBar(2, 128, 4), 0u) << "one block, no extensions";
  if (std::system("command -v edid-decode >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "edid-decode not installed (apt-get install edid-decode)";
  }
  std::string path = ::testing::TempDir() + "edid-" + std::to_string(::getpid()) + ".bin";
  std::ofstream(path, std::ios::binary) << bytes;
  std::string report;
  {
    FILE* decode = ::popen(("edid-decode --check " + path + " 2>&1").c_str(), "r");
    ASSERT_NE(decode, nullptr);
    char line[512];
    while (std::fgets(line, sizeof(line), decode)) report += line;
    ::pclose(decode);
  }
  ::unlink(path.c_str());
  EXPECT_NE(report.find("EDID conformity: PASS"), std::string::npos) << report;
  EXPECT_TRUE(std::regex_search(report, std::regex("DTD 1: +1280x720 +59\\.9"))) << report;
  DisplayRig none(",edid=off");
  EXPECT_EQ(none.proxy->readBar(2, 0, 4), 0u);
}

TEST(Display, AVncClientSeesWhatTheGuestDrewInEveryEncoding) {
  DisplayRig rig;
  rig.setMode(800, 600, 32);
  drawXrgb(rig.vram, 800, 600);
  for (const char* encoding : {"raw", "hextile", "zlib", "tight", "zrle"}) {
    auto [status, seen] = rig.capture(std::string("--expect 800x600 --encodings ") + encoding);
    ASSERT_EQ(status, 0) << encoding;
    EXPECT_TRUE(samePicture(seen, 800, 600, [](int x, int y) { return pattern(x, y, 800, 600); }))
        << encoding;
  }
}

TEST(Display, AModeChangeResizesTheDesktopAndSixteenBitPixelsConvert) {
  DisplayRig rig;
  rig.setMode(640, 480, 32);
  drawXrgb(rig.vram, 640, 480);
  ASSERT_EQ(rig.capture("--expect 640x480").first, 0);
  // 1024x768 at 16 bpp (RGB565), drawn with a page offset: the second page.
  rig.setMode(1024, 768, 16);
  rig.writeDispi(dispi::VIRT_HEIGHT, 2 * 768);
  rig.writeDispi(dispi::Y_OFFSET, 768);
  auto rgb565 = [](int x, int y) { return static_cast<uint16_t>((x * 7 + y * 13) & 0xffff); };
  for (int y = 0; y < 768; ++y) {
    for (int x = 0; x < 1024; ++x) {
      uint16_t pixel = rgb565(x, y);
      std::memcpy(rig.vram.data() + 2 * ((768 + size_t(y)) * 1024 + x), &pixel, 2);
    }
  }
  auto [status, seen] = rig.capture("--expect 1024x768");
  ASSERT_EQ(status, 0);
  EXPECT_TRUE(samePicture(seen, 1024, 768, [&](int x, int y) {
    uint16_t p = rgb565(x, y);
    uint32_t r = (p >> 11) & 0x1f, g = (p >> 5) & 0x3f, b = p & 0x1f;
    return (r << 3 | r >> 2) << 16 | (g << 2 | g >> 4) << 8 | (b << 3 | b >> 2);
  }));
}

TEST(Display, APasswordIsRequiredAndAWrongOneRefused) {
  DisplayRig rig(",password=sesame");
  rig.setMode(640, 480, 32);
  drawXrgb(rig.vram, 640, 480);
  EXPECT_EQ(rig.capture("--password wrong --timeout-ms 3000").first, 1);
  EXPECT_EQ(rig.capture("--timeout-ms 3000").first, 1) << "no password, no picture";
  auto [status, seen] = rig.capture("--password sesame --expect 640x480");
  ASSERT_EQ(status, 0);
  EXPECT_TRUE(samePicture(seen, 640, 480, [](int x, int y) { return pattern(x, y, 640, 480); }));
}

TEST(Display, SeveralClientsAtOnce) {
  DisplayRig rig;
  rig.setMode(800, 600, 32);
  drawXrgb(rig.vram, 800, 600);
  std::vector<std::future<std::pair<int, Picture>>> clients;
  for (int i = 0; i < 3; ++i)
    clients.push_back(
        std::async(std::launch::async, [&rig, i] { return rig.capture("--expect 800x600", i); }));
  for (auto& client : clients) {
    auto [status, seen] = client.get();
    ASSERT_EQ(status, 0);
    EXPECT_TRUE(samePicture(seen, 800, 600, [](int x, int y) { return pattern(x, y, 800, 600); }));
  }
}

// Kill -9 with the picture up: VRAM is the supervisor's, the port is the
// supervisor's, the mode is in the state segment; the next instance shows
// the same screen on the same port.
// A client that speaks QEMU's extended key events sends scan codes, and
// they win over the keysym sent with them: 'a' as a keysym, q's scan code.
TEST(Display, AClientsScanCodesReachTheInputLink) {
  DisplayRig rig;
  rig.setMode(800, 600, 32);
  ASSERT_EQ(rig.capture("--expect 800x600 --key 0x61/0x10").first, 0);
  RingReader reader = rig.resources->coreInputLink()->reader();
  std::vector<uint8_t> bytes;
  std::vector<std::pair<uint16_t, bool>> keys;
  while (reader.tryRead(bytes) == RingReader::Status::MESSAGE) {
    ReceivedMessage message(bytes);
    auto event = message.root<proto::InputEvent>();
    if (event.which() == proto::InputEvent::KEY)
      keys.emplace_back(event.getKey().getCode(), event.getKey().getDown());
  }
  EXPECT_EQ(keys, (std::vector<std::pair<uint16_t, bool>>{{0x10, true}, {0x10, false}}));
}

TEST(Display, PictureModeAndPortSurviveAKill) {
  DisplayRig rig;
  rig.setMode(800, 600, 32);
  drawXrgb(rig.vram, 800, 600);
  ASSERT_EQ(rig.capture("--expect 800x600").first, 0);
  for (int round = 0; round < 3; ++round) {
    // A client that connects while the server is down waits in the
    // supervisor's listen backlog and is served by the successor.
    auto killed = std::chrono::steady_clock::now();
    ::kill(rig.process->pid(), SIGKILL);
    auto waiting =
        std::async(std::launch::async, [&rig, round] { return rig.capture("--expect 800x600", 10 + round); });
    rig.process->reap();
    rig.process->restart();
    EXPECT_EQ(rig.readDispi(dispi::XRES), 800)
        << "the mode outlived the server; "
        << (rig.process->exited() ? "exited: " + rig.process->reap() : "running");
    auto [early, earlySeen] = waiting.get();
    ASSERT_EQ(early, 0) << "a client connecting during the restart";
    std::cout << "kill -9 to a picture at a client that connected meanwhile: "
              << std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - killed).count()
              << " ms (vnc-capture's start and 300 ms of settling included)\n";
    EXPECT_TRUE(samePicture(earlySeen, 800, 600, [](int x, int y) { return pattern(x, y, 800, 600); }));
    auto [status, seen] = rig.capture("--expect 800x600");
    ASSERT_EQ(status, 0) << "round " << round;
    EXPECT_TRUE(samePicture(seen, 800, 600, [](int x, int y) { return pattern(x, y, 800, 600); }));
  }
}

// The option ROM (SeaBIOS's vgabios-bochs-display.bin by default) behind
// the expansion ROM register: sized, placed and enabled as firmware does,
// then read straight from its memory slot.
TEST(Display, TheOptionRomIsBehindTheExpansionRomRegister) {
  if (::access(DisplayOptions::DEFAULT_ROM, R_OK) != 0)
    GTEST_SKIP() << DisplayOptions::DEFAULT_ROM << " is missing";
  DisplayRig rig;
  rig.proxy->writeConfig(0x30, 4, 0xfffff800);
  uint32_t size = ~(rig.proxy->readConfig(0x30, 4) & 0xfffff800) + 1;
  EXPECT_EQ(size, 0x8000u) << "28 KiB of ROM in a 32 KiB window";
  constexpr uint64_t ROM_ADDRESS = 0xe000'0000;
  rig.proxy->writeConfig(0x30, 4, ROM_ADDRESS);
  EXPECT_EQ(rig.wiring.sharedBars.count(ROM_ADDRESS), 0u) << "not decoded until enabled";
  rig.proxy->writeConfig(0x30, 4, ROM_ADDRESS | 1);
  ASSERT_EQ(rig.wiring.sharedBars.count(ROM_ADDRESS), 1u);
  std::span<uint8_t> rom = rig.wiring.sharedBars.at(ROM_ADDRESS);
  ASSERT_EQ(rom.size(), size);
  EXPECT_EQ(rom[0], 0x55);
  EXPECT_EQ(rom[1], 0xaa);
  uint16_t pcir = static_cast<uint16_t>(rom[0x18] | rom[0x19] << 8);
  ASSERT_LT(pcir + 8u, rom.size());
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(&rom[pcir]), 4), "PCIR");
  EXPECT_EQ(rom[pcir + 4] | rom[pcir + 5] << 8, 0x1234) << "the ROM is for this adapter";
  EXPECT_EQ(rom[pcir + 6] | rom[pcir + 7] << 8, 0x1111);
  rig.proxy->writeConfig(0x30, 4, ROM_ADDRESS);
  EXPECT_EQ(rig.wiring.sharedBars.count(ROM_ADDRESS), 0u) << "disabled again";
  DisplayRig none(",rom=off");
  EXPECT_EQ(none.proxy->readConfig(0x30, 4), 0u) << "rom=off: no ROM register";
}

TEST(Display, BadOptionsAreRefusedByName) {
  const ServerKind* kind = findServerKind("fbuf");
  ASSERT_NE(kind, nullptr);
  for (auto [options, message] : std::vector<std::pair<std::string, std::string>>{
           {"w=320,h=200", "the resolution must be from 640x480 to 3840x2160"},
           {"w=4096", "the resolution"},
           {"tcp=999.1.1.1:5900", "'999.1.1.1' is not an IP address"},
           {"tcp=127.0.0.1:70000", "tcp port"},
           {"wait=1", "wait takes no value"},
           {"colour=blue", "unknown option 'colour'"},
           {"vga=maybe", "vga: expected on, io or off"},
           {"edid=maybe", "edid: expected on or off"},
           {"rom=/nonexistent.rom", "rom: /nonexistent.rom: No such file or directory"},
           {"rom=/etc/hostname", "not an option ROM"},
       }) {
    try {
      kind->prepare({options, 1, "-s 29:0,fbuf"});
      ADD_FAILURE() << options << " accepted";
    } catch (const std::exception& error) {
      EXPECT_NE(std::string(error.what()).find(message), std::string::npos)
          << options << ": " << error.what();
      EXPECT_EQ(std::string(error.what()).rfind("-s 29:0,fbuf: ", 0), 0u) << error.what();
    }
  }
}

}  // namespace
}  // namespace cellvisor::testing
