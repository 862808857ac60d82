// The fixture of the Linux guest tests: the test kernel built by
// tests/linux/build-kernel.sh (cached outside the clone), the initramfs of
// ./init, and the core's arguments to boot them.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/kvm/hypervisor.h"
#include "tests/boot/core-process.h"

namespace cellvisor::testing {

namespace fs = std::filesystem;

// From exec to /init is 40-60 s on an emulating host (seconds elsewhere).
constexpr std::chrono::seconds BOOT_TIMEOUT{240};

// The kernel's path as build-kernel.sh names it (built or not).
inline std::string testKernel() {
  const char* script = std::getenv("CELLVISOR_LINUX_BUILD");
  if (script == nullptr) return "";
  CoreProcess print({"/bin/sh", script, "--print-path"});
  if (print.wait(std::chrono::seconds(30)) != 0) return "";
  std::string path = print.out();
  while (!path.empty() && path.back() == '\n') path.pop_back();
  return path;
}

inline std::string testInitramfs() {
  const char* path = std::getenv("CELLVISOR_LINUX_INITRAMFS");
  return path ? path : "";
}

// The kernel's command line: on an emulating host it carries what
// tests/linux/emulating-host.cmdline says (what the emulator cannot run or
// runs too slowly, and the core cannot hide). panic=-1: a panic ends the VM
// (status 0) instead of hanging.
inline std::string kernelCommandLine(const std::string& steps) {
  std::string line = "console=ttyS0 panic=-1 " + steps;
  const char* extra = std::getenv("CELLVISOR_LINUX_EMULATING_CMDLINE");
  if (hostEmulatesGuestKernel() && extra != nullptr) {
    std::ifstream file(extra);
    std::string words;
    std::getline(file, words);
    line += " " + words;
  }
  return line;
}

// Checks a Linux test can run here; sets `kernel` and `initramfs`.
inline std::string linuxUnavailableReason(std::string& kernel, std::string& initramfs) {
  if (auto reason = kvmUnavailableReason(); !reason.empty()) return reason;
  kernel = testKernel();
  if (kernel.empty() || ::access(kernel.c_str(), R_OK) != 0) {
    return "no test kernel at '" + kernel + "': tests/linux/build-kernel.sh builds it (tools/test.sh does)";
  }
  initramfs = testInitramfs();
  if (initramfs.empty() || ::access(initramfs.c_str(), R_OK) != 0) {
    return "no initramfs: the build makes it from busybox-static (apt-get install busybox-static)";
  }
  return "";
}

class LinuxGuest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto reason = linuxUnavailableReason(kernel, initramfs); !reason.empty()) GTEST_SKIP() << reason;
  }
  void TearDown() override {
    for (const auto& path : scratchFiles) ::unlink(path.c_str());
  }

  // vmm-core booting the test kernel: 2 vCPUs, 256 MiB, ACPI, console on stdio.
  std::vector<std::string> coreArgs(const std::vector<std::string>& devices, const std::string& steps) {
    std::vector<std::string> argv = {coreBinary(), "-c",           "2",  "-m",    "256M", "-l", "com1,stdio",
                                     "-s",         "0,hostbridge", "-s", "31,lpc"};
    argv.insert(argv.end(), devices.begin(), devices.end());
    argv.insert(argv.end(),
                {"--kernel", kernel, "--initrd", initramfs, "--cmdline", kernelCommandLine(steps), "linux"});
    return argv;
  }

  // A sparse scratch disk of `mib` MiB, removed after the test.
  std::string scratch(const std::string& name, int mib) {
    std::string path =
        (fs::path(::testing::TempDir()) / ("cellvisor-linux-" + std::to_string(::getpid()) + "-" + name))
            .string();
    fs::remove(path);
    std::ofstream(path, std::ios::binary).close();
    fs::resize_file(path, static_cast<uintmax_t>(mib) << 20);
    scratchFiles.push_back(path);
    return path;
  }

  std::string kernel;
  std::string initramfs;
  std::vector<std::string> scratchFiles;
};

// One round of the blk pattern: 32-byte lines, numbered and stamped with the
// round, so no two sectors anywhere are alike (a lost, stale or misplaced
// write shows).
inline std::string patternBytes(int kib, int round) {
  std::string bytes;
  bytes.reserve(static_cast<size_t>(kib) << 10);
  char line[40];
  for (int i = 0; i < kib * 32; ++i) {
    std::snprintf(line, sizeof(line), "%08d cellvisor round %06d\n", i, round);
    bytes += line;
  }
  return bytes;
}

// The source disk the guest copies its rounds from: round r at (r - 1) * kib KiB.
inline void writePatternSource(const std::string& path, int kib, int rounds) {
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  for (int round = 1; round <= rounds; ++round) file << patternBytes(kib, round);
}

// sha256sum(1) of `data`, as the guest's busybox prints it.
inline std::string sha256(const std::string& data) {
  std::string path =
      (fs::path(::testing::TempDir()) / ("cellvisor-sha-" + std::to_string(::getpid()))).string();
  std::ofstream(path, std::ios::binary) << data;
  CoreProcess sum({"/usr/bin/sha256sum", path});
  sum.wait(std::chrono::seconds(30));
  ::unlink(path.c_str());
  return sum.out().substr(0, 64);
}

// Each round's "read back sha256" line must name its own pattern; returns
// the rounds that do not, each with what the guest said of it instead.
inline std::string unmatchedRounds(const std::string& console, const std::string& disk, int kib, int rounds) {
  std::string unmatched;
  for (int round = 1; round <= rounds; ++round) {
    std::string said = "blk: " + disk + ": round " + std::to_string(round) + ": ";
    std::string expected = said + "read back sha256 " + sha256(patternBytes(kib, round));
    if (console.find(expected) != std::string::npos) continue;
    size_t at = console.find(said);
    unmatched +=
        " " + std::to_string(round) + " (" +
        (at == std::string::npos ? "not reported"
                                 : "said '" + console.substr(at, console.find('\n', at) - at) + "'") +
        ")";
  }
  return unmatched;
}

inline std::string readPrefix(const std::string& path, size_t bytes) {
  std::ifstream file(path, std::ios::binary);
  std::string data(bytes, '\0');
  file.read(data.data(), static_cast<std::streamsize>(bytes));
  data.resize(static_cast<size_t>(file.gcount()));
  return data;
}

}  // namespace cellvisor::testing
