// The VM's interrupt routing table on the real /dev/kvm: KVM takes it as
// the core builds it, and MSI routes (what a guest's MSI-X table becomes)
// can be added and changed. The table once held GSI 2 twice on the IOAPIC:
// KVM refused it, and Linux's first MSI-X write ended the core.
#include <gtest/gtest.h>
#include <unistd.h>

#include "base/mapping.h"
#include "core/arch/x86/resource-allocator.h"
#include "core/kvm/hypervisor.h"
#include "core/kvm/vm.h"

namespace cellvisor {
namespace {

TEST(KvmRoutes, MsiRoutesAreAcceptedBesideThePins) {
  if (::access("/dev/kvm", R_OK | W_OK) != 0) GTEST_SKIP() << "no /dev/kvm";
  Hypervisor hypervisor;
  auto vm = hypervisor.createVm();
  ASSERT_NO_THROW(vm->createIrqchip());
  ResourceAllocator resources(256 << 20);
  uint32_t gsi = resources.allocateGsi();
  EXPECT_GE(gsi, 24u) << "MSI GSIs come after the IOAPIC's";
  ASSERT_NO_THROW(vm->addMsiRoute(gsi, 0xfee00000, 0x4021));  // Vector 0x21, fixed, to APIC 0.
  EXPECT_NO_THROW(vm->updateMsiRoute(gsi, 0xfee01000, 0x4022));
  EXPECT_NO_THROW(
      vm->addMsiRoute(resources.allocateGsi(), 0, 0));  // An entry a driver has not filled in yet.
}

// Shared-memory BARs come and go as the guest moves them: slots are reused,
// and one over guest RAM is refused (the core then leaves the BAR unmapped).
TEST(KvmMemorySlots, SlotsAreReusedAndOverlapsRefused) {
  if (::access("/dev/kvm", R_OK | W_OK) != 0) GTEST_SKIP() << "no /dev/kvm";
  Hypervisor hypervisor;
  auto vm = hypervisor.createVm();
  Mapping ram = Mapping::anonymous(2 << 20);
  Mapping bar = Mapping::anonymous(64 << 10);
  uint32_t ramSlot = vm->addMemorySlot(0, ram.size(), ram.data());
  uint32_t barSlot = vm->addMemorySlot(0xd000'0000, bar.size(), bar.data());
  EXPECT_NE(ramSlot, barSlot);
  EXPECT_THROW(vm->addMemorySlot(1 << 20, bar.size(), bar.data()), std::system_error) << "over RAM";
  vm->removeMemorySlot(barSlot);
  EXPECT_EQ(vm->addMemorySlot(0xd001'0000, bar.size(), bar.data()), barSlot) << "the freed slot again";
}

}  // namespace
}  // namespace cellvisor
