#include "core/kvm/hypervisor.h"

#include <fcntl.h>
#include <sys/ioctl.h>

#include <fstream>

#include "base/system-error.h"
#include "core/kvm/kvm-abi.h"
#include "core/kvm/vm.h"

namespace cellvisor {

bool hostEmulatesGuestKernel() {
  std::ifstream modules("/proc/modules");
  std::string line;
  while (std::getline(modules, line)) {
    if (line.rfind("kvm_pvm ", 0) == 0) return true;
  }
  if (std::ifstream("/sys/module/kvm_pvm/initstate").good()) return true;
  std::ifstream cpuinfo("/proc/cpuinfo");
  while (std::getline(cpuinfo, line)) {
    if (line.rfind("flags", 0) != 0) continue;
    return line.find(" vmx") == std::string::npos && line.find(" svm") == std::string::npos;
  }
  return true;
}

Hypervisor::Hypervisor(const std::string& devicePath) : kvm_(::open(devicePath.c_str(), O_RDWR | O_CLOEXEC)) {
  if (!kvm_) throwSystemError("open " + devicePath);
  int version = checkSyscall(::ioctl(kvm_.get(), KVM_GET_API_VERSION, 0), "KVM_GET_API_VERSION");
  if (version != KVM_API_VERSION) {
    throw std::runtime_error("KVM API version " + std::to_string(version) + " (expected " +
                             std::to_string(KVM_API_VERSION) + ")");
  }
  vcpuMmapSize_ = checkSyscall(::ioctl(kvm_.get(), KVM_GET_VCPU_MMAP_SIZE, 0), "KVM_GET_VCPU_MMAP_SIZE");
}

int Hypervisor::checkExtension(long capability) const {
  return checkSyscall(::ioctl(kvm_.get(), KVM_CHECK_EXTENSION, capability), "KVM_CHECK_EXTENSION");
}

int Hypervisor::maxVcpus() const {
  int max = checkExtension(KVM_CAP_MAX_VCPUS);
  return max > 0 ? max : checkExtension(KVM_CAP_NR_VCPUS);
}

std::vector<kvm_cpuid_entry2> Hypervisor::supportedCpuid() const {
  // The kernel says E2BIG until the buffer is large enough.
  for (size_t count = 64;; count *= 2) {
    kvm_abi::Table<kvm_cpuid_entry2> table(count);
    if (::ioctl(kvm_.get(), kvm_abi::GET_SUPPORTED_CPUID, table.data()) == 0) return table.entries();
    if (errno != E2BIG || count > 4096) throwSystemError("KVM_GET_SUPPORTED_CPUID");
  }
}

std::unique_ptr<Vm> Hypervisor::createVm() const {
  int fd = retryOnEintr([&] { return ::ioctl(kvm_.get(), KVM_CREATE_VM, 0); });
  if (fd < 0) throwSystemError("KVM_CREATE_VM");
  return std::make_unique<Vm>(UniqueFd(fd), vcpuMmapSize_);
}

}  // namespace cellvisor
