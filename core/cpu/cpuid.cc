#include "core/cpu/cpuid.h"

#include <array>
#include <bit>
#include <stdexcept>

namespace cellvisor {
namespace {

constexpr std::array FEATURES = {
    CpuidFeature{"sse3", 1, 0, CpuidFeature::ECX, 0},
    CpuidFeature{"pclmulqdq", 1, 0, CpuidFeature::ECX, 1},
    CpuidFeature{"monitor", 1, 0, CpuidFeature::ECX, 3},
    CpuidFeature{"vmx", 1, 0, CpuidFeature::ECX, 5},
    CpuidFeature{"ssse3", 1, 0, CpuidFeature::ECX, 9},
    CpuidFeature{"fma", 1, 0, CpuidFeature::ECX, 12},
    CpuidFeature{"cx16", 1, 0, CpuidFeature::ECX, 13},
    CpuidFeature{"pcid", 1, 0, CpuidFeature::ECX, 17},
    CpuidFeature{"sse4_1", 1, 0, CpuidFeature::ECX, 19},
    CpuidFeature{"sse4_2", 1, 0, CpuidFeature::ECX, 20},
    CpuidFeature{"x2apic", 1, 0, CpuidFeature::ECX, 21},
    CpuidFeature{"movbe", 1, 0, CpuidFeature::ECX, 22},
    CpuidFeature{"popcnt", 1, 0, CpuidFeature::ECX, 23},
    CpuidFeature{"tsc_deadline", 1, 0, CpuidFeature::ECX, 24},
    CpuidFeature{"aes", 1, 0, CpuidFeature::ECX, 25},
    CpuidFeature{"xsave", 1, 0, CpuidFeature::ECX, 26},
    CpuidFeature{"avx", 1, 0, CpuidFeature::ECX, 28},
    CpuidFeature{"f16c", 1, 0, CpuidFeature::ECX, 29},
    CpuidFeature{"rdrand", 1, 0, CpuidFeature::ECX, 30},
    CpuidFeature{"hypervisor", 1, 0, CpuidFeature::ECX, 31},
    CpuidFeature{"pse", 1, 0, CpuidFeature::EDX, 3},
    CpuidFeature{"pge", 1, 0, CpuidFeature::EDX, 13},
    CpuidFeature{"mca", 1, 0, CpuidFeature::EDX, 14},
    CpuidFeature{"pse36", 1, 0, CpuidFeature::EDX, 17},
    CpuidFeature{"fsgsbase", 7, 0, CpuidFeature::EBX, 0},
    CpuidFeature{"bmi1", 7, 0, CpuidFeature::EBX, 3},
    CpuidFeature{"avx2", 7, 0, CpuidFeature::EBX, 5},
    CpuidFeature{"smep", 7, 0, CpuidFeature::EBX, 7},
    CpuidFeature{"bmi2", 7, 0, CpuidFeature::EBX, 8},
    CpuidFeature{"erms", 7, 0, CpuidFeature::EBX, 9},
    CpuidFeature{"invpcid", 7, 0, CpuidFeature::EBX, 10},
    CpuidFeature{"avx512f", 7, 0, CpuidFeature::EBX, 16},
    CpuidFeature{"rdseed", 7, 0, CpuidFeature::EBX, 18},
    CpuidFeature{"smap", 7, 0, CpuidFeature::EBX, 20},
    CpuidFeature{"umip", 7, 0, CpuidFeature::ECX, 2},
    CpuidFeature{"pku", 7, 0, CpuidFeature::ECX, 3},
    CpuidFeature{"la57", 7, 0, CpuidFeature::ECX, 16},
    CpuidFeature{"rdpid", 7, 0, CpuidFeature::ECX, 22},
    CpuidFeature{"xsaveopt", 0xd, 1, CpuidFeature::EAX, 0},
    CpuidFeature{"xsavec", 0xd, 1, CpuidFeature::EAX, 1},
    CpuidFeature{"xsaves", 0xd, 1, CpuidFeature::EAX, 3},
    CpuidFeature{"pdpe1gb", 0x80000001, 0, CpuidFeature::EDX, 26},
    CpuidFeature{"rdtscp", 0x80000001, 0, CpuidFeature::EDX, 27},
    // KVM's paravirtual features (leaf 0x40000001): those a guest uses
    // through hypercalls.
    CpuidFeature{"kvm_pv_unhalt", 0x40000001, 0, CpuidFeature::EAX, 7},
    CpuidFeature{"kvm_pv_send_ipi", 0x40000001, 0, CpuidFeature::EAX, 11},
    CpuidFeature{"kvm_pv_sched_yield", 0x40000001, 0, CpuidFeature::EAX, 13},
};

uint32_t& registerOf(kvm_cpuid_entry2& entry, CpuidFeature::Register reg) {
  switch (reg) {
    case CpuidFeature::EAX:
      return entry.eax;
    case CpuidFeature::EBX:
      return entry.ebx;
    case CpuidFeature::ECX:
      return entry.ecx;
    case CpuidFeature::EDX:
      return entry.edx;
  }
  throw std::logic_error("bad CPUID register");
}

}  // namespace

const CpuidFeature* findCpuidFeature(const std::string& name) {
  for (const auto& feature : FEATURES) {
    if (name == feature.name) return &feature;
  }
  return nullptr;
}

bool cpuidHasFeature(const std::vector<kvm_cpuid_entry2>& entries, const std::string& name) {
  const CpuidFeature* feature = findCpuidFeature(name);
  if (feature == nullptr) return false;
  for (auto entry : entries) {
    if (entry.function == feature->leaf && entry.index == feature->subleaf) {
      return (registerOf(entry, feature->reg) & (1u << feature->bit)) != 0;
    }
  }
  return false;
}

std::vector<std::string> defaultCpuidMask(bool hostEmulates) {
  if (!hostEmulates) return {};
  // Linux uses each of these once it sees the feature, so hiding them is
  // what lets it boot on an emulating host.
  std::vector<std::string> mask = {"cx16", "smap", "popcnt"};  // No cmpxchg16b, clac/stac, popcnt.
  for (const char* name :
       {"xsave", "xsaveopt", "xsavec", "xsaves", "avx", "avx2", "avx512f", "fma", "f16c"}) {
    mask.push_back(name);  // No xsave/xrstor, so no state beyond SSE.
  }
  mask.push_back("pdpe1gb");  // 1 GiB pages fault there.
  // A hypercall from emulated ring 0 never returns: Linux's first PV IPI
  // hung both vCPUs of an SMP guest.
  for (const char* name : {"kvm_pv_unhalt", "kvm_pv_send_ipi", "kvm_pv_sched_yield"}) mask.push_back(name);
  return mask;
}

std::vector<kvm_cpuid_entry2> buildCpuid(std::vector<kvm_cpuid_entry2> entries, uint32_t cpuIndex,
                                         uint32_t cpuCount, const std::vector<std::string>& masked) {
  uint32_t threadBits = static_cast<uint32_t>(std::bit_width(cpuCount > 1 ? cpuCount - 1 : 0u));
  for (auto& entry : entries) {
    switch (entry.function) {
      case 1:
        // EBX[31:24] initial APIC id, [23:16] logical processors per package.
        entry.ebx = (entry.ebx & 0x0000ffff) | (cpuIndex << 24) | (std::min(cpuCount, 255u) << 16);
        entry.edx |= 1u << 28;  // HTT: the count above is valid.
        entry.ecx |= 1u << 31;  // Running under a hypervisor.
        break;
      case 0xb:
      case 0x1f:
        // One package; all vCPUs are threads of a single core level here.
        entry.edx = cpuIndex;
        if (entry.index == 0) {
          entry.eax = threadBits;
          entry.ebx = cpuCount;
          entry.ecx = (1u << 8) | 0;  // Level type SMT.
        } else if (entry.index == 1) {
          entry.eax = threadBits;
          entry.ebx = cpuCount;
          entry.ecx = (2u << 8) | 1;  // Level type core.
        } else {
          entry.eax = entry.ebx = 0;
          entry.ecx = entry.index;
        }
        break;
      case 0x80000008:
        // AMD: ECX[7:0] cores per package - 1, [15:12] APIC id size.
        entry.ecx = (entry.ecx & ~0xf0ffu) | (cpuCount - 1) | (threadBits << 12);
        break;
      default:
        break;
    }
  }
  for (const auto& name : masked) {
    const CpuidFeature* feature = findCpuidFeature(name);
    if (feature == nullptr) throw std::invalid_argument("unknown CPUID feature to mask: " + name);
    for (auto& entry : entries) {
      if (entry.function == feature->leaf && entry.index == feature->subleaf) {
        registerOf(entry, feature->reg) &= ~(1u << feature->bit);
      }
    }
    if (name == "xsave") {
      // Without XSAVE the guest must not see the OSXSAVE bit or AVX either.
      for (auto& entry : entries) {
        if (entry.function == 1) entry.ecx &= ~((1u << 27) | (1u << 28));
      }
    }
  }
  return entries;
}

}  // namespace cellvisor
