// Crash-restart benchmark: kill -9 a virtio-blk server while the driver
// harness keeps using it, and measure kill -> device serving again (the
// request issued right after the kill completes). Median and p99 over N
// restarts, with the supervisor's normal policy (crashes spaced apart so
// no back-off applies). The supervisor runs on a plain libuv loop (as in a
// standalone vmm-core) or, with --vmmd-loop, on libuv driven from KJ's event
// loop exactly as vmmd runs it.
//
//   restart-bench [--restarts N] [--vmmd-loop] DIRECTORY
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>

#include "host/device-supervisor.h"
#include "tests/harness/virtio-harness.h"
#include "vmmd/uv-in-kj.h"

int main(int argc, char** argv) {
  using namespace cellvisor;
  using namespace cellvisor::testing;
  using Clock = std::chrono::steady_clock;
  int restarts = 100;
  bool vmmdLoop = false;
  int first = 1;
  for (; first < argc && argv[first][0] == '-'; ++first) {
    if (std::strcmp(argv[first], "--restarts") == 0 && first + 1 < argc) {
      restarts = std::atoi(argv[++first]);
    } else if (std::strcmp(argv[first], "--vmmd-loop") == 0) {
      vmmdLoop = true;
    } else {
      break;
    }
  }
  if (first >= argc) {
    std::fprintf(stderr, "usage: restart-bench [--restarts N] [--vmmd-loop] DIRECTORY\n");
    return 2;
  }
  std::string path = std::string(argv[first]) + "/cellvisor-restart-bench.img";
  int fd = ::open(path.c_str(), O_CREAT | O_RDWR | O_TRUNC, 0600);
  if (fd < 0 || ::ftruncate(fd, 16 << 20) != 0) return 1;
  ::close(fd);

  VirtioHarness harness("virtio-blk", path + ",queues=1", UniqueFd(::open(path.c_str(), O_RDWR | O_CLOEXEC)),
                        1);
  harness.initialize(~0ull);
  std::atomic<bool> stopping{false};
  std::atomic<bool> ready{false};
  uv_loop_t loop;
  uv_async_t stop;
  std::unique_ptr<DeviceSupervisor> supervisor;
  std::thread loopThread;
  if (vmmdLoop) {
    // The supervisor lives on its loop's thread, as in vmmd.
    loopThread = std::thread([&] {
      auto io = kj::setupAsyncIo();
      UvInKj bridge(io);
      supervisor = std::make_unique<DeviceSupervisor>(bridge.loop(), harness.process(),
                                                      [&] { return stopping.load(); });
      supervisor->setLog([](const std::string&) {});  // Figures only.
      bridge.wake();                                  // The supervisor's handles are new to the loop.
      ready = true;
      while (!stopping) io.provider->getTimer().afterDelay(50 * kj::MILLISECONDS).wait(io.waitScope);
      supervisor->close();
      supervisor.reset();
    });
    while (!ready) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  } else {
    uv_loop_init(&loop);
    supervisor =
        std::make_unique<DeviceSupervisor>(&loop, harness.process(), [&] { return stopping.load(); });
    supervisor->setLog([](const std::string&) {});  // Figures only.
    uv_async_init(&loop, &stop, [](uv_async_t* async) { uv_stop(async->loop); });
    loopThread = std::thread([&] { uv_run(&loop, UV_RUN_DEFAULT); });
  }

  uint64_t header = harness.allocate(16, 16);
  uint64_t data = harness.allocate(4096);
  uint64_t status = harness.allocate(1, 1);
  auto request = [&] {
    *harness.host(status) = 0xee;
    harness.submit(0, {{header, 16, false}, {data, 4096, true}, {status, 1, true}});
    harness.kick(0);
    auto done = harness.waitForCompletions(0, 1, std::chrono::seconds(10));
    return !done.empty() && *harness.host(status) == 0;
  };
  std::vector<double> millis;
  for (int i = 0; i < restarts; ++i) {
    if (!request()) {
      std::fprintf(stderr, "request failed before restart %d\n", i);
      return 1;
    }
    pid_t pid = harness.process().pid();
    auto start = Clock::now();
    ::kill(pid, SIGKILL);
    if (!request()) {
      std::fprintf(stderr, "request failed across restart %d\n", i);
      return 1;
    }
    millis.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
    // Let the instance live past "young": this measures restart, not back-off.
    std::this_thread::sleep_for(DeviceSupervisor::YOUNG + std::chrono::milliseconds(20));
  }
  stopping = true;
  if (vmmdLoop) {
    loopThread.join();
  } else {
    uv_async_send(&stop);
    loopThread.join();
    supervisor.reset();
    uv_close(reinterpret_cast<uv_handle_t*>(&stop), nullptr);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
  }
  std::sort(millis.begin(), millis.end());
  std::printf(
      "kill -9 -> virtio-blk serving again (%s), %d restarts: median %.2f ms, p99 %.2f ms, max %.2f ms\n",
      vmmdLoop ? "supervisor on vmmd's KJ+libuv loop" : "supervisor on a libuv loop", restarts,
      millis[millis.size() / 2], millis[static_cast<size_t>(0.99 * (millis.size() - 1))], millis.back());
  ::unlink(path.c_str());
  return 0;
}
