// NVMe data-path benchmark through the driver harness: the real nvme-server
// process, its real queues and eventfds, with doorbells as register writes
// through the core (a driver without shadow doorbells, e.g. firmware) and
// with shadow doorbells and ioeventfds (what Linux uses); beside the
// virtio-blk server on the same harness and fio (io_uring) on the same file
// at the same depth, in the same run. Then kill -9 -> serving again.
//
//   nvme-bench [--seconds S] DIRECTORY...   (e.g. /dev/shm /var/tmp)
#include <signal.h>

#include <map>

#include "bench/disk-bench.h"
#include "tests/harness/nvme-harness.h"

namespace {

using namespace cellvisor;
using namespace cellvisor::bench;

Figures runNvme(const std::string& path, bool direct, const Workload& work, double seconds, bool shadow) {
  // ioslots: every command of the depth in flight at once (bhyve's default
  // of 8 would cap QD32 at 8).
  std::string options =
      path + (work.write ? "" : ",ro") + (direct ? ",nocache" : "") + ",maxq=1,qsz=256,ioslots=64";
  NvmeHarness nvme(options, 256ull << 20);
  if (!nvme.enable() || !nvme.createIoQueues(1, 256)) {
    std::fprintf(stderr, "nvme: bring-up failed\n");
    return {0, 0};
  }
  if (shadow && nvme.useShadowDoorbells().status() != 0) std::fprintf(stderr, "nvme: no shadow doorbells\n");
  uint32_t blocksPerIo = work.blockBytes / 512;
  uint64_t ios = FILE_BYTES / work.blockBytes;
  std::mt19937_64 random(42);
  uint64_t nextSequential = 0;
  std::vector<uint64_t> buffers(work.depth);
  std::map<uint16_t, size_t> inFlight;  // CID -> buffer
  auto issue = [&](size_t slot) {
    uint64_t io = work.random ? random() % ios : (nextSequential++ % ios);
    nvme::Command command =
        NvmeHarness::readWrite(work.write ? nvme::WRITE : nvme::READ, io * blocksPerIo, blocksPerIo);
    nvme.setPrps(command, buffers[slot], work.blockBytes);
    inFlight[nvme.submit(1, command)] = slot;
  };
  for (size_t i = 0; i < buffers.size(); ++i) {
    buffers[i] = nvme.allocate(work.blockBytes);
    issue(i);
  }
  nvme.ring(1);
  uint64_t completed = 0;
  auto start = Clock::now();
  auto end = start + std::chrono::duration<double>(seconds);
  while (Clock::now() < end) {
    auto done = nvme.collect(std::chrono::seconds(5));
    if (done.empty()) {
      std::fprintf(stderr, "nvme: no completions\n");
      break;
    }
    for (const auto& [sqid, entry] : done) {
      if ((entry.status >> 1) != 0) std::fprintf(stderr, "nvme: I/O error %#x\n", entry.status >> 1);
      size_t slot = inFlight.at(entry.cid);
      inFlight.erase(entry.cid);
      ++completed;
      issue(slot);
    }
    nvme.ring(1);
  }
  double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  double iops = static_cast<double>(completed) / elapsed;
  return {iops, iops * work.blockBytes / (1 << 20)};
}

// kill -9 -> the next read served by the restarted server, under a
// supervisor on its own loop (as vmmd runs it).
std::vector<double> restartTimes(const std::string& path, int restarts) {
  NvmeHarness nvme(path + ",maxq=1,qsz=64");
  nvme.enable();
  nvme.createIoQueues(1, 64);
  nvme.useShadowDoorbells();
  SupervisedServer supervised(nvme.process());
  uint64_t buffer = nvme.allocate(4096);
  std::vector<double> millis;
  for (int i = 0; i < restarts; ++i) {
    pid_t before = nvme.process().pid();
    auto start = Clock::now();
    ::kill(before, SIGKILL);
    nvme::Command read = NvmeHarness::readWrite(nvme::READ, 0, 8);
    nvme.setPrps(read, buffer, 4096);
    uint16_t cid = nvme.submit(1, read);
    nvme.ring(1);
    if (!nvme.wait(1, cid, std::chrono::seconds(10)).completed) {
      std::fprintf(stderr, "nvme: no answer after restart %d\n", i);
      break;
    }
    millis.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
    // Past the supervisor's "died young" window, so each restart is immediate.
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
  return millis;
}

}  // namespace

int main(int argc, char** argv) {
  auto arguments = benchArguments(argc, argv, "nvme-bench");
  if (!arguments) return 2;
  auto [seconds, first] = *arguments;
  printDiskTables(
      first, argc, argv, seconds, "cellvisor-nvme-bench.img",
      {DeviceVariant{"nvme mmio", [](const std::string& path, bool direct, const Workload& work,
                                     double time) { return runNvme(path, direct, work, time, false); }},
       DeviceVariant{"nvme shadow", [](const std::string& path, bool direct, const Workload& work,
                                       double time) { return runNvme(path, direct, work, time, true); }}},
      1);
  std::string path = std::string(argv[first]) + "/cellvisor-nvme-restart.img";
  int fd = ::open(path.c_str(), O_CREAT | O_RDWR, 0600);
  if (::ftruncate(fd, 16 << 20) != 0) std::perror("ftruncate");
  ::close(fd);
  auto restarts = restartTimes(path, 50);
  ::unlink(path.c_str());
  if (!restarts.empty()) {
    std::printf(
        "\nkill -9 -> NVMe serving again (supervisor on a libuv loop), %zu restarts: median %.2f ms, "
        "p99 %.2f ms, max %.2f ms\n",
        restarts.size(), percentile(restarts, 0.5), percentile(restarts, 0.99), percentile(restarts, 1.0));
  }
  return 0;
}
