// What the disk benchmarks share: the workloads, a prefilled file, fio on
// the same file as the peer, and the virtio-blk server driven through the
// harness (blk-bench measures it; nvme-bench sets NVMe beside it).
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "tests/harness/virtio-harness.h"

namespace cellvisor::bench {

using namespace cellvisor::testing;
using Clock = std::chrono::steady_clock;

inline constexpr uint64_t FILE_BYTES = 512ull << 20;

struct Workload {
  const char* name;
  bool random;
  bool write;
  uint32_t blockBytes;
  uint16_t depth;
  const char* fioMode;
};

struct Figures {
  double iops;
  double mibPerSecond;
};

inline bool supportsDirectIo(const std::string& directory) {
  std::string probe = directory + "/cellvisor-direct-probe";
  int fd = ::open(probe.c_str(), O_CREAT | O_RDWR | O_DIRECT, 0600);
  if (fd >= 0) ::close(fd);
  ::unlink(probe.c_str());
  return fd >= 0;
}

inline void prefill(const std::string& path) {
  int fd = ::open(path.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0600);
  std::vector<uint8_t> chunk(1 << 20);
  std::mt19937 random(1);
  for (auto& byte : chunk) byte = static_cast<uint8_t>(random());
  for (uint64_t done = 0; done < FILE_BYTES; done += chunk.size()) {
    if (::write(fd, chunk.data(), chunk.size()) != static_cast<ssize_t>(chunk.size())) std::perror("prefill");
  }
  ::fsync(fd);
  ::close(fd);
}

inline Figures runVirtioBlk(const std::string& path, bool direct, const Workload& work, double seconds,
                            uint32_t pollMicros, long* pssKiB) {
  int flags = (work.write ? O_RDWR : O_RDONLY) | O_CLOEXEC | (direct ? O_DIRECT : 0);
  std::string options = path + (work.write ? "" : ",ro") + (direct ? ",nocache" : "") +
                        ",queues=1,queue-size=256,poll-us=" + std::to_string(pollMicros);
  VirtioHarness harness("virtio-blk", options, UniqueFd(::open(path.c_str(), flags)), 1, 256ull << 20);
  harness.initialize(~0ull, 256);

  uint64_t blocks = FILE_BYTES / work.blockBytes;
  std::mt19937_64 random(42);
  uint64_t nextSequential = 0;
  struct Slot {
    uint64_t header;
    uint64_t data;
    uint64_t status;
  };
  std::vector<Slot> slots(work.depth);
  std::map<uint16_t, size_t> inFlight;  // head -> slot
  auto issue = [&](size_t slotIndex) {
    Slot& slot = slots[slotIndex];
    uint64_t block = work.random ? random() % blocks : (nextSequential++ % blocks);
    uint32_t type = work.write ? 1 : 0;
    uint64_t sector = block * work.blockBytes / 512;
    std::memcpy(harness.host(slot.header, 16), &type, 4);
    std::memcpy(harness.host(slot.header + 8, 8), &sector, 8);
    uint16_t head = harness.submit(
        0, {{slot.header, 16, false}, {slot.data, work.blockBytes, !work.write}, {slot.status, 1, true}});
    inFlight[head] = slotIndex;
  };
  for (size_t i = 0; i < slots.size(); ++i) {
    slots[i] = {harness.allocate(16, 16), harness.allocate(work.blockBytes), harness.allocate(1, 1)};
    issue(i);
  }
  harness.kick(0);
  uint64_t completed = 0;
  auto start = Clock::now();
  auto end = start + std::chrono::duration<double>(seconds);
  while (Clock::now() < end) {
    auto done = harness.waitForCompletions(0, 1, std::chrono::seconds(5));
    if (done.empty()) {
      std::fprintf(stderr, "harness: no completions\n");
      break;
    }
    for (const auto& completion : done) {
      size_t slot = inFlight.at(completion.head);
      inFlight.erase(completion.head);
      if (*harness.host(slots[slot].status) != 0) std::fprintf(stderr, "harness: I/O error\n");
      ++completed;
      issue(slot);
    }
    harness.kick(0);
  }
  double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  if (pssKiB) {
    std::ifstream rollup("/proc/" + std::to_string(harness.process().pid()) + "/smaps_rollup");
    for (std::string line; std::getline(rollup, line);) {
      if (line.rfind("Pss:", 0) == 0) *pssKiB = std::atol(line.c_str() + 4);
    }
  }
  double iops = static_cast<double>(completed) / elapsed;
  return {iops, iops * work.blockBytes / (1 << 20)};
}

inline Figures runFio(const std::string& path, bool direct, const Workload& work, double seconds) {
  std::string command =
      "fio --name=peer --filename=" + path + " --ioengine=io_uring --direct=" + (direct ? "1" : "0") +
      " --rw=" + work.fioMode + " --bs=" + std::to_string(work.blockBytes) +
      " --iodepth=" + std::to_string(work.depth) + " --size=" + std::to_string(FILE_BYTES) +
      " --runtime=" + std::to_string(seconds) + " --time_based --output-format=terse 2>/dev/null";
  FILE* pipe = ::popen(command.c_str(), "r");
  char line[8192] = {};
  std::string output;
  while (pipe && std::fgets(line, sizeof(line), pipe)) output += line;
  if (pipe) ::pclose(pipe);
  std::vector<std::string> fields;
  size_t start = 0;
  for (size_t at; (at = output.find(';', start)) != std::string::npos; start = at + 1) {
    fields.push_back(output.substr(start, at - start));
  }
  // Terse v3: field 8 is read IOPS, field 49 write IOPS (1-based).
  if (fields.size() < 50) return {0, 0};
  double iops = std::atof(fields[work.write ? 48 : 7].c_str());
  return {iops, iops * work.blockBytes / (1 << 20)};
}

inline const std::vector<Workload>& diskWorkloads() {
  static const std::vector<Workload> workloads = {
      {"4k randread QD1", true, false, 4096, 1, "randread"},
      {"4k randread QD32", true, false, 4096, 32, "randread"},
      {"128k seqread QD8", false, false, 128 << 10, 8, "read"},
      {"128k seqwrite QD8", false, true, 128 << 10, 8, "write"},
  };
  return workloads;
}

inline double percentile(std::vector<double> values, double p) {
  std::sort(values.begin(), values.end());
  return values[static_cast<size_t>(p * static_cast<double>(values.size() - 1))];
}

// `NAME [--seconds S] DIRECTORY...`: the seconds per run and the first
// directory's index, or nothing (after the usage line) when none is given.
inline std::optional<std::pair<double, int>> benchArguments(int argc, char** argv, const char* name) {
  double seconds = 3;
  int first = 1;
  if (argc > 2 && std::strcmp(argv[1], "--seconds") == 0) {
    seconds = std::atof(argv[2]);
    first = 3;
  }
  if (first >= argc) {
    std::fprintf(stderr, "usage: %s [--seconds S] DIRECTORY...\n", name);
    return std::nullopt;
  }
  return std::pair{seconds, first};
}

// One way to drive the device a benchmark measures (NVMe with MMIO
// doorbells, AHCI with NCQ...), named for its table column.
struct DeviceVariant {
  const char* label;
  std::function<Figures(const std::string& path, bool direct, const Workload& work, double seconds)> run;
};

// For each directory from argv[first] on: a prefilled file, and per
// workload the IOPS of both `variants`, of the virtio-blk server and of fio
// on the same file, with `variants[compared]` and virtio-blk as fractions
// of fio's.
inline void printDiskTables(int first, int argc, char** argv, double seconds, const std::string& fileName,
                            const std::array<DeviceVariant, 2>& variants, size_t compared) {
  for (int i = first; i < argc; ++i) {
    std::string directory = argv[i];
    std::string path = directory + "/" + fileName;
    bool direct = supportsDirectIo(directory);
    prefill(path);
    std::printf("\n%s (%s), %.0f s per run, IOPS\n", directory.c_str(), direct ? "O_DIRECT" : "page cache",
                seconds);
    std::string ratio = std::string(variants[compared].label) + "/fio";
    std::printf("%-20s %12s %12s %12s %12s %10s %10s\n", "workload", variants[0].label, variants[1].label,
                "virtio-blk", "fio", ratio.c_str(), "blk/fio");
    for (const auto& work : diskWorkloads()) {
      Figures a = variants[0].run(path, direct, work, seconds);
      Figures b = variants[1].run(path, direct, work, seconds);
      Figures blk = runVirtioBlk(path, direct, work, seconds, 0, nullptr);
      Figures peer = runFio(path, direct, work, seconds);
      double mine = compared == 0 ? a.iops : b.iops;
      std::printf("%-20s %12.0f %12.0f %12.0f %12.0f %10.2f %10.2f\n", work.name, a.iops, b.iops, blk.iops,
                  peer.iops, peer.iops > 0 ? mine / peer.iops : 0.0,
                  peer.iops > 0 ? blk.iops / peer.iops : 0.0);
    }
    ::unlink(path.c_str());
  }
}

}  // namespace cellvisor::bench
