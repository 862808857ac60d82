// The xHCI server and its tablet as their own processes, driven by a
// user-space xHCI driver through the core's proxy, with the pointer coming
// the whole way a user's does: a real VNC client (libvncclient) moves and
// clicks on the display server, whose pointer link the supervisor joined to
// the tablet's server. Both servers are killed on the way.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <thread>

#include "host/server-catalog.h"
#include "host/server-kind.h"
#include "servers/display/bochs-display.h"
#include "tests/harness/server-under-test.h"
#include "tests/harness/xhci-driver.h"

namespace cellvisor::testing {
namespace {

using namespace std::chrono_literals;
using namespace xhci;

constexpr uint64_t XHCI_BAR = 0xe000'0000;
constexpr uint64_t VRAM_ADDRESS = 0xc000'0000;
constexpr uint64_t DISPLAY_MMIO = 0xd000'0000;

// The display server, started as a supervisor starts it, sending its
// pointer to `tablet`.
struct Display {
  Display(GuestMemory& memory, HarnessWiring& wiring, const DeviceResources& tablet) {
    // As the core prepares a slot: options parsed, the VNC socket opened.
    ServerLaunch launch = prepareServerLaunch({29, 0, "fbuf", "tcp=127.0.0.1:0,w=800,h=600"}, 1, "enforce");
    sockaddr_in bound{};
    socklen_t length = sizeof(bound);
    ::getsockname(launch.backends.at(0).get(), reinterpret_cast<sockaddr*>(&bound), &length);
    port = ntohs(bound.sin_port);
    resources = makeDeviceResources(launch);
    resources->sendPointerTo(tablet);
    process = std::make_unique<DeviceServerProcess>(std::move(launch), *resources, memory.memfd(),
                                                    memory.regions());
    channel = std::make_unique<DeviceChannel>(*resources);
    channel->setServerGone([this] { return !process->supervised() && process->exited(); });
    proxy = std::make_unique<PciServerProxy>(*channel, wiring);
    proxy->assignBar(0, VRAM_ADDRESS);
    proxy->assignBar(2, DISPLAY_MMIO);
    proxy->enableDecoding();
    // 800x600x32, as Linux's bochs driver sets it.
    auto dispi = [&](uint16_t index, uint16_t value) {
      proxy->writeBar(2, BochsDisplay::DISPI_OFFSET + 2 * index, 2, value);
    };
    dispi(dispi::ENABLE, 0);
    dispi(dispi::BPP, 32);
    dispi(dispi::XRES, 800);
    dispi(dispi::YRES, 600);
    dispi(dispi::VIRT_WIDTH, 800);
    dispi(dispi::VIRT_HEIGHT, 600);
    dispi(dispi::ENABLE, dispi::ENABLED | dispi::LFB_ENABLED);
  }
  // A VNC client that does `actions` (vnc-capture's flags); its exit status.
  int client(const std::string& actions) {
    std::string out = ::testing::TempDir() + "xhci-vnc-" + std::to_string(::getpid()) + ".ppm";
    std::string command = std::string(VNC_CAPTURE) + " --expect 800x600 " + actions +
                          " 127.0.0.1:" + std::to_string(port) + " " + out + " 2>&1";
    int status = std::system(command.c_str());
    ::unlink(out.c_str());
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  uint16_t port = 0;
  std::unique_ptr<DeviceResources> resources;
  std::unique_ptr<DeviceServerProcess> process;
  std::unique_ptr<DeviceChannel> channel;
  std::unique_ptr<PciServerProxy> proxy;
};

struct Rig {
  Rig()
      : memory(16 << 20),
        xhci("xhci", "tablet", memory, wiring, 0, XHCI_BAR),
        display(memory, wiring, xhci.resources()),
        driver(
            memory, [this](uint64_t offset, uint8_t size) { return xhci.proxy().readBar(0, offset, size); },
            [this](uint64_t offset, uint8_t size, uint64_t value) {
              xhci.proxy().writeBar(0, offset, size, value);
            }) {}

  // The next transfer event, waiting for the servers up to `timeout`.
  std::optional<Trb> transferEvent(std::chrono::milliseconds timeout = 5000ms) {
    for (auto until = std::chrono::steady_clock::now() + timeout; std::chrono::steady_clock::now() < until;) {
      if (auto event = driver.nextEvent()) {
        if (trbType(*event) == TRANSFER_EVENT) return event;
        continue;
      }
      std::this_thread::sleep_for(5ms);
    }
    return std::nullopt;
  }
  // The report the tablet sent: buttons, X, Y.
  std::tuple<int, int, int> report() {
    const uint8_t* bytes = driver.report();
    return {bytes[0], bytes[1] | bytes[2] << 8, bytes[3] | bytes[4] << 8};
  }

