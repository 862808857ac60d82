// Driver-harness tests for the virtio-net server: the real server process,
// driven through its real fds and shared memory as a guest driver would. Its
// "tap" is one end of a SOCK_SEQPACKET socketpair (a frame per message, as a
// tap reads and writes them); the test holds the other end as the network.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <thread>

#include "tests/harness/virtio-harness.h"

namespace cellvisor::testing {
namespace {

constexpr size_t HEADER = 12;
constexpr uint16_t RX = 0, TX = 1;
constexpr uint64_t F_MAC = 1ull << 5, F_STATUS = 1ull << 16;

UniqueFd socketPair(UniqueFd& other) {
  int fds[2];
  EXPECT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds), 0);
  other = UniqueFd(fds[1]);
  return UniqueFd(fds[0]);
}

struct NetHarness {
  UniqueFd network;  // The other end of the server's "tap".
  VirtioHarness harness;
  uint64_t offered;

  NetHarness()
      : harness("virtio-net", "tap0,mac=02:00:00:00:00:2a", socketPair(network), 2),
        offered(harness.initialize(~0ull)) {}

  std::vector<uint8_t> frame(size_t length, uint8_t seed) {
    std::vector<uint8_t> bytes(length);
    for (size_t i = 0; i < length; ++i) bytes[i] = static_cast<uint8_t>(i * 7 + seed);
    return bytes;
  }
  // Puts a frame (behind a zeroed header) on the transmit queue.
  uint16_t transmit(const std::vector<uint8_t>& bytes) {
    uint64_t buffer = harness.allocate(HEADER + bytes.size());
    std::memset(harness.host(buffer, HEADER), 0, HEADER);
    std::memcpy(harness.host(buffer + HEADER, bytes.size()), bytes.data(), bytes.size());
    uint16_t head = harness.submit(TX, {{buffer, static_cast<uint32_t>(HEADER + bytes.size()), false}});
    harness.kick(TX);
    return head;
  }
  // Posts one receive buffer of `size` bytes; returns its address.
  uint64_t postReceive(uint32_t size) {
    uint64_t buffer = harness.allocate(size);
    harness.submit(RX, {{buffer, size, true}});
    harness.kick(RX);
    return buffer;
  }
  // The next frame the server sent to the network, or empty.
  std::vector<uint8_t> fromGuest() {
    std::vector<uint8_t> bytes(70000);
    pollfd fd{network.get(), POLLIN, 0};
    if (::poll(&fd, 1, 2000) <= 0) return {};
    ssize_t got = ::recv(network.get(), bytes.data(), bytes.size(), MSG_DONTWAIT);
    bytes.resize(got > 0 ? static_cast<size_t>(got) : 0);
    return bytes;
  }
  void toGuest(const std::vector<uint8_t>& bytes) {
    ASSERT_EQ(::send(network.get(), bytes.data(), bytes.size(), 0), static_cast<ssize_t>(bytes.size()));
  }
};

TEST(VirtioNet, OffersItsMacAndLink) {
  NetHarness net;
  EXPECT_EQ(net.offered & (F_MAC | F_STATUS), F_MAC | F_STATUS);
  uint8_t mac[6];
  for (int i = 0; i < 6; ++i) mac[i] = static_cast<uint8_t>(net.harness.configRead(i, 1));
  EXPECT_EQ(std::memcmp(mac, "\x02\x00\x00\x00\x00\x2a", 6), 0);
  EXPECT_EQ(net.harness.configRead(6, 2) & 1, 1u) << "link up";
}

TEST(VirtioNet, ServerRunsConfined) {
  NetHarness net;
  auto problems = confinementProblems(net.harness.process().pid());
  EXPECT_TRUE(problems.empty()) << ::testing::PrintToString(problems);
}

