// AHCI data-path benchmark through the driver harness: the real ahci-server
// process with NCQ (up to 32 tags) and with one command at a time (READ/
// WRITE DMA EXT, what firmware does), beside the virtio-blk server on the
// same harness and fio (io_uring) on the same file at the same depth, in the
// same run. Every command is a PxCI register write through the core: AHCI
// has no doorbell a write's value is not needed for.
//
//   ahci-bench [--seconds S] DIRECTORY...   (e.g. /dev/shm /var/tmp)
#include <map>

#include "bench/disk-bench.h"
#include "tests/harness/ahci-harness.h"

namespace {

using namespace cellvisor;
using namespace cellvisor::bench;
using namespace cellvisor::ahci;

Figures runAhci(const std::string& path, bool direct, const Workload& work, double seconds, bool queued) {
  AhciHarness ahci("ahci-hd", path + (work.write ? "" : ",ro") + (direct ? ",nocache" : ""), 256ull << 20);
  if (!ahci.start()) {
    std::fprintf(stderr, "ahci: bring-up failed\n");
    return {0, 0};
  }
  uint16_t depth = queued ? std::min<uint16_t>(work.depth, SLOTS) : 1;
  uint32_t sectors = work.blockBytes / 512;
  uint64_t ios = FILE_BYTES / work.blockBytes;
  std::mt19937_64 random(42);
  uint64_t nextSequential = 0;
  std::vector<uint64_t> buffers(depth);
  for (auto& buffer : buffers) buffer = ahci.allocate(work.blockBytes);
  auto prepare = [&](uint32_t tag) {
    uint64_t io = work.random ? random() % ios : (nextSequential++ % ios);
    uint64_t lba = io * sectors;
    auto fis = queued ? AhciHarness::fis(work.write ? WRITE_FPDMA_QUEUED : READ_FPDMA_QUEUED, lba,
                                         static_cast<uint16_t>(tag << 3), static_cast<uint16_t>(sectors))
                      : AhciHarness::fis(work.write ? WRITE_DMA_EXT : READ_DMA_EXT, lba,
                                         static_cast<uint16_t>(sectors));
    ahci.prepare(tag, fis, {{buffers[tag], work.blockBytes}}, work.write);
  };
  uint32_t all = depth == 32 ? ~0u : (1u << depth) - 1;
  for (uint32_t tag = 0; tag < depth; ++tag) prepare(tag);
  if (queued) ahci.setPort(PX_SACT, all);
  ahci.setPort(PX_CI, all);
  uint32_t outstanding = all;
  uint64_t completed = 0;
  auto start = Clock::now();
  auto end = start + std::chrono::duration<double>(seconds);
  while (Clock::now() < end) {
    // The driver's interrupt handler: what left PxSACT (or PxCI) is done.
    if (!ahci.interruptPending(std::chrono::seconds(5))) {
      std::fprintf(stderr, "ahci: no interrupt\n");
      break;
    }
    uint32_t is = ahci.port(PX_IS);
    ahci.setPort(PX_IS, is);
    ahci.write32(IS, 1);
    if (is & (PXIS_TFES | PXIS_HBFS)) std::fprintf(stderr, "ahci: error, PxIS %#x\n", is);
    uint32_t busy = queued ? ahci.port(PX_SACT) : ahci.port(PX_CI);
    uint32_t done = outstanding & ~busy;
    uint32_t again = 0;
    for (uint32_t tag = 0; tag < depth; ++tag) {
      if ((done & (1u << tag)) == 0) continue;
      ++completed;
      prepare(tag);
      again |= 1u << tag;
    }
    outstanding = busy | again;
    if (again != 0) {
      if (queued) ahci.setPort(PX_SACT, again);
      ahci.setPort(PX_CI, again);
    }
  }
  double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  double iops = static_cast<double>(completed) / elapsed;
  return {iops, iops * work.blockBytes / (1 << 20)};
}

}  // namespace

int main(int argc, char** argv) {
  auto arguments = benchArguments(argc, argv, "ahci-bench");
  if (!arguments) return 2;
  auto [seconds, first] = *arguments;
  printDiskTables(
      first, argc, argv, seconds, "cellvisor-ahci-bench.img",
      {DeviceVariant{"ahci ncq", [](const std::string& path, bool direct, const Workload& work,
                                    double time) { return runAhci(path, direct, work, time, true); }},
       DeviceVariant{"ahci dma", [](const std::string& path, bool direct, const Workload& work,
                                    double time) { return runAhci(path, direct, work, time, false); }}},
      0);
  return 0;
}
