// The device supervisor's restart policy with real processes that stand in
// for a server: instances that die young are restarted after growing delays
// and, past the crash-loop limit, the device is failed; an instance that
// lived a while is restarted at once and wipes the slate; a restart on
// request is no crash.
//
// Timing: delays are checked as lower bounds only, on the loop's clock (a
// loaded machine makes everything later, never earlier); that no delay was
// chosen is read from the supervisor's log, which states it: an upper bound
// on "at once" would be a flaky test on a busy machine. What the tests do
// assume is that an instance that exits at once (/bin/false) is seen dead
// within YOUNG (250 ms) of its start; it takes a few ms, also with the two
// cores of a small machine fully loaded. Whole file: about 5 s.
#include "host/device-supervisor.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <regex>
#include <string>
#include <vector>

#include "base/guest-memory.h"
#include "core/arch/x86/address-map.h"
#include "host/device-resources.h"
#include "host/device-server-process.h"
#include "servers/runtime/virtio-transport.h"

namespace cellvisor {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// What `changed` saw: an exit (no instance running) or a restart (one is).
struct Event {
  uint64_t loopMs;  // The loop's clock, which its timers run on.
  bool running;
  bool failed;
  uint32_t restarts;
};

struct DeviceSupervisorTest : ::testing::Test {
  std::filesystem::path directory;
  GuestMemory memory{2 * layout::MiB};
  DeviceResources resources{"flaky", 1, 2};
  std::unique_ptr<DeviceServerProcess> process;
  uv_loop_t loop{};
  uv_timer_t tick{};
  std::unique_ptr<DeviceSupervisor> supervisor;
  bool stopping = false;
  std::vector<Event> events;
  std::vector<std::string> log;
  std::function<void()> onChange;

  void SetUp() override {
    uv_loop_init(&loop);
    // Wakes the loop now and then, so a test that waits in vain ends at its deadline.
    uv_timer_init(&loop, &tick);
    uv_timer_start(
        &tick, [](uv_timer_t*) {}, 20, 20);
    char name[] = "/tmp/supervisor-test-XXXXXX";
    ASSERT_NE(::mkdtemp(name), nullptr);
    directory = name;
    // The server runs as nobody: it must reach the script.
    ::chmod(name, 0755);
  }

  void TearDown() override {
    stopping = true;
    if (supervisor) supervisor->close();
    uv_close(reinterpret_cast<uv_handle_t*>(&tick), nullptr);
    uv_run(&loop, UV_RUN_DEFAULT);  // Until every handle is closed.
    supervisor.reset();
    process.reset();  // Kills and collects the current instance.
    uv_loop_close(&loop);
    if (!directory.empty()) std::filesystem::remove_all(directory);
  }

  std::string script(const std::string& body) {
    auto path = directory / "server";
    std::ofstream(path) << "#!/bin/sh\n" << body << "\n";
    ::chmod(path.c_str(), 0755);
    return path;
  }

  void start(const std::string& binary) {
    ServerLaunch launch;
    launch.binary = binary;
    launch.deviceName = "flaky";
    launch.sandbox = "off";
    launch.queues = 1;
    launch.vectors = 2;
    process =
        std::make_unique<DeviceServerProcess>(std::move(launch), resources, memory.memfd(), memory.regions());
    supervisor = std::make_unique<DeviceSupervisor>(
        &loop, *process, [this] { return stopping; },
        [this] {
          events.push_back({uv_now(&loop), process->pid() > 0, process->failed(), process->restarts()});
          if (onChange) onChange();
        });
    supervisor->setLog([this](const std::string& line) { log.push_back(line); });
  }

  // Runs the loop until `done` or the deadline; false at the deadline.
  bool runUntil(const std::function<bool()>& done, milliseconds limit) {
    auto deadline = Clock::now() + limit;
    while (!done()) {
      if (Clock::now() > deadline) return false;
      uv_run(&loop, UV_RUN_ONCE);
    }
    return true;
  }