TEST(VirtioNet, FramesGoOutAndComeIn) {
  NetHarness net;
  auto out = net.frame(60, 1);
  net.transmit(out);
  ASSERT_EQ(net.harness.waitForCompletions(TX).size(), 1u);
  EXPECT_EQ(net.fromGuest(), out);

  uint64_t buffer = net.postReceive(2048);
  auto in = net.frame(1514, 2);
  net.toGuest(in);
  auto done = net.harness.waitForCompletions(RX);
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].length, HEADER + in.size());
  uint8_t header[HEADER] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0};  // num_buffers = 1
  EXPECT_EQ(std::memcmp(net.harness.host(buffer, HEADER), header, HEADER), 0);
  EXPECT_EQ(std::memcmp(net.harness.host(buffer + HEADER, in.size()), in.data(), in.size()), 0);
}

TEST(VirtioNet, FramesWaitForReceiveBuffers) {
  NetHarness net;
  auto early = net.frame(100, 3);
  net.toGuest(early);  // Nowhere to put it yet: it must wait, not vanish.
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  uint64_t buffer = net.postReceive(2048);
  auto done = net.harness.waitForCompletions(RX);
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(std::memcmp(net.harness.host(buffer + HEADER, early.size()), early.data(), early.size()), 0);
}

TEST(VirtioNet, HostileChainsDropOnlyTheirFrame) {
  NetHarness net;
  // Transmit: too short, too long, and a chain with a device-writable part.
  net.transmit(net.frame(10, 4));
  uint64_t huge = net.harness.allocate(HEADER + 70000);
  net.harness.submit(TX, {{huge, HEADER + 70000, false}});
  uint64_t mixed = net.harness.allocate(HEADER + 64);
  net.harness.submit(TX, {{mixed, HEADER + 60, false}, {mixed + HEADER + 60, 4, true}});
  net.harness.kick(TX);
  EXPECT_EQ(net.harness.waitForCompletions(TX, 3).size(), 3u) << "every chain is returned";
  pollfd fd{net.network.get(), POLLIN, 0};
  EXPECT_EQ(::poll(&fd, 1, 200), 0) << "none of them reached the network";

  // Receive: a buffer too small for the frame is returned empty; the next
  // frame goes to the next buffer.
  net.postReceive(40);
  net.toGuest(net.frame(200, 5));
  auto small = net.harness.waitForCompletions(RX);
  ASSERT_EQ(small.size(), 1u);
  EXPECT_EQ(small[0].length, 0u);
  uint64_t good = net.postReceive(2048);
  auto next = net.frame(64, 6);
  net.toGuest(next);
  auto done = net.harness.waitForCompletions(RX);
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(std::memcmp(net.harness.host(good + HEADER, next.size()), next.data(), next.size()), 0);

  // A frame still goes out: the device is healthy.
  auto out = net.frame(60, 7);
  net.transmit(out);
  EXPECT_EQ(net.harness.waitForCompletions(TX).size(), 1u);
  EXPECT_EQ(net.fromGuest(), out);
  EXPECT_EQ(net.harness.status() & 0x40, 0) << "no DEVICE_NEEDS_RESET";
}

TEST(VirtioNet, RestartKeepsReceiveBuffersAndGoesOn) {
  NetHarness net;
  uint64_t first = net.postReceive(2048);
  uint64_t second = net.postReceive(2048);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ::kill(net.harness.process().pid(), SIGKILL);
  net.harness.process().reap();
  net.harness.process().restart();
  auto a = net.frame(80, 8);
  auto b = net.frame(90, 9);
  net.toGuest(a);
  net.toGuest(b);
  auto done = net.harness.waitForCompletions(RX, 2);
  ASSERT_EQ(done.size(), 2u) << "the buffers posted before the restart are filled";
  EXPECT_EQ(std::memcmp(net.harness.host(first + HEADER, a.size()), a.data(), a.size()), 0);
  EXPECT_EQ(std::memcmp(net.harness.host(second + HEADER, b.size()), b.data(), b.size()), 0);
  auto out = net.frame(60, 10);
  net.transmit(out);
  EXPECT_EQ(net.harness.waitForCompletions(TX).size(), 1u);
  EXPECT_EQ(net.fromGuest(), out);
}

}  // namespace
}  // namespace cellvisor::testing
