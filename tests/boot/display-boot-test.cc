// The display end to end in a real VM: the test guest finds the Bochs
// adapter on PCI, sets 800x600x32 through its registers and draws into VRAM
// (a KVM memory slot in the confined core); a VNC client (libvncclient)
// connects to the display server and must see every pixel the guest drew.
// Then the display server is killed: the supervisor starts the next one on
// the same port and VRAM, the client reconnects and sees the same screen,
// and the guest notices nothing. Keys and the pointer from the clients
// (libvncclient, noVNC typing in Chromium) reach the guest's PS/2 keyboard
// and mouse through the input link, before and after a kill; with `wait`
// the guest starts only once a client is in.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

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
// VNC on a port the kernel picks; then it prints what its PS/2 keyboard
// and mouse receive (tests/guest/ps2.c).
std::vector<std::string> displayGuest(const std::string& moreOptions = "") {
  return {coreBinary(),
          "-m",
          "128M",
          "-l",
          "com1,stdio",
          "-s",
          "29,fbuf,tcp=127.0.0.1:0,w=800,h=600" + moreOptions,
          "--kernel",
          guestImage(),
          "--cmdline",
          "test=display-input",
          "vm"};
}

// What a vnc-capture run ended with: its exit status, and what it said on
// stderr (for a failure's message).
struct ClientRun {
  int status;
  std::string log;
};

// Runs vnc-capture with `arguments` (input to send) against `port`.
ClientRun vncClient(const std::string& port, const std::string& arguments) {
  std::string base = ::testing::TempDir() + "display-input-" + std::to_string(::getpid());
  std::string command = std::string(std::getenv("CELLVISOR_VNC_CAPTURE")) + " --expect 800x600 " + arguments +
                        " 127.0.0.1:" + port + " " + base + ".ppm 2>" + base + ".log";
  int status = std::system(command.c_str());
  std::stringstream log;
  log << std::ifstream(base + ".log").rdbuf();
  ::unlink((base + ".ppm").c_str());
  ::unlink((base + ".log").c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, "vnc-capture said:\n" + log.str()};
}

// What the guest's PS/2 devices received, one item per line the guest
// printed from `from` on: "key 1e", "mouse buttons 1 dx 0 dy 0".
std::vector<std::string> receivedInput(CoreProcess& core, size_t from = 0) {
  core.poll();
  std::vector<std::string> items;
  std::string out = core.out().substr(std::min(from, core.out().size()));
  // Whole lines only: one still being printed could read "key a" for "key aa".
  std::regex line("ps2: (key [0-9a-f]+|mouse buttons [0-9] dx -?[0-9]+ dy -?[0-9]+)\r?\n");
  for (auto it = std::sregex_iterator(out.begin(), out.end(), line); it != std::sregex_iterator(); ++it)
    items.push_back((*it)[1]);
  return items;
}

// Waits until the guest has printed `count` input items since `from`.
std::vector<std::string> waitForInput(CoreProcess& core, size_t count, size_t from = 0) {
  std::vector<std::string> items;
  for (int i = 0; i < 200 && (items = receivedInput(core, from)).size() < count; ++i)
    core.waitFor("\n", std::chrono::milliseconds(50));
  return items;
}

std::vector<std::string> keyBytes(std::initializer_list<const char*> hex) {
  std::vector<std::string> items;
  for (const char* byte : hex) items.push_back(std::string("key ") + byte);
  return items;
}

// The VNC port the display server announced in the core's log, "" if none.
std::string vncPortOf(const CoreProcess& core) {
  std::smatch match;
  std::string log = core.output();
  if (!std::regex_search(log, match, std::regex("VNC server on 127\\.0\\.0\\.1 port ([0-9]+)"))) return "";
  return match[1];
}

