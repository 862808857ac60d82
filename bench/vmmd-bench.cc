// Management-path benchmark: through vmmd's control API, create + start a
// VM whose guest ends at its first instruction, and time until vmmd reports
// it stopped (an upper bound for create -> first guest instruction through
// vmmd). Then the memory of a running VM: PSS of vmmd + core + device server.
//
//   vmmd-bench [--runs N] VMMD GUEST_ELF
#include <capnp/ez-rpc.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

#include "control.capnp.h"

extern char** environ;

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

long pssKiB(pid_t pid) {
  std::ifstream rollup("/proc/" + std::to_string(pid) + "/smaps_rollup");
  for (std::string line; std::getline(rollup, line);) {
    if (line.rfind("Pss:", 0) == 0) return std::atol(line.c_str() + 4);
  }
  return 0;
}

std::vector<pid_t> descendants(pid_t pid) {
  std::vector<pid_t> all;
  for (const auto& task : fs::directory_iterator("/proc/" + std::to_string(pid) + "/task")) {
    std::ifstream list(task.path() / "children");
    for (pid_t child; list >> child;) {
      all.push_back(child);
      auto more = descendants(child);
      all.insert(all.end(), more.begin(), more.end());
    }
  }
  return all;
}

// CPU time `pid` has run (all threads), in nanoseconds.
uint64_t cpuNanoseconds(pid_t pid) {
  uint64_t total = 0;
  for (const auto& task : fs::directory_iterator("/proc/" + std::to_string(pid) + "/task")) {
    std::ifstream schedstat(task.path() / "schedstat");
    uint64_t ran = 0;
    if (schedstat >> ran) total += ran;
  }
  return total;
}

// The share of one core vmmd uses over `seconds` while nothing is asked of it.
void printIdleCpu(pid_t daemon, const char* what, int seconds) {
  uint64_t before = cpuNanoseconds(daemon);
  std::this_thread::sleep_for(std::chrono::seconds(seconds));
  double share = static_cast<double>(cpuNanoseconds(daemon) - before) / (seconds * 1e9);
  std::printf("vmmd CPU while idle, %s: %.3f%% of a core over %d s\n", what, share * 100, seconds);
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
    std::fprintf(stderr, "usage: vmmd-bench [--runs N] VMMD GUEST_ELF\n");
    return 2;
  }
  fs::path root = fs::temp_directory_path() / ("cellvisor-vmmd-bench-" + std::to_string(::getpid()));
  fs::create_directories(root / "store" / ".templates");
  for (auto [name, cmdline] : {std::pair{"exit", "exit-at-entry"}, std::pair{"idle", "test=idle"}}) {
    std::ofstream(root / "store" / ".templates" / (std::string(name) + ".conf"))
        << "loader=\"kernel\"\nkernel=\"" << fs::canonical(argv[first + 1]).string()
        << "\"\nkernel_cmdline=\"" << cmdline
        << "\"\ncpu=\"1\"\nmemory=\"128M\"\ndisk0_type=\"virtio-blk\"\ndisk0_name=\"disk0.img\"\n"
        << "disk0_size=\"16M\"\n";
  }
  std::string socket = (root / "vmmd.sock").string();
  std::string store = (root / "store").string();
  char* daemonArgs[] = {
      argv[first], const_cast<char*>("-d"), store.data(), const_cast<char*>("-S"), socket.data(), nullptr};
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  pid_t daemon;
  posix_spawn(&daemon, argv[first], &actions, nullptr, daemonArgs, environ);
  for (int i = 0; i < 500 && !fs::exists(socket); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));

  printIdleCpu(daemon, "no VM", 10);
  {
    capnp::EzRpcClient client("unix:" + socket);
    auto& wait = client.getWaitScope();
    auto vmmd = client.getMain<cellvisor::proto::Vmmd>();
    std::vector<double> millis;
    for (int run = 0; run < runs; ++run) {
      std::string name = "b" + std::to_string(run);
      auto start = Clock::now();
      auto create = vmmd.createRequest();
      create.setName(name);
      create.setTemplate("exit");
      create.send().wait(wait);
      auto boot = vmmd.startRequest();
      boot.setName(name);
      boot.send().wait(wait);
      for (;;) {
        auto info = vmmd.infoRequest();
        info.setName(name);
        auto response = info.send().wait(wait);  // Owns what `vm` reads.
        auto vm = response.getVm();
        if (vm.getPid() == 0 && std::string(vm.getLastExit()) == "poweroff") break;
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
      millis.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
      auto destroy = vmmd.destroyRequest();
      destroy.setName(name);
      destroy.send().wait(wait);
    }
    std::sort(millis.begin(), millis.end());
    std::printf(
        "vmctl-path create + start -> guest's first instruction ended the VM, seen by vmmd (%d runs): "
        "median %.2f ms, p90 %.2f ms\n",
        runs, millis[millis.size() / 2], millis[static_cast<size_t>(0.9 * (millis.size() - 1))]);

    auto create = vmmd.createRequest();
    create.setName("idle");
    create.setTemplate("idle");
    create.send().wait(wait);
    auto boot = vmmd.startRequest();
    boot.setName("idle");
    boot.send().wait(wait);
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    long total = pssKiB(daemon);
    std::printf("running VM (128 MiB, one virtio-blk disk): vmmd PSS %ld KiB", total);
    for (pid_t child : descendants(daemon)) {
      long pss = pssKiB(child);
      total += pss;
      std::string comm;
      std::ifstream("/proc/" + std::to_string(child) + "/comm") >> comm;
      std::printf(", %s %ld KiB", comm.c_str(), pss);
    }
    std::printf("; total %ld KiB\n", total);
    printIdleCpu(daemon, "one idle VM running", 10);
    auto off = vmmd.poweroffRequest();
    off.setName("idle");
    off.send().wait(wait);
  }
  ::kill(daemon, SIGTERM);
  ::waitpid(daemon, nullptr, 0);
  fs::remove_all(root);
  return 0;
}
