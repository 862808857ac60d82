// virtio-net throughput: the real virtio-net server process, driven through
// its real fds and shared memory by the driver harness, its "tap" one end of
// a SOCK_SEQPACKET socketpair. Transmit (guest -> network) and receive
// (network -> guest) of full-size frames, 64 in flight; beside each, the
// peer figure from the same run: the same frames through the socketpair
// alone, the ceiling any device behind it can reach.
//
//   net-bench [--frames N] [--poll-us N]
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "tests/harness/virtio-harness.h"

namespace {

using Clock = std::chrono::steady_clock;
constexpr size_t FRAME = 1514;
constexpr size_t HEADER = 12;
constexpr int IN_FLIGHT = 64;

double seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

void report(const char* what, long frames, double elapsed, double peer) {
  double rate = frames / elapsed;
  std::printf("%-34s %8.0f kframes/s %6.2f Gbit/s   socketpair alone %8.0f kframes/s   ratio %.2f\n", what,
              rate / 1e3, rate * FRAME * 8 / 1e9, peer / 1e3, rate / peer);
}

// Frames per second through the socketpair with no device at all.
double socketpairRate(long frames) {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) != 0) return 0;
  auto start = Clock::now();
  std::thread reader([&] {
    std::vector<uint8_t> buffer(70000);
    for (long i = 0; i < frames; ++i) ::recv(fds[1], buffer.data(), buffer.size(), 0);
  });
  std::vector<uint8_t> frame(FRAME, 0x5a);
  for (long i = 0; i < frames; ++i) ::send(fds[0], frame.data(), frame.size(), 0);
  reader.join();
  double rate = frames / seconds(start);
  ::close(fds[0]);
  ::close(fds[1]);
  return rate;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace cellvisor;
  using namespace cellvisor::testing;
  long frames = 200000;
  std::string options = "tap0";
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--frames") == 0) frames = std::atol(argv[i + 1]);
    if (std::strcmp(argv[i], "--poll-us") == 0) options += std::string(",poll-us=") + argv[i + 1];
  }
  std::printf("server options: %s\n", options.c_str());
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) != 0) return 1;
  // A tap takes every frame written to it (the kernel drops on overflow,
  // later); a socketpair says EAGAIN when its buffer is full, which the
  // server counts as a dropped frame. A deep buffer keeps the comparison
  // about the device, and the sink gives up after 2 s of silence.
  int deep = 32 << 20;
  ::setsockopt(fds[0], SOL_SOCKET, SO_SNDBUFFORCE, &deep, sizeof(deep));
  ::setsockopt(fds[1], SOL_SOCKET, SO_RCVBUFFORCE, &deep, sizeof(deep));
  timeval patience{2, 0};
  ::setsockopt(fds[1], SOL_SOCKET, SO_RCVTIMEO, &patience, sizeof(patience));
  UniqueFd network(fds[1]);
  VirtioHarness harness("virtio-net", options, UniqueFd(fds[0]), 2, 64ull << 20);
  harness.initialize(~0ull);
  std::vector<uint64_t> buffers;
  for (int i = 0; i < IN_FLIGHT; ++i) {
    buffers.push_back(harness.allocate(2048));
    std::memset(harness.host(buffers.back(), HEADER + FRAME), 0, HEADER + FRAME);
  }

  // Transmit: keep 64 frames queued; a thread drains the network side.
  double peer = socketpairRate(frames);
  auto start = Clock::now();
  long delivered = 0;
  Clock::time_point lastFrame;
  std::thread sink([&] {
    std::vector<uint8_t> buffer(70000);
    while (delivered<frames&& ::recv(network.get(), buffer.data(), buffer.size(), 0)> 0) {
      ++delivered;
      lastFrame = Clock::now();
    }
  });
  long sent = 0;
  long done = 0;
  int next = 0;
  while (done < frames) {
    bool queued = false;
    while (sent - done < IN_FLIGHT && sent < frames) {
      harness.submit(1, {{buffers[next++ % IN_FLIGHT], static_cast<uint32_t>(HEADER + FRAME), false}});
      ++sent;
      queued = true;
    }
    if (queued) harness.kick(1);
    done += static_cast<long>(harness.waitForCompletions(1, 1, std::chrono::seconds(10)).size());
  }
  sink.join();
  report("virtio-net transmit, 1514 B frames", delivered,
         std::chrono::duration<double>(lastFrame - start).count(), peer);
  if (delivered != frames)
    std::printf("  (%ld frames dropped at a full socket buffer)\n", frames - delivered);

  // Receive: 64 buffers posted and re-posted; a thread feeds the network side.
  for (int i = 0; i < IN_FLIGHT; ++i) harness.submit(0, {{buffers[i], 2048, true}});
  harness.kick(0);
  start = Clock::now();
  std::thread source([&] {
    std::vector<uint8_t> frame(FRAME, 0xa5);
    for (long i = 0; i < frames; ++i) ::send(network.get(), frame.data(), frame.size(), 0);
  });
  long received = 0;
  while (received < frames) {
    auto completions = harness.waitForCompletions(0, 1, std::chrono::seconds(10));
    if (completions.empty()) break;
    for (const auto& completion : completions) {
      (void)completion;
      harness.submit(0, {{buffers[received++ % IN_FLIGHT], 2048, true}});
    }
    harness.kick(0);
  }
  source.join();
  report("virtio-net receive, 1514 B frames", received, seconds(start), peer);
  return received == frames && delivered == frames ? 0 : 1;
}