// fbuf's `wait`: nothing runs until a client is in; then keys (as keysyms
// and as scan codes) and the pointer reach the guest, a key left down by a
// client that goes is let go, and the input link outlives a killed server.
TEST(DisplayBoot, WaitThenKeysAndPointerReachTheGuestsPs2Devices) {
  if (auto reason = kvmUnavailableReason(); !reason.empty()) GTEST_SKIP() << reason;
  CoreProcess core(displayGuest(",wait"));
  ASSERT_TRUE(core.waitFor("the vCPUs wait for a VNC client", std::chrono::seconds(30))) << core.output();
  std::string port = vncPortOf(core);
  ASSERT_FALSE(port.empty()) << core.output();
  EXPECT_FALSE(core.waitFor("guest: running test", std::chrono::milliseconds(1500)))
      << "the guest ran before a client";
  // The client that lets the guest in sees it start to draw, which takes
  // seconds where ring 0 is emulated (slower still on a busy host): the
  // picture of the moment, not one that holds still.
  ClientRun first = vncClient(port, "--hold-ms 300");
  EXPECT_EQ(first.status, 0) << first.log << core.output();
  ASSERT_TRUE(core.waitFor("ps2: ready", std::chrono::seconds(120))) << core.output();
  EXPECT_NE(core.output().find("a VNC client connected: the vCPUs start"), std::string::npos);

  // h and I as keysyms (I shifted: the key is i's), q as a scan code sent
  // with a keysym that says otherwise (the scan code wins), Up (E0 48) as
  // a scan code, Pause as a keysym; then the pointer.
  ClientRun typed = vncClient(port,
                              "--key 0x68 --key 0x49 --key 0x61/0x10 --key 0xff52/0xc8 --key 0xff13 "
                              "--pointer 100,100,0 --pointer 110,95,0 --pointer 110,95,1 --pointer 110,95,0");
  ASSERT_EQ(typed.status, 0) << typed.log;
  std::vector<std::string> expected = keyBytes(
      {"23", "a3", "17", "97", "10", "90", "e0", "48", "e0", "c8", "e1", "1d", "45", "e1", "9d", "c5"});
  for (const char* packet :
       {"mouse buttons 0 dx 10 dy 5", "mouse buttons 1 dx 0 dy 0", "mouse buttons 0 dx 0 dy 0"})
    expected.push_back(packet);
  EXPECT_EQ(waitForInput(core, expected.size()), expected) << core.output();

  // Left Shift pressed by a client that then leaves: released for it.
  size_t mark = core.out().size();
  ClientRun holding = vncClient(port, "--key-down 0xffe1/0x2a");
  ASSERT_EQ(holding.status, 0) << holding.log;
  EXPECT_EQ(waitForInput(core, 2, mark), keyBytes({"2a", "aa"})) << core.output();

  // The display server killed: its successor writes on the same link.
  pid_t server = 0;
  for (pid_t pid : deviceServersOf(core.pid())) server = pid;
  ASSERT_GT(server, 0);
  ::kill(server, SIGKILL);
  ASSERT_TRUE(core.waitFor("restarting", std::chrono::seconds(10))) << core.output();
  mark = core.out().size();
  ClientRun after = vncClient(port, "--key 0x6a/0x24");
  ASSERT_EQ(after.status, 0) << after.log << core.output();
  EXPECT_EQ(waitForInput(core, 2, mark), keyBytes({"24", "a4"})) << core.output();
  EXPECT_EQ(core.output().find("FAIL - "), std::string::npos) << core.output();
  core.signal(SIGKILL);
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
  ASSERT_TRUE(core.waitFor("ps2: ready", std::chrono::seconds(120))) << core.output();
  std::string screenshot = ::testing::TempDir() + "novnc-" + std::to_string(::getpid()) + ".png";
  size_t mark = core.out().size();
  CoreProcess page({"/usr/bin/node", dir + "/novnc-check.mjs", dir + "/rfb.bundle.js", vncPort, "800", "600",
                    screenshot, "hi"});
  ASSERT_TRUE(page.waitFor("picture ", std::chrono::seconds(60))) << page.output();
  ASSERT_TRUE(page.waitFor("\n", std::chrono::seconds(5)));
  std::smatch seen;
  std::string first = page.out();
  ASSERT_TRUE(std::regex_search(first, seen, std::regex("picture ([0-9]+) ([0-9.]+)"))) << page.output();
  EXPECT_EQ(seen[1], "0") << "no pixel far off the pattern";
  EXPECT_LT(std::stod(seen[2]), 4.0) << "mean error per channel";
  EXPECT_TRUE(std::filesystem::exists(screenshot));
  // Typed in the page: h and i, as scan codes from Chromium's key events;
  // before them the page's click (button 1 down and up, no motion).
  ASSERT_TRUE(page.waitFor("typed", std::chrono::seconds(30))) << page.output();
  std::vector<std::string> typed;
  for (const auto& item : waitForInput(core, 6, mark))
    if (item.rfind("key ", 0) == 0) typed.push_back(item);
  EXPECT_EQ(typed, keyBytes({"23", "a3", "17", "97"})) << core.output();

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
