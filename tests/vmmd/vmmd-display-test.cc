// vm-bhyve's graphics keys through vmmd: graphics="yes" gives the VM a
// display in slot 29 and a VNC server on the first free port from 5900
// (or graphics_port, graphics_listen), with vnc_password; `vmctl list`
// and `vmctl info` show where; `vmctl devices` lists its server and policy;
// the guest's picture reaches a VNC client.
#include <sys/wait.h>

#include <regex>

#include "tests/vmmd/vmmd-fixture.h"

namespace cellvisor::testing {
namespace {

// The test guest's picture (tests/guest/display.c).
uint32_t pattern(int x, int y, int width, int height) {
  if (x == 0 || y == 0 || x == width - 1 || y == height - 1) return 0xffffff;
  return uint32_t(x & 0xff) << 16 | uint32_t(y & 0xff) << 8 | uint32_t((x + y) & 0xff);
}

TEST_F(Vmctl, GraphicsGiveTheVmAVncConsole) {
  writeTemplate("desktop", "test=display", "virtio-blk",
                "graphics=\"yes\"\ngraphics_res=\"800x600\"\nvnc_password=\"letmein\"\n");
  ASSERT_EQ(vmctl({"create", "-t", "desktop", "screen"}).first, 0);
  ASSERT_EQ(vmctl({"start", "screen"}).first, 0) << log("screen");
  int console = connectConsole("screen");
  ASSERT_GE(console, 0);
  std::string list = vmctl({"list"}).second;
  std::smatch match;
  ASSERT_TRUE(std::regex_search(list, match, std::regex("screen .* (127\\.0\\.0\\.1:(59[0-9][0-9])) ")))
      << list;
  std::string endpoint = match[1];
  EXPECT_NE(vmctl({"info", "screen"}).second.find("vnc: " + endpoint), std::string::npos);
  std::string devices = vmctl({"devices", "screen"}).second;
  EXPECT_NE(devices.find("display.policy"), std::string::npos) << devices;
  EXPECT_NE(devices.find("VNC on " + endpoint), std::string::npos) << devices;

  // The guest draws; a VNC client with the password sees every pixel.
  std::string picture = (root / "screen.ppm").string();
  std::string seen = readUntil(console, "display: 800x600x32 pattern drawn");
  ::close(console);
  ASSERT_NE(seen.find("display: 800x600x32 pattern drawn"), std::string::npos) << seen << log("screen");
  int status = std::system(
      (env("CELLVISOR_VNC_CAPTURE") + " --password letmein --expect 800x600 " + endpoint + " " + picture)
          .c_str());
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  std::ifstream file(picture, std::ios::binary);
  std::string magic;
  int width = 0, height = 0, maxValue = 0;
  file >> magic >> width >> height >> maxValue;
  file.get();
  std::vector<uint8_t> rgb(size_t(3) * 800 * 600);
  file.read(reinterpret_cast<char*>(rgb.data()), static_cast<std::streamsize>(rgb.size()));
  ASSERT_EQ(width, 800);
  int wrong = 0;
  for (int y = 0; y < 600; ++y) {
    for (int x = 0; x < 800; ++x) {
      const uint8_t* p = &rgb[3 * (size_t(y) * 800 + x)];
      if ((uint32_t{p[0]} << 16 | uint32_t{p[1]} << 8 | p[2]) != pattern(x, y, 800, 600)) ++wrong;
    }
  }
  EXPECT_EQ(wrong, 0);
  // A live upgrade of the display server: the next binary shows the same
  // picture on the same port.
  const std::string key = R"("name":"fbuf-29.0","pid":)";
  auto displayPid = [&] {
    std::string json = vmctl({"devices", "screen", "--json"}).second;
    auto at = json.find(key);
    return at == std::string::npos ? 0 : std::atoi(json.c_str() + at + key.size());
  };
  pid_t display = displayPid();
  ASSERT_GT(display, 0) << vmctl({"devices", "screen", "--json"}).second;
  fs::path upgraded = copyOfServerBinary(display);
  auto [upgradeStatus, upgradeText] = vmctl({"device", "restart", "screen", "fbuf-29.0", upgraded.string()});
  ASSERT_EQ(upgradeStatus, 0) << upgradeText;
  pid_t next = 0;
  for (int i = 0; i < 100 && (next <= 0 || next == display); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    next = displayPid();
  }
  ASSERT_GT(next, 0);
  EXPECT_NE(next, display);
  EXPECT_EQ(fs::read_symlink("/proc/" + std::to_string(next) + "/exe"), upgraded);
  ::unlink(picture.c_str());
  status = std::system(
      (env("CELLVISOR_VNC_CAPTURE") + " --password letmein --expect 800x600 " + endpoint + " " + picture)
          .c_str());
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "after the upgrade: " << status;
  std::ifstream again(picture, std::ios::binary);
  again >> magic >> width >> height >> maxValue;
  again.get();
  again.read(reinterpret_cast<char*>(rgb.data()), static_cast<std::streamsize>(rgb.size()));
  wrong = 0;
  for (int y = 0; y < 600; ++y) {
    for (int x = 0; x < 800; ++x) {
      const uint8_t* p = &rgb[3 * (size_t(y) * 800 + x)];
      if ((uint32_t{p[0]} << 16 | uint32_t{p[1]} << 8 | p[2]) != pattern(x, y, 800, 600)) ++wrong;
    }
  }
  EXPECT_EQ(wrong, 0) << "the same screen from the upgraded server";

  int refused = std::system((env("CELLVISOR_VNC_CAPTURE") + " --password nope --timeout-ms 3000 " + endpoint +
                             " " + picture + " 2>/dev/null")
                                .c_str());
  EXPECT_EQ(WEXITSTATUS(refused), 1) << "a wrong password";

  // A second VM takes the next port.
  ASSERT_EQ(vmctl({"create", "-t", "desktop", "second"}).first, 0);
  ASSERT_EQ(vmctl({"start", "second"}).first, 0) << log("second");
  std::string second = vmctl({"info", "second"}).second;
  EXPECT_EQ(second.find("vnc: " + endpoint), std::string::npos) << second;
  EXPECT_NE(second.find("vnc: 127.0.0.1:59"), std::string::npos) << second;
  EXPECT_EQ(vmctl({"poweroff", "second"}).first, 0);
  EXPECT_EQ(vmctl({"poweroff", "screen"}).first, 0);
  waitStopped("screen");
  EXPECT_NE(vmctl({"list"}).second.find("screen"), std::string::npos);
  EXPECT_EQ(vmctl({"info", "screen"}).second.find("vnc:"), std::string::npos) << "gone with the VM";
}

// graphics_wait="yes": the VM is up (its display serves clients) but the
// guest runs only once a VNC client has logged in.
TEST_F(Vmctl, GraphicsWaitHoldsTheGuestUntilAClientIsIn) {
  writeTemplate("waiting", "test=display", "virtio-blk",
                "graphics=\"yes\"\ngraphics_res=\"800x600\"\ngraphics_wait=\"yes\"\nvnc_password=\"pw\"\n");
  ASSERT_EQ(vmctl({"create", "-t", "waiting", "held"}).first, 0);
  ASSERT_EQ(vmctl({"start", "held"}).first, 0) << log("held");
  int console = connectConsole("held");
  ASSERT_GE(console, 0);
  std::string early = readUntil(console, "guest: running test", std::chrono::seconds(3));
  EXPECT_EQ(early.find("guest: running test"), std::string::npos)
      << "the guest ran with no client: " << early;
  std::string endpoint = vmctl({"info", "held"}).second;
  std::smatch match;
  ASSERT_TRUE(std::regex_search(endpoint, match, std::regex("vnc: (127\\.0\\.0\\.1:[0-9]+)"))) << endpoint;
  std::string picture = (root / "held.ppm").string();
  // A client with the wrong password is not one the guest waits for.
  std::system((env("CELLVISOR_VNC_CAPTURE") + " --password nope --timeout-ms 2000 " + std::string(match[1]) +
               " " + picture + " 2>/dev/null")
                  .c_str());
  early += readUntil(console, "guest: running test", std::chrono::seconds(1));
  EXPECT_EQ(early.find("guest: running test"), std::string::npos) << "a refused client started the guest";
  // The picture of the moment (the guest starts drawing as this client
  // gets in: it never holds still for long).
  std::string clientLog = (root / "held-client.log").string();
  int status =
      std::system((env("CELLVISOR_VNC_CAPTURE") + " --password pw --hold-ms 300 --timeout-ms 20000 " +
                   std::string(match[1]) + " " + picture + " 2>" + clientLog)
                      .c_str());
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << status << ": " << std::ifstream(clientLog).rdbuf() << log("held");
  std::string seen = readUntil(console, "display: 800x600x32 pattern drawn", std::chrono::seconds(120));
  ::close(console);
  EXPECT_NE(seen.find("display: 800x600x32 pattern drawn"), std::string::npos) << seen << log("held");
  EXPECT_NE(log("held").find("a VNC client connected: the vCPUs start"), std::string::npos) << log("held");
  ::unlink(picture.c_str());
  EXPECT_EQ(vmctl({"poweroff", "held"}).first, 0);
}

TEST_F(Vmctl, GraphicsKeysThatCannotWorkAreRefused) {
  writeTemplate("small", "test=display", "virtio-blk", "graphics=\"yes\"\ngraphics_res=\"320x200\"\n");
  ASSERT_EQ(vmctl({"create", "-t", "small", "tiny"}).first, 0);
  auto [tinyStatus, tinyOutput] = vmctl({"start", "tiny"});
  EXPECT_NE(tinyStatus, 0);
  EXPECT_NE(tinyOutput.find("graphics: fbuf: 320x200: the resolution must be from 640x480"),
            std::string::npos)
      << tinyOutput;
  EXPECT_NE(vmctl({"info", "tiny"}).second.find("state: stopped"), std::string::npos);
}

}  // namespace
}  // namespace cellvisor::testing
