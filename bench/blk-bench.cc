// virtio-blk data-path benchmark through the driver harness: the real
// server process, real rings, real eventfds, against fio (io_uring) on the
// same file at the same queue depth, in the same run. Also the kick ->
// interrupt round trip against a raw eventfd ping-pong between two
// processes, and the server's memory.
//
//   blk-bench [--seconds S] DIRECTORY...   (e.g. /dev/shm /var/tmp)
#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "bench/disk-bench.h"

namespace {

using namespace cellvisor;
using namespace cellvisor::bench;

// Round trip: the harness rings the doorbell, the server completes a request
// that needs no backend I/O (GET_ID) and raises the irqfd.
std::vector<double> kickToInterrupt(const std::string& path, int rounds) {
  VirtioHarness harness("virtio-blk", path + ",ro,queues=1",
                        UniqueFd(::open(path.c_str(), O_RDONLY | O_CLOEXEC)), 1);
  harness.initialize(~0ull & ~(1ull << 29));  // No EVENT_IDX: an interrupt for every completion.
  uint64_t header = harness.allocate(16, 16);
  uint32_t type = 8;
  std::memcpy(harness.host(header, 4), &type, 4);
  uint64_t id = harness.allocate(20);
  uint64_t status = harness.allocate(1, 1);
  std::vector<double> micros;
  for (int i = 0; i < rounds; ++i) {
    harness.submit(0, {{header, 16, false}, {id, 20, true}, {status, 1, true}});
    auto start = Clock::now();
    harness.kick(0);
    harness.interruptPending(1, std::chrono::seconds(1));
    micros.push_back(std::chrono::duration<double, std::micro>(Clock::now() - start).count());
    harness.waitForCompletions(0, 1);
  }
  return micros;
}

std::vector<double> eventfdPingPong(int rounds) {
  int ping = ::eventfd(0, 0);
  int pong = ::eventfd(0, 0);
  pid_t child = ::fork();
  if (child == 0) {
    eventfd_t value;
    for (int i = 0; i < rounds; ++i) {
      eventfd_read(ping, &value);
      eventfd_write(pong, 1);
    }
    _exit(0);
  }
  std::vector<double> micros;
  for (int i = 0; i < rounds; ++i) {
    auto start = Clock::now();
    eventfd_write(ping, 1);
    eventfd_t value;
    eventfd_read(pong, &value);
    micros.push_back(std::chrono::duration<double, std::micro>(Clock::now() - start).count());
  }
  ::waitpid(child, nullptr, 0);
  return micros;
}

}  // namespace

int main(int argc, char** argv) {
  auto arguments = benchArguments(argc, argv, "blk-bench");
  if (!arguments) return 2;
  auto [seconds, first] = *arguments;
  const auto& workloads = diskWorkloads();
  for (int i = first; i < argc; ++i) {
    std::string directory = argv[i];
    std::string path = directory + "/cellvisor-blk-bench.img";
    bool direct = supportsDirectIo(directory);
    prefill(path);
    std::printf("\n%s (%s), %.0f s per run\n", directory.c_str(), direct ? "O_DIRECT" : "page cache",
                seconds);
    std::printf("%-20s %14s %14s %10s %14s %10s %8s %8s\n", "workload", "cellvisor", "+poll 50us", "MiB/s",
                "fio", "MiB/s", "ratio", "+poll");
    long pss = 0;
    for (const auto& work : workloads) {
      Figures ours = runVirtioBlk(path, direct, work, seconds, 0, &pss);
      Figures polled = runVirtioBlk(path, direct, work, seconds, 50, &pss);
      Figures peer = runFio(path, direct, work, seconds);
      std::printf("%-20s %9.0f IOPS %9.0f IOPS %10.1f %9.0f IOPS %10.1f %8.2f %8.2f\n", work.name, ours.iops,
                  polled.iops, polled.mibPerSecond, peer.iops, peer.mibPerSecond,
                  peer.iops > 0 ? ours.iops / peer.iops : 0.0, peer.iops > 0 ? polled.iops / peer.iops : 0.0);
    }
    std::printf("virtio-blk server PSS after the runs: %ld KiB\n", pss);
    ::unlink(path.c_str());
  }
  std::string path = std::string(argv[first]) + "/cellvisor-latency.img";
  int fd = ::open(path.c_str(), O_CREAT | O_RDWR, 0600);
  if (::ftruncate(fd, 1 << 20) != 0) std::perror("ftruncate");
  ::close(fd);
  auto kick = kickToInterrupt(path, 20000);
  auto raw = eventfdPingPong(20000);
  ::unlink(path.c_str());
  std::printf("\nkick -> interrupt round trip (GET_ID, 20000 rounds): median %.1f us, p99 %.1f us\n",
              percentile(kick, 0.5), percentile(kick, 0.99));
  std::printf("raw eventfd ping-pong between two processes:        median %.1f us, p99 %.1f us\n",
              percentile(raw, 0.5), percentile(raw, 0.99));
  return 0;
}