  GuestMemory memory;
  HarnessWiring wiring;
  ServerUnderTest xhci;
  Display display;
  XhciDriver driver;
};

int scaled(int at, int size) {
  return at * 32767 / (size - 1);
}

TEST(XhciHarness, AVncClientsPointerReachesTheTabletAcrossKills) {
  Rig rig;
  rig.driver.addressTablet();
  rig.driver.configureTablet();
  EXPECT_TRUE(confinementProblems(rig.xhci.process().pid()).empty());

  // usbhid's interrupt transfer waits until the pointer moves.
  rig.driver.queueReportTransfer();
  EXPECT_FALSE(rig.transferEvent(300ms).has_value());
  ASSERT_EQ(rig.display.client("--pointer 400,300,0 --pointer 400,300,1 --pointer 400,300,0"), 0);
  std::vector<std::tuple<int, int, int>> reports;
  for (int i = 0; i < 3; ++i) {
    std::optional<Trb> event = rig.transferEvent();
    ASSERT_TRUE(event.has_value()) << "report " << i;
    EXPECT_EQ(event->status >> 24, uint32_t{SHORT_PACKET});  // 6 bytes in an 8-byte buffer.
    reports.push_back(rig.report());
    rig.driver.queueReportTransfer();
  }
  EXPECT_EQ(reports[0], std::make_tuple(0, scaled(400, 800), scaled(300, 600)));
  EXPECT_EQ(reports[1], std::make_tuple(1, scaled(400, 800), scaled(300, 600)));
  EXPECT_EQ(reports[2], std::make_tuple(0, scaled(400, 800), scaled(300, 600)));

  // The tablet's server killed with a transfer queued: its successor picks
  // up the controller, the queued transfer and the link.
  for (int round = 0; round < 3; ++round) {
    ::kill(rig.xhci.process().pid(), SIGKILL);
    rig.xhci.process().reap();
    rig.xhci.process().restart();
    int x = 100 + 200 * round;
    ASSERT_EQ(rig.display.client("--pointer " + std::to_string(x) + ",50,4"), 0) << "round " << round;
    std::optional<Trb> event = rig.transferEvent();
    ASSERT_TRUE(event.has_value()) << "round " << round;
    EXPECT_EQ(rig.report(), std::make_tuple(2, scaled(x, 800), scaled(50, 600)))
        << "right button, round " << round;
    rig.driver.queueReportTransfer();
    // The client's disconnect releases nothing on the tablet (no button
    // event), and no event repeats.
    EXPECT_FALSE(rig.transferEvent(200ms).has_value());
  }
  EXPECT_EQ(rig.xhci.process().restarts(), 3u);

  // The display's server killed: its successor writes on the same link.
  ::kill(rig.display.process->pid(), SIGKILL);
  rig.display.process->reap();
  rig.display.process->restart();
  ASSERT_EQ(rig.display.client("--pointer 799,599,0"), 0);
  std::optional<Trb> event = rig.transferEvent();
  ASSERT_TRUE(event.has_value());
  EXPECT_EQ(rig.report(), std::make_tuple(0, 32767, 32767));
  // Commands still complete, in order, after all of it.
  EXPECT_EQ(XhciDriver::completion(rig.driver.command({0, 0, NO_OP_COMMAND << 10})), uint32_t{SUCCESS});
}

// Paused (a snapshot, or the quiesce before a live upgrade), the server
// takes nothing from the display's link; a new instance started from the
// saved state (as the upgrade's successor is) delivers what the pointer
// did meanwhile.
TEST(XhciHarness, PausedThenRestoredTheTabletDeliversWhatCameMeanwhile) {
  Rig rig;
  rig.driver.addressTablet();
  rig.driver.configureTablet();
  rig.driver.queueReportTransfer();
  rig.xhci.channel().pause();
  ASSERT_EQ(rig.display.client("--pointer 200,150,1"), 0);
  EXPECT_FALSE(rig.transferEvent(300ms).has_value()) << "paused: guest memory holds still";
  std::vector<uint8_t> saved = rig.xhci.process().saveState();
  rig.xhci.process().restoreState(saved);
  std::optional<Trb> event = rig.transferEvent();
  ASSERT_TRUE(event.has_value());
  EXPECT_EQ(rig.report(), std::make_tuple(1, scaled(200, 800), scaled(150, 600)));
  EXPECT_EQ(rig.xhci.process().restarts(), 1u);
}

TEST(XhciHarness, BadOptionsAreRefusedByName) {
  const ServerKind* kind = findServerKind("xhci");
  ASSERT_NE(kind, nullptr);
  try {
    kind->prepare({"tablet,keyboard", 1, "-s 30,xhci"});
    FAIL() << "an unknown USB device was accepted";
  } catch (const std::invalid_argument& error) {
    EXPECT_STREQ(error.what(), "-s 30,xhci: xhci: unknown USB device 'keyboard' (known: tablet)");
  }
}

}  // namespace
}  // namespace cellvisor::testing
