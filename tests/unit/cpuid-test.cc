// CPUID: topology per vCPU and feature masking.
#include "core/cpu/cpuid.h"

#include <gtest/gtest.h>

namespace cellvisor {
namespace {

std::vector<kvm_cpuid_entry2> sampleTable() {
  std::vector<kvm_cpuid_entry2> table(4);
  table[0].function = 1;
  table[0].ecx = (1u << 13) | (1u << 26) | (1u << 27) | (1u << 28) | (1u << 0);
  table[0].ebx = 0x00000800;
  table[1].function = 7;
  table[1].ebx = (1u << 5) | (1u << 0);
  table[2].function = 0xb;
  table[2].index = 0;
  table[3].function = 0xb;
  table[3].index = 1;
  return table;
}

TEST(Cpuid, MasksNamedFeatures) {
  auto table = buildCpuid(sampleTable(), 0, 1, {"cx16", "avx2"});
  EXPECT_EQ(table[0].ecx & (1u << 13), 0u);
  EXPECT_NE(table[0].ecx & (1u << 0), 0u) << "unrelated bits stay";
  EXPECT_EQ(table[1].ebx & (1u << 5), 0u);
  EXPECT_NE(table[1].ebx & (1u << 0), 0u);
}

TEST(Cpuid, MaskingXsaveHidesOsxsaveAndAvx) {
  auto table = buildCpuid(sampleTable(), 0, 1, {"xsave"});
  EXPECT_EQ(table[0].ecx & ((1u << 26) | (1u << 27) | (1u << 28)), 0u);
}

TEST(Cpuid, UnknownFeatureIsAnError) {
  EXPECT_THROW(buildCpuid(sampleTable(), 0, 1, {"warp-drive"}), std::invalid_argument);
  EXPECT_EQ(findCpuidFeature("warp-drive"), nullptr);
  EXPECT_NE(findCpuidFeature("cx16"), nullptr);
}

TEST(Cpuid, TopologyNamesEachVcpu) {
  auto table = buildCpuid(sampleTable(), 3, 4, {});
  EXPECT_EQ(table[0].ebx >> 24, 3u) << "initial APIC id";
  EXPECT_EQ((table[0].ebx >> 16) & 0xff, 4u) << "logical processor count";
  EXPECT_NE(table[0].edx & (1u << 28), 0u) << "HTT";
  EXPECT_NE(table[0].ecx & (1u << 31), 0u) << "hypervisor bit";
  EXPECT_EQ(table[2].edx, 3u) << "x2APIC id";
  EXPECT_EQ(table[2].ebx, 4u);
  EXPECT_EQ(table[2].eax, 2u) << "shift to the next level covers 4 threads";
}

TEST(Cpuid, EmulatingHostMasksWhatItsEmulatorLacks) {
  auto mask = defaultCpuidMask(true);
  EXPECT_NE(std::find(mask.begin(), mask.end(), "cx16"), mask.end());
  EXPECT_NE(std::find(mask.begin(), mask.end(), "xsave"), mask.end());
  EXPECT_NE(std::find(mask.begin(), mask.end(), "kvm_pv_send_ipi"), mask.end());
  EXPECT_TRUE(defaultCpuidMask(false).empty());
  // Every name in the preset is one buildCpuid knows.
  EXPECT_NO_THROW(buildCpuid(sampleTable(), 0, 1, mask));
}

TEST(Cpuid, MasksKvmParavirtualFeatures) {
  std::vector<kvm_cpuid_entry2> table(1);
  table[0].function = 0x40000001;
  table[0].eax = (1u << 3) | (1u << 7) | (1u << 11) | (1u << 13);
  table = buildCpuid(table, 0, 1, {"kvm_pv_unhalt", "kvm_pv_send_ipi", "kvm_pv_sched_yield"});
  EXPECT_EQ(table[0].eax, 1u << 3) << "the clock (bit 3) stays; the hypercall users go";
}

}  // namespace
}  // namespace cellvisor