  std::vector<Event> exits() const {
    std::vector<Event> out;
    for (const auto& event : events)
      if (!event.running) out.push_back(event);
    return out;
  }
  // The delay each restart log line announces (0: at once), in order.
  std::vector<long> announcedDelays() const {
    std::vector<long> delays;
    static const std::regex restarting(R"(restarting \(restart \d+(, after (\d+) ms)?\))");
    for (const auto& line : log) {
      std::smatch match;
      if (std::regex_search(line, match, restarting))
        delays.push_back(match[2].matched ? std::stol(match[2].str()) : 0);
    }
    return delays;
  }
};

TEST_F(DeviceSupervisorTest, YoungDeathsBackOffAndThenFailTheDevice) {
  // What a virtio server writes into the header at start (the instances
  // here die before they could).
  StateHeader& header = resources.stateHeader();
  header.failureNotice = {
      .count = 3,
      .ops = {{offsetof(VirtioState, status), FailureNotice::OR_BYTE, VirtioTransport::NEEDS_RESET, 0},
              {offsetof(VirtioState, configGeneration), FailureNotice::ADD_BYTE, 1, 0},
              {offsetof(VirtioState, isr), FailureNotice::OR_BYTE, 2, 0}},
      .vectorOffset = FailureNotice::NO_VECTOR};
  start("/bin/false");
  ASSERT_TRUE(runUntil([&] { return process->failed(); }, milliseconds(15000)))
      << "not failed after " << process->restarts() << " restarts";

  const int limit = DeviceSupervisor::CRASH_LOOP_LIMIT;
  EXPECT_EQ(process->restarts(), static_cast<uint32_t>(limit - 1)) << "one first start, then restarts";
  EXPECT_EQ(process->pid(), -1) << "nothing runs after the last death";

  // Every death but the last announces a restart after a growing delay,
  // capped at a second.
  std::vector<long> expected;
  for (int death = 1; death < limit; ++death) expected.push_back(std::min(1000L, 10L << (death - 1)));
  EXPECT_EQ(announcedDelays(), expected);
  ASSERT_FALSE(log.empty());
  EXPECT_NE(log.back().find("device failed"), std::string::npos) << log.back();
  EXPECT_NE(log.back().find("flaky"), std::string::npos) << "names the device";
  EXPECT_NE(log.back().find("exited with status 1"), std::string::npos) << "says how it ended";

  // `changed` ran for every exit and restart, and last for the failure.
  ASSERT_EQ(events.size(), static_cast<size_t>(2 * (limit - 1) + 1));
  EXPECT_TRUE(events.back().failed);
  EXPECT_FALSE(events.back().running);
  for (size_t i = 0; i + 1 < events.size(); ++i) EXPECT_FALSE(events[i].failed) << i;

  // The restart after each death came no earlier than its delay (on the
  // loop's clock: the one the back-off timer counts on).
  for (int death = 1; death < limit; ++death) {
    const Event& exit = events[2 * (death - 1)];
    const Event& restart = events[2 * (death - 1) + 1];
    ASSERT_FALSE(exit.running);
    ASSERT_TRUE(restart.running);
    EXPECT_EQ(restart.restarts, static_cast<uint32_t>(death));
    EXPECT_GE(restart.loopMs - exit.loopMs, static_cast<uint64_t>(expected[death - 1]))
        << "restart " << death;
  }

  // The guest is told, and nobody restarts the device any more.
  VirtioState& body = resources.stateBody<VirtioState>();
  EXPECT_NE(body.status & VirtioTransport::NEEDS_RESET, 0);
  EXPECT_EQ(body.configGeneration, 1);
  EXPECT_EQ(body.isr, 2);
  size_t seen = events.size();
  runUntil([] { return false; }, milliseconds(100));
  EXPECT_EQ(events.size(), seen);
  EXPECT_EQ(process->restarts(), static_cast<uint32_t>(limit - 1));
}

TEST_F(DeviceSupervisorTest, LongLivedServerIsRestartedAtOnce) {
  // Lives past YOUNG, then crashes.
  static_assert(DeviceSupervisor::YOUNG < milliseconds(300));
  start(script("/bin/sleep 0.3; exit 2"));
  ASSERT_TRUE(runUntil([&] { return process->restarts() >= 3 && process->pid() > 0; }, milliseconds(10000)));
  EXPECT_EQ(announcedDelays(), (std::vector<long>{0, 0, 0}));
  EXPECT_FALSE(process->failed());
  for (const auto& line : log) EXPECT_NE(line.find("exited with status 2"), std::string::npos) << line;
}

TEST_F(DeviceSupervisorTest, ALongLifeStartsTheCrashCountOver) {
  // Dies at once unless the file `long` exists; then lives past YOUNG.
  auto marker = directory / "long";
  start(script("[ -e " + marker.string() + " ] && /bin/sleep 0.3; exit 1"));
  onChange = [&] {
    if (process->pid() > 0) return;  // Only exits decide.
    size_t deaths = exits().size();
    if (deaths == 5) std::ofstream(marker) << "";      // The sixth instance lives long ...
    if (deaths == 6) std::filesystem::remove(marker);  // ... the seventh dies young again.
  };
  ASSERT_TRUE(runUntil([&] { return exits().size() >= 7; }, milliseconds(10000)));
  auto delays = announcedDelays();
  ASSERT_GE(delays.size(), 7u);
  delays.resize(7);
  EXPECT_EQ(delays, (std::vector<long>{10, 20, 40, 80, 160, 0, 10}))
      << "after a long life, at once; then back-off from the start";
  EXPECT_FALSE(process->failed());
}

TEST_F(DeviceSupervisorTest, RestartsOnRequestAreNoCrashes) {
  start(script("exec /bin/sleep 30"));
  // The last request switches to a binary that crashes at once.
  auto upgraded = directory / "upgraded";
  std::ofstream(upgraded) << "#!/bin/sh\nexit 1\n";
  ::chmod(upgraded.c_str(), 0755);
  EXPECT_THROW(process->requestRestart((directory / "missing").string()), std::invalid_argument);

  // More requested restarts of young instances than the crash-loop limit.
  const uint32_t wanted = DeviceSupervisor::CRASH_LOOP_LIMIT + 2;
  onChange = [&] {
    if (process->pid() > 0 && process->restarts() + 1 < wanted) process->requestRestart("");
    if (process->pid() > 0 && process->restarts() + 1 == wanted) process->requestRestart(upgraded);
  };
  process->requestRestart("");
  ASSERT_TRUE(runUntil([&] { return !announcedDelays().empty() || process->failed(); }, milliseconds(10000)))
      << process->restarts() << " restarts";
  EXPECT_EQ(process->launch().binary, upgraded.string());
  size_t onRequest = 0;
  for (const auto& line : log) onRequest += line.find("restarting on request") != std::string::npos;
  EXPECT_EQ(onRequest, wanted);
  ASSERT_GT(log.size(), wanted);
  EXPECT_NE(log[wanted - 1].find(upgraded.string()), std::string::npos) << "names the new binary";
  // The first crash after them is the first young death, not one past the limit.
  EXPECT_FALSE(process->failed());
  EXPECT_EQ(announcedDelays().front(), 10);
}

TEST_F(DeviceSupervisorTest, ShuttingDownStopsRestarts) {
  start("/bin/false");
  stopping = true;
  runUntil([&] { return process->exited(); }, milliseconds(5000));
  runUntil([] { return false; }, milliseconds(100));
  EXPECT_EQ(process->restarts(), 0u);
  EXPECT_TRUE(events.empty());
  EXPECT_FALSE(process->failed());
}

}  // namespace
}  // namespace cellvisor
