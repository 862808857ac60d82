// Firmware boot benchmark: exec -> SeaBIOS has found the disk, read its boot
// sector through its own driver and run it (the disk-check sector told to
// read nothing exits at once through the debug-exit port). vmm-core with
// `-l bootrom` against QEMU's q35 machine with the same bios and image, in
// the same run, for a virtio-blk and an NVMe disk.
//
//   firmware-boot [--runs N] VMM_CORE BIOS DISK_CHECK_SECTOR [QEMU]
#include <cstring>

#include "bench/process-runs.h"
#include "tests/firmware/disk-check-image.h"

using namespace cellvisor::bench;

namespace {

constexpr int REACHED_BOOT_SECTOR = (0x10 << 1) | 1;

std::vector<int64_t> timeRuns(const std::vector<std::string>& argv, int runs, const char* what) {
  std::vector<int64_t> times;
  for (int i = 0; i < runs; ++i) {
    Run run = runOnce(argv);
    if (run.status != REACHED_BOOT_SECTOR) {
      std::fprintf(stderr, "%s: run failed (status %d): %s\n", what, run.status, run.err.c_str());
      std::exit(1);
    }
    times.push_back(run.exitNs - run.startNs);
  }
  return times;
}

}  // namespace

int main(int argc, char** argv) {
  int runs = 5;
  int first = 1;
  if (argc > 2 && std::strcmp(argv[1], "--runs") == 0) {
    runs = std::atoi(argv[2]);
    first = 3;
  }
  if (argc - first < 3) {
    std::fprintf(stderr, "usage: firmware-boot [--runs N] VMM_CORE BIOS DISK_CHECK_SECTOR [QEMU]\n");
    return 2;
  }
  std::string core = argv[first];
  std::string bios = argv[first + 1];
  setenv("CELLVISOR_DISK_CHECK", argv[first + 2], 1);
  std::string qemu = argc - first > 3 ? argv[first + 3] : "";
  std::string image = "/tmp/cellvisor-firmware-boot-" + std::to_string(getpid()) + ".img";
  std::vector<char> empty(1 << 20);
  std::ofstream(image, std::ios::binary).write(empty.data(), static_cast<std::streamsize>(empty.size()));
  cellvisor::testing::writeDiskCheckImage(image, 0, 1);

  std::printf("firmware boot benchmark: exec -> boot sector run, %d runs each, %s\n\n", runs, bios.c_str());
  std::printf("%-40s %10s %10s\n", "disk / VMM", "median ms", "p90 ms");
  for (const char* disk : {"virtio-blk", "nvme"}) {
    std::vector<std::string> coreArgs = {
        core, "-m", "128M", "-s", std::string("4,") + disk + "," + image, "-l", "bootrom," + bios, "bench"};
    auto coreTimes = timeRuns(coreArgs, runs, "vmm-core");
    std::printf("%-40s %10.1f %10.1f\n", (std::string(disk) + " / vmm-core").c_str(), medianMs(coreTimes),
                percentileMs(coreTimes, 0.9));
    if (qemu.empty()) continue;
    std::string device =
        std::strcmp(disk, "nvme") == 0 ? "nvme,drive=d,serial=bench" : "virtio-blk-pci,drive=d";
    std::vector<std::string> qemuArgs = {qemu,
                                         "-accel",
                                         "kvm",
                                         "-M",
                                         "q35",
                                         "-nodefaults",
                                         "-no-user-config",
                                         "-display",
                                         "none",
                                         "-m",
                                         "128M",
                                         "-bios",
                                         bios,
                                         "-drive",
                                         "file=" + image + ",if=none,id=d,format=raw",
                                         "-device",
                                         device,
                                         "-device",
                                         "isa-debug-exit,iobase=0x501,iosize=2"};
    auto qemuTimes = timeRuns(qemuArgs, runs, "qemu");
    std::printf("%-40s %10.1f %10.1f\n", (std::string(disk) + " / qemu q35").c_str(), medianMs(qemuTimes),
                percentileMs(qemuTimes, 0.9));
    std::printf("%-40s %10.2fx\n", "  ratio qemu / vmm-core (medians)",
                medianMs(qemuTimes) / medianMs(coreTimes));
  }
  unlink(image.c_str());
  return 0;
}
