// The CPUID each vCPU reports: what KVM supports, with our topology (APIC id,
// logical processor counts) and with features masked that the user, or the
// host's emulating KVM, cannot provide.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <string>
#include <vector>

namespace cellvisor {

struct CpuidFeature {
  const char* name;
  uint32_t leaf;
  uint32_t subleaf;
  enum Register { EAX, EBX, ECX, EDX } reg;
  uint32_t bit;
};

// Looks up a masking name such as "cx16", "xsave", "avx"; nullptr if unknown.
const CpuidFeature* findCpuidFeature(const std::string& name);
// Whether `entries` show feature `name` (a findCpuidFeature name).
bool cpuidHasFeature(const std::vector<kvm_cpuid_entry2>& entries, const std::string& name);
// Features to hide by default: on an emulating host (KVM-PVM) those its
// instruction emulator lacks.
std::vector<std::string> defaultCpuidMask(bool hostEmulates);

// Builds vCPU `cpuIndex`'s table out of `supported`, for `cpuCount` vCPUs.
std::vector<kvm_cpuid_entry2> buildCpuid(std::vector<kvm_cpuid_entry2> supported, uint32_t cpuIndex,
                                         uint32_t cpuCount, const std::vector<std::string>& masked);

}  // namespace cellvisor
