// Direct kernel boot, as bhyve's `-o kernel` or QEMU's `-kernel`: the core
// is the firmware. It writes the ACPI tables where a BIOS would (the BIOS
// area below 1 MiB), the boot GDT and page tables, loads the kernel and its
// initrd, and starts vCPU 0 in the mode the kernel's boot protocol wants.
#include "base/guest-memory.h"
#include "core/boot/boot-method.h"
#include "core/boot/kernel-loader.h"
#include "core/boot/load-error.h"
#include "core/kvm/vcpu.h"
#include "core/machine/machine-config.h"

namespace cellvisor {
namespace {

class DirectKernelBoot : public BootMethod {
 public:
  explicit DirectKernelBoot(const MachineConfig& config)
      : kernelPath_(config.kernelPath), initrdPath_(config.initrdPath), cmdline_(config.cmdline) {}

  void prepare(BootContext& context) override {
    GuestMemory& memory = context.memory;
    writeBootTables(memory);
    BootRequest request;
    request.kernelPath = kernelPath_;
    request.kernel = readImageFile(kernelPath_, "kernel", memory.size());
    if (!initrdPath_.empty()) request.initrd = readImageFile(initrdPath_, "initrd", memory.size());
    request.cmdline = cmdline_;
    request.rsdpAddress = writeAcpiTables(memory, context.acpi);
    entry_ = loadKernel(memory, request);
  }

  void setUpBootVcpu(Vcpu& vcpu) override { setBootRegisters(vcpu, entry_); }

 private:
  std::string kernelPath_;
  std::string initrdPath_;
  std::string cmdline_;
  BootEntry entry_{};
};

}  // namespace

std::unique_ptr<BootMethod> chooseBootMethod(const MachineConfig& config) {
  if (!config.bootrom.empty() && !config.kernelPath.empty()) {
    throw LoadError(
        "both a bootrom (-l bootrom) and a kernel (--kernel) given: the firmware boots from a disk, "
        "the kernel boots without firmware; choose one");
  }
  if (!config.bootrom.empty()) return makeFirmwareBoot(config);
  if (config.kernelPath.empty())
    throw LoadError("nothing to boot: give a bootrom (-l bootrom,FILE) or a kernel (--kernel)");
  return std::make_unique<DirectKernelBoot>(config);
}

}  // namespace cellvisor
