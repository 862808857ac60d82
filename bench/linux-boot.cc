// Linux boot benchmark: the test kernel (tests/linux) and its initramfs,
// no devices, booted by vmm-core and, in the same run, by QEMU (-M microvm
// and -M pc, the same vmlinux, initramfs and command line). For each:
// exec -> "Run /init" on the console, and exec -> the guest's own power-off.
// Prints per-run figures, medians and the ratios to vmm-core.
//
//   linux-boot [--runs N] VMM_CORE VMLINUX INITRAMFS EMULATING_CMDLINE [QEMU]
// EMULATING_CMDLINE: tests/linux/emulating-host.cmdline, added to the kernel's
// command line on a host whose KVM emulates guest ring 0.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <string>
#include <vector>

extern char** environ;

namespace {

double nowSeconds() {
  timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<double>(now.tv_sec) + static_cast<double>(now.tv_nsec) / 1e9;
}

struct Boot {
  double init = -1;  // exec -> "Run /init"
  double exit = -1;  // exec -> process exit
  int status = -1;
  std::string output;
};

// Runs argv with stdout and stderr on one pipe, stamping the first "Run
// /init" as it arrives; kills the run after `limit` seconds.
Boot boot(const std::vector<std::string>& argv, double limit) {
  int pipeFds[2];
  if (pipe2(pipeFds, O_CLOEXEC) != 0) std::exit(1);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, pipeFds[1], 1);
  posix_spawn_file_actions_adddup2(&actions, pipeFds[1], 2);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  Boot result;
  pid_t pid;
  double start = nowSeconds();
  if (posix_spawn(&pid, args[0], &actions, nullptr, args.data(), environ) != 0) {
    std::perror(args[0]);
    std::exit(1);
  }
  posix_spawn_file_actions_destroy(&actions);
  close(pipeFds[1]);
  for (;;) {
    pollfd ready{pipeFds[0], POLLIN, 0};
    int remainingMs = static_cast<int>((start + limit - nowSeconds()) * 1000);
    if (remainingMs <= 0) {
      kill(pid, SIGKILL);
      break;
    }
    if (poll(&ready, 1, remainingMs) <= 0) continue;
    char buffer[4096];
    ssize_t count = read(pipeFds[0], buffer, sizeof(buffer));
    if (count <= 0) break;
    result.output.append(buffer, static_cast<size_t>(count));
    if (result.init < 0 && result.output.find("Run /init") != std::string::npos)
      result.init = nowSeconds() - start;
  }
  int status;
  waitpid(pid, &status, 0);
  result.exit = nowSeconds() - start;
  result.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  close(pipeFds[0]);
  return result;
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values.empty() ? -1 : values[values.size() / 2];
}

bool emulatingHost() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string text((std::istreambuf_iterator<char>(cpuinfo)), std::istreambuf_iterator<char>());
  return (text.find(" vmx") == std::string::npos && text.find(" svm") == std::string::npos) ||
         access("/sys/module/kvm_pvm", F_OK) == 0;
}

struct Vmm {
  std::string name;
  std::vector<std::string> argv;
  std::vector<double> init, exit;
};

}  // namespace

int main(int argc, char** argv) {
  int runs = 3;
  int first = 1;
  if (argc > 2 && std::strcmp(argv[1], "--runs") == 0) {
    runs = std::atoi(argv[2]);
    first = 3;
  }
  if (argc - first < 4) {
    std::fprintf(stderr,
                 "usage: linux-boot [--runs N] VMM_CORE VMLINUX INITRAMFS EMULATING_CMDLINE [QEMU]\n");
    return 2;
  }
  std::string core = argv[first], kernel = argv[first + 1], initramfs = argv[first + 2];
  std::string emulatingCmdline = argv[first + 3];
  std::string qemu = argc - first > 4 ? argv[first + 4] : "";
  // The guest boots, its /init checks the kernel log and powers off (ACPI S5).
  std::string cmdline = "console=ttyS0 panic=-1 linux-guest.steps=drivers";
  if (emulatingHost()) {
    // What the emulator cannot run or runs too slowly (tests/linux/emulating-host.md).
    std::ifstream file(emulatingCmdline);
    std::string words;
    std::getline(file, words);
    cmdline += " " + words;
  }

  std::vector<Vmm> vmms;
  // One vCPU against QEMU's one; two, as the tests boot it, for what SMP costs.
  for (std::string cpus : {"1", "2"}) {
    std::vector<std::string> args = {
        core, "-c",     cpus,       "-m",   "256M",     "-l",      "com1,stdio", "-s",   "0,hostbridge",
        "-s", "31,lpc", "--kernel", kernel, "--initrd", initramfs, "--cmdline",  cmdline};
    args.push_back("bench");
    vmms.push_back({"vmm-core -c " + cpus, args, {}, {}});
  }
  if (!qemu.empty()) {
    // KVM-PVM refuses QEMU's default MSR 0x10a; the same CPU features as
    // vmm-core's preset, so both guests run the same code.
    std::string cpu = "host,-arch-capabilities,-kvm-pv-ipi,-kvm-pv-unhalt,-kvm-pv-sched-yield";
    for (std::string machine : {"microvm", "pc"}) {
      std::vector<std::string> args = {qemu, "-accel", "kvm", "-cpu", cpu, "-M", machine, "-nodefaults"};
      for (std::string arg :
           {"-no-user-config", "-nographic", "-serial", "stdio", "-smp", "1", "-m", "256M"}) {
        args.push_back(arg);
      }
      for (std::string arg :
           {"-kernel", kernel.c_str(), "-initrd", initramfs.c_str(), "-append", cmdline.c_str()}) {
        args.push_back(arg);
      }
      args.push_back("-no-reboot");
      vmms.push_back({"qemu -M " + machine, args, {}, {}});
    }
  }
  std::printf("linux-boot: %d runs each; kernel %s\n", runs, kernel.c_str());
  for (int run = 0; run < runs; ++run) {
    for (auto& vmm : vmms) {
      Boot result = boot(vmm.argv, 300);
      bool clean = result.output.find("reboot: Power down") != std::string::npos;
      std::printf("  %-14s run %d: /init %6.1f s, power-off %6.1f s%s\n", vmm.name.c_str(), run + 1,
                  result.init, result.exit, clean ? "" : " (no clean power-off)");
      std::fflush(stdout);
      if (result.init < 0 || !clean) {
        std::fprintf(
            stderr, "%s: status %d, last output:\n%s\n", vmm.name.c_str(), result.status,
            result.output.substr(result.output.size() > 2000 ? result.output.size() - 2000 : 0).c_str());
        continue;
      }
      vmm.init.push_back(result.init);
      vmm.exit.push_back(result.exit);
    }
  }
  std::printf("\n%-16s %16s %16s %12s\n", "VMM", "/init median s", "power-off med s", "vs vmm-core");
  double coreExit = median(vmms.front().exit);
  for (const auto& vmm : vmms) {
    std::printf("%-16s %16.1f %16.1f %11.2fx\n", vmm.name.c_str(), median(vmm.init), median(vmm.exit),
                median(vmm.exit) / coreExit);
  }
  return 0;
}
