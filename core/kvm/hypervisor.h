// The host's KVM: capability queries and the CPUID the host can offer guests.
// This is one of the three narrow interfaces (Hypervisor, Vm, Vcpu) that the
// rest of the core uses; nothing else opens /dev/kvm.
#pragma once

#include <linux/kvm.h>

#include <memory>
#include <string>
#include <vector>

#include "base/unique-fd.h"

namespace cellvisor {

class Vm;

// True when KVM sits on a host without VT-x/AMD-V and emulates guest ring 0
// (KVM-PVM). Such hosts run only small test guests; Linux guest tests skip.
bool hostEmulatesGuestKernel();

class Hypervisor {
 public:
  explicit Hypervisor(const std::string& devicePath = "/dev/kvm");

  int checkExtension(long capability) const;
  std::vector<kvm_cpuid_entry2> supportedCpuid() const;
  int vcpuMmapSize() const { return vcpuMmapSize_; }
  int maxVcpus() const;

  std::unique_ptr<Vm> createVm() const;

 private:
  UniqueFd kvm_;
  int vcpuMmapSize_ = 0;
};

}  // namespace cellvisor
