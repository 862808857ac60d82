// Timing whole processes for the boot benchmarks: spawn, wait, keep the
// exit status, peak RSS and stderr; medians and percentiles of the runs.
#pragma once

#include <fcntl.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern char** environ;

namespace cellvisor::bench {

inline int64_t monotonicNs() {
  timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return int64_t{now.tv_sec} * 1'000'000'000 + now.tv_nsec;
}

struct Run {
  int64_t startNs = 0;
  int64_t exitNs = 0;
  long maxRssKiB = 0;
  int status = -1;
  std::string err;
};

// Spawns argv with stderr captured to a temp file and waits for it.
inline Run runOnce(const std::vector<std::string>& argv) {
  char errPath[] = "/tmp/cellvisor-bench-XXXXXX";
  int errFd = mkstemp(errPath);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, errFd, 2);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  Run run;
  pid_t pid;
  run.startNs = monotonicNs();
  if (posix_spawn(&pid, args[0], &actions, nullptr, args.data(), environ) != 0) {
    std::perror(args[0]);
    std::exit(1);
  }
  int status;
  rusage usage{};
  wait4(pid, &status, 0, &usage);
  run.exitNs = monotonicNs();
  run.maxRssKiB = usage.ru_maxrss;
  run.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  posix_spawn_file_actions_destroy(&actions);
  std::ifstream err(errPath);
  run.err.assign(std::istreambuf_iterator<char>(err), std::istreambuf_iterator<char>());
  close(errFd);
  unlink(errPath);
  return run;
}

inline double medianMs(std::vector<int64_t> values) {
  std::sort(values.begin(), values.end());
  return static_cast<double>(values[values.size() / 2]) / 1e6;
}

inline double percentileMs(std::vector<int64_t> values, double p) {
  std::sort(values.begin(), values.end());
  return static_cast<double>(values[static_cast<size_t>(p * static_cast<double>(values.size() - 1))]) / 1e6;
}

}  // namespace cellvisor::bench
