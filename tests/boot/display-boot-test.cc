// The display end to end in a real VM: the test guest finds the Bochs
// adapter on PCI, sets 800x600x32 through its registers and draws into VRAM
// (a KVM memory slot in the confined core); a VNC client (libvncclient)
// connects to the display server and must see every pixel the guest drew.
// Then the display server is killed: the supervisor starts the next one on
// the same port and VRAM, the client reconnects and sees the same screen,
// and the guest notices nothing.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>

#include "tests/boot/core-process.h"

namespace cellvisor::testing {
namespace {

// The guest's picture (tests/guest/display.c).
uint32_t pattern(int x, int y, int width, int height) {
  if (x == 0 || y == 0 || x == width - 1 || y == height - 1) return 0xffffff;
  return uint32_t(x & 0xff) << 16 | uint32_t(y & 0xff) << 8 | uint32_t((x + y) & 0xff);
}

// Runs the VNC client against `port`; the first differing pixel, or "".
std::string compareScreen(uint16_t port, int width, int height) {
  std::string out = ::testing::TempDir() + "display-boot-" + std::to_string(::getpid()) + ".ppm";
  std::string command = std::string(std::getenv("CELLVISOR_VNC_CAPTURE")) + " --expect " +
                        std::to_string(width) + "x" + std::to_string(height) +
                        " 127.0.0.1:" + std::to_string(port) + " " + out;
  int status = std::system(command.c_str());
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return "vnc-capture failed: " + std::to_string(status);
  std::ifstream file(out, std::ios::binary);
  std::string magic;
  int w = 0, h = 0, maxValue = 0;
  file >> magic >> w >> h >> maxValue;
  file.get();
  std::vector<uint8_t> rgb(size_t(3) * w * h);
  file.read(reinterpret_cast<char*>(rgb.data()), static_cast<std::streamsize>(rgb.size()));
  ::unlink(out.c_str());
  if (w != width || h != height) return "size " + std::to_string(w) + "x" + std::to_string(h);
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      const uint8_t* p = &rgb[3 * (size_t(y) * width + x)];
      uint32_t seen = uint32_t{p[0]} << 16 | uint32_t{p[1]} << 8 | p[2];
      if (seen != pattern(x, y, width, height)) {
        char text[96];
        std::snprintf(text, sizeof(text), "pixel (%d,%d) is %06x, not %06x", x, y, seen,
                      pattern(x, y, width, height));
        return text;
      }
    }
  }
  return "";
}

// The test guest drawing its 800x600 pattern on the display in slot 29,
// VNC on a port the kernel picks.
std::vector<std::string> displayGuest() {
  return {coreBinary(),
          "-m",
          "128M",
          "-l",
          "com1,stdio",
          "-s",
          "29,fbuf,tcp=127.0.0.1:0,w=800,h=600",
          "--kernel",
          guestImage(),
          "--cmdline",
          "test=display",
          "vm"};
}

// The VNC port the display server announced in the core's log, "" if none.
std::string vncPortOf(const CoreProcess& core) {
  std::smatch match;
  std::string log = core.output();
  if (!std::regex_search(log, match, std::regex("VNC server on 127\\.0\\.0\\.1 port ([0-9]+)"))) return "";
  return match[1];
}

TEST(DisplayBoot, TheGuestsPictureReachesAVncClientAndSurvivesItsServer) {
  if (auto reason = kvmUnavailableReason(); !reason.empty()) GTEST_SKIP() << reason;
  CoreProcess core(displayGuest());
  ASSERT_TRUE(core.waitFor("display: 800x600x32 pattern drawn", std::chrono::seconds(120))) << core.output();
  std::string vncPort = vncPortOf(core);
  ASSERT_FALSE(vncPort.empty()) << core.output();
  auto port = static_cast<uint16_t>(std::stoi(vncPort));
  EXPECT_EQ(compareScreen(port, 800, 600), "");

  pid_t server = 0;
  for (pid_t pid : deviceServersOf(core.pid())) server = pid;
  ASSERT_GT(server, 0);
  ::kill(server, SIGKILL);
  ASSERT_TRUE(core.waitFor("restarting", std::chrono::seconds(10))) << core.output();
  EXPECT_EQ(compareScreen(port, 800, 600), "") << "after the kill, on the same port";
  core.poll();
  EXPECT_EQ(core.output().find("FAIL - "), std::string::npos) << core.output();
  core.signal(SIGKILL);
}

// noVNC (npm) in headless Chromium (Debian's), connected straight to the
// display server's port over WebSocket: its canvas shows the guest's
// pattern (noVNC asks for Tight with JPEG: close, not exact), and after
// kill -9 of the server the page reconnects and shows it again.
TEST(DisplayBoot, NoVncInChromiumShowsTheGuestAndReconnectsAfterAKill) {
  if (auto reason = kvmUnavailableReason(); !reason.empty()) GTEST_SKIP() << reason;
  if (::access("/usr/bin/chromium", X_OK) != 0)
    GTEST_SKIP() << "no /usr/bin/chromium (apt-get install chromium)";
  CoreProcess setup({"/bin/sh", std::getenv("CELLVISOR_NOVNC_SETUP"), "--cached"});
  if (setup.wait() != 0)
    GTEST_SKIP() << "noVNC not prepared (tests/novnc/setup.sh: needs npm and the npm registry)";
  std::string dir = setup.out().substr(0, setup.out().find('\n'));
  CoreProcess core(displayGuest());
  ASSERT_TRUE(core.waitFor("display: 800x600x32 pattern drawn", std::chrono::seconds(120))) << core.output();
  std::string vncPort = vncPortOf(core);
  ASSERT_FALSE(vncPort.empty()) << core.output();
  std::string screenshot = ::testing::TempDir() + "novnc-" + std::to_string(::getpid()) + ".png";
  CoreProcess page(
      {"/usr/bin/node", dir + "/novnc-check.mjs", dir + "/rfb.bundle.js", vncPort, "800", "600", screenshot});
  ASSERT_TRUE(page.waitFor("picture ", std::chrono::seconds(60))) << page.output();
  ASSERT_TRUE(page.waitFor("\n", std::chrono::seconds(5)));
  std::smatch seen;
  std::string first = page.out();
  ASSERT_TRUE(std::regex_search(first, seen, std::regex("picture ([0-9]+) ([0-9.]+)"))) << page.output();
  EXPECT_EQ(seen[1], "0") << "no pixel far off the pattern";
  EXPECT_LT(std::stod(seen[2]), 4.0) << "mean error per channel";
  EXPECT_TRUE(std::filesystem::exists(screenshot));

  pid_t server = 0;
  for (pid_t pid : deviceServersOf(core.pid())) server = pid;
  ASSERT_GT(server, 0);
  ::kill(server, SIGKILL);
  ASSERT_TRUE(page.waitFor("reconnected", std::chrono::seconds(60))) << page.output() << core.output();
  EXPECT_EQ(page.wait(std::chrono::seconds(60)), 0) << page.output();
  std::string after = page.out().substr(page.out().find("reconnected"));
  ASSERT_TRUE(std::regex_search(after, seen, std::regex("picture ([0-9]+) ([0-9.]+)"))) << page.output();
  EXPECT_EQ(seen[1], "0") << "the same picture after the reconnection";
  ::unlink(screenshot.c_str());
  core.signal(SIGKILL);
}

}  // namespace
}  // namespace cellvisor::testing
