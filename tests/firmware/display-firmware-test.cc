// SeaBIOS's own VGA BIOS for the Bochs display (vgabios-bochs-display.bin,
// run from the adapter's expansion ROM) draws SeaBIOS's banner; a VNC
// client must see exactly the screen QEMU shows for the same firmware,
// disk and adapter: QEMU is the oracle.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <iostream>
#include <regex>
#include <set>
#include <thread>

#include "base/tcp-port.h"
#include "tests/boot/core-process.h"
#include "tests/firmware/disk-check-image.h"

namespace cellvisor::testing {
namespace {

constexpr const char* QEMU = "/usr/bin/qemu-system-x86_64";
constexpr const char* VGA_BIOS = "/usr/share/seabios/vgabios-bochs-display.bin";

std::string tempPath(const std::string& name) {
  return ::testing::TempDir() + "/cellvisor-" + name + "-" + std::to_string(::getpid());
}

// A disk whose boot sector idles for ever: the screen then holds still on
// SeaBIOS's last words.
void writeHaltingDisk(const std::string& path) {
  std::vector<uint8_t> disk(1 << 20, 0);
  // sti; hlt; jmp back to hlt (interrupts on: a guest halted with them off
  // is a guest that ended, for both hypervisors).
  const uint8_t halt[] = {0xfb, 0xf4, 0xeb, 0xfd};
  std::copy(std::begin(halt), std::end(halt), disk.begin());
  disk[510] = 0x55;
  disk[511] = 0xaa;
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(disk.data()), disk.size());
}

struct Screen {
  int width = 0, height = 0;
  std::vector<uint8_t> rgb;
  std::string error;
};

Screen capture(uint16_t port) {
  Screen screen;
  std::string out = tempPath("screen-" + std::to_string(port)) + ".ppm";
  std::string command = std::string(std::getenv("CELLVISOR_VNC_CAPTURE")) +
                        " --hold-ms 1000 --timeout-ms 20000 127.0.0.1:" + std::to_string(port) + " " + out;
  int status = std::system(command.c_str());
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    screen.error = "vnc-capture failed on port " + std::to_string(port);
    return screen;
  }
  std::ifstream file(out, std::ios::binary);
  std::string magic;
  int maxValue = 0;
  file >> magic >> screen.width >> screen.height >> maxValue;
  file.get();
  screen.rgb.resize(size_t(3) * screen.width * screen.height);
  file.read(reinterpret_cast<char*>(screen.rgb.data()), static_cast<std::streamsize>(screen.rgb.size()));
  ::unlink(out.c_str());
  return screen;
}

bool waitForFile(const std::string& path, const std::string& text, std::chrono::seconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    std::ifstream file(path);
    std::string contents((std::istreambuf_iterator<char>(file)), {});
    if (contents.find(text) != std::string::npos) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

TEST(SeaBiosDisplay, TheBannerOnTheBochsDisplayIsQemusPixelForPixel) {
  if (auto reason = kvmUnavailableReason(); !reason.empty()) GTEST_SKIP() << reason;
  if (::access(seabios().c_str(), R_OK) != 0 || ::access(VGA_BIOS, R_OK) != 0)
    GTEST_SKIP() << "SeaBIOS or its bochs-display VGA BIOS missing (apt-get install seabios)";
  if (::access(QEMU, X_OK) != 0)
    GTEST_SKIP() << QEMU << " missing: no oracle (apt-get install qemu-system-x86)";
  std::string disk = tempPath("halting-disk");
  writeHaltingDisk(disk);

  // Ours: SeaBIOS, a virtio disk, the display in slot 29 (no EDID: the VGA
  // BIOS picks 1024x768).
  CoreProcess core({coreBinary(), "-m", "128M", "-l", "bootrom," + seabios(), "-s", "4,virtio-blk," + disk,
                    "-s", "29,fbuf,tcp=127.0.0.1:0", "fw-display"});
  ASSERT_TRUE(core.waitFor("firmware: Booting from Hard Disk", std::chrono::seconds(120))) << core.output();
  std::smatch match;
  std::string log = core.output();
  ASSERT_TRUE(std::regex_search(log, match, std::regex("VNC server on 127\\.0\\.0\\.1 port ([0-9]+)")))
      << log;
  EXPECT_NE(log.find("firmware: Running option rom at c000"), std::string::npos)
      << "SeaBIOS ran the adapter's ROM: " << log;
  Screen ours = capture(static_cast<uint16_t>(std::stoi(match[1])));
  ASSERT_EQ(ours.error, "") << core.output();

  // QEMU: the same firmware and disk, its bochs-display without EDID.
  uint16_t port = firstFreeTcpPort("127.0.0.1", 5950, 6000).value_or(0);  // QEMU wants a display number.
  ASSERT_NE(port, 0);
  std::string debugLog = tempPath("qemu-debugcon");
  CoreProcess qemu({QEMU,       "-accel",
                    "tcg",      "-M",
                    "q35",      "-m",
                    "128",      "-nodefaults",
                    "-vga",     "none",
                    "-device",  "bochs-display,edid=off",
                    "-drive",   "file=" + disk + ",format=raw,if=virtio",
                    "-bios",    seabios(),
                    "-boot",    "menu=off",
                    "-vnc",     "127.0.0.1:" + std::to_string(port - 5900),
                    "-chardev", "file,id=debug,path=" + debugLog,
                    "-device",  "isa-debugcon,iobase=0x402,chardev=debug"});
  ASSERT_TRUE(waitForFile(debugLog, "Booting from Hard Disk", std::chrono::seconds(120))) << qemu.output();
  Screen oracle = capture(port);
  ASSERT_EQ(oracle.error, "") << qemu.output();

  ASSERT_EQ(ours.width, oracle.width);
  ASSERT_EQ(ours.height, oracle.height);
  // Every pixel the same, but for the text cursor's cell: SeaBIOS blinks
  // it, and the two machines need not be caught in the same phase.
  size_t text = 0, differing = 0;
  std::set<std::pair<int, int>> cells;  // 8x16 character cells with differences
  for (int y = 0; y < ours.height; ++y) {
    for (int x = 0; x < ours.width; ++x) {
      size_t at = 3 * (size_t(y) * ours.width + x);
      if (ours.rgb[at] != 0) ++text;
      if (std::memcmp(&ours.rgb[at], &oracle.rgb[at], 3) != 0) {
        ++differing;
        cells.insert({x / 8, y / 16});
      }
    }
  }
  std::cout << ours.width << "x" << ours.height << ": " << text << " text pixels; " << differing
            << " unlike QEMU's, in " << cells.size() << " character cells\n";
  EXPECT_GT(text, 1000u) << "the banner is on the screen";
  EXPECT_LE(cells.size(), 1u) << differing << " pixels unlike QEMU's, in " << cells.size()
                              << " character cells";
  qemu.signal(SIGKILL);
  core.signal(SIGKILL);
  ::unlink(disk.c_str());
  ::unlink(debugLog.c_str());
}

}  // namespace
}  // namespace cellvisor::testing
