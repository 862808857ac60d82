// Boot benchmark: exec of the VM monitor -> the test guest's first
// instruction (its first write to the debug-exit port), for vmm-core and, in
// the same run, for QEMU's fastest path (microvm, PVH, isa-debug-exit).
// Prints medians over N runs, the ratio, and memory footprints.
//
//   boot-time [--runs N] VMM_CORE GUEST_ELF [QEMU]
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "bench/process-runs.h"

namespace {

using namespace cellvisor::bench;

// Starts argv, lets the guest settle, reads the process's PSS and RSS.
std::pair<long, long> residentWhileIdle(const std::vector<std::string>& argv) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  pid_t pid;
  posix_spawn(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  long pss = 0;
  long rss = 0;
  std::ifstream rollup("/proc/" + std::to_string(pid) + "/smaps_rollup");
  for (std::string line; std::getline(rollup, line);) {
    if (line.rfind("Pss:", 0) == 0) pss = std::atol(line.c_str() + 4);
    if (line.rfind("Rss:", 0) == 0) rss = std::atol(line.c_str() + 4);
  }
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  return {pss, rss};
}

}  // namespace

int main(int argc, char** argv) {
  int runs = 20;
  int first = 1;
  if (argc > 2 && std::strcmp(argv[1], "--runs") == 0) {
    runs = std::atoi(argv[2]);
    first = 3;
  }
  if (argc - first < 2) {
    std::fprintf(stderr, "usage: boot-time [--runs N] VMM_CORE GUEST_ELF [QEMU]\n");
    return 2;
  }
  std::string core = argv[first];
  std::string guest = argv[first + 1];
  std::string qemu = argc - first > 2 ? argv[first + 2] : "";

  std::vector<std::string> coreArgs = {core,        "--trace-boot",  "-m",   "128M", "--kernel", guest,
                                       "--cmdline", "exit-at-entry", "bench"};
  std::vector<std::string> qemuArgs = {qemu,
                                       "-accel",
                                       "kvm",
                                       "-M",
                                       "microvm",
                                       "-nodefaults",
                                       "-no-user-config",
                                       "-nographic",
                                       "-m",
                                       "128M",
                                       "-kernel",
                                       guest,
                                       "-append",
                                       "exit-at-entry",
                                       "-device",
                                       "isa-debug-exit,iobase=0x501,iosize=2"};

  std::vector<int64_t> coreFirst, coreExit, qemuExit;
  long coreRss = 0, qemuRss = 0;
  for (int i = 0; i < runs; ++i) {
    Run run = runOnce(coreArgs);
    auto at = run.err.find("first-debug-write-ns ");
    if (run.status != 1 || at == std::string::npos) {
      std::fprintf(stderr, "vmm-core run failed (status %d): %s\n", run.status, run.err.c_str());
      return 1;
    }
    coreFirst.push_back(std::atoll(run.err.c_str() + at + 21) - run.startNs);
    coreExit.push_back(run.exitNs - run.startNs);
    coreRss = std::max(coreRss, run.maxRssKiB);
    if (!qemu.empty()) {
      Run q = runOnce(qemuArgs);
      if (q.status != 1) {
        std::fprintf(stderr, "qemu run failed (status %d): %s\n", q.status, q.err.c_str());
        return 1;
      }
      qemuExit.push_back(q.exitNs - q.startNs);
      qemuRss = std::max(qemuRss, q.maxRssKiB);
    }
  }

  std::printf("boot benchmark: %d runs each, guest %s\n\n", runs, guest.c_str());
  std::printf("%-44s %10s %10s\n", "measure", "median ms", "p90 ms");
  std::printf("%-44s %10.2f %10.2f\n", "vmm-core: exec -> first guest debug write", medianMs(coreFirst),
              percentileMs(coreFirst, 0.9));
  std::printf("%-44s %10.2f %10.2f\n", "vmm-core: exec -> exit", medianMs(coreExit),
              percentileMs(coreExit, 0.9));
  if (!qemu.empty()) {
    std::printf("%-44s %10.2f %10.2f\n", "qemu microvm (PVH): exec -> exit", medianMs(qemuExit),
                percentileMs(qemuExit, 0.9));
    std::printf("\nratio qemu/vmm-core (exec -> exit, medians): %.2fx\n",
                medianMs(qemuExit) / medianMs(coreExit));
  }
  std::printf("\npeak RSS: vmm-core %ld KiB", coreRss);
  if (!qemu.empty()) std::printf(", qemu %ld KiB", qemuRss);
  std::printf("\n");

  auto idleCore = coreArgs;
  idleCore[7] = "test=idle";
  auto [corePss, coreIdleRss] = residentWhileIdle(idleCore);
  std::printf("idle guest, 128 MiB: vmm-core PSS %ld KiB, RSS %ld KiB", corePss, coreIdleRss);
  if (!qemu.empty()) {
    auto idleQemu = qemuArgs;
    idleQemu[13] = "test=idle";
    auto [qemuPss, qemuIdleRss] = residentWhileIdle(idleQemu);
    std::printf("; qemu PSS %ld KiB, RSS %ld KiB", qemuPss, qemuIdleRss);
  }
  std::printf("\n");
  return 0;
}
