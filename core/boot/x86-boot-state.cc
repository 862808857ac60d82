#include "core/boot/x86-boot-state.h"

#include <array>

#include "base/guest-memory.h"
#include "core/boot/boot-layout.h"
#include "core/kvm/vcpu.h"

namespace cellvisor {
namespace {

constexpr uint64_t CR0_PE = 1u << 0;
constexpr uint64_t CR0_ET = 1u << 4;
constexpr uint64_t CR0_PG = 1u << 31;
constexpr uint64_t CR4_PAE = 1u << 5;
constexpr uint64_t EFER_LME = 1u << 8;
constexpr uint64_t EFER_LMA = 1u << 10;
constexpr uint64_t PAGE_PRESENT_WRITABLE = 0x3;
constexpr uint64_t PAGE_LARGE = 0x80;

// Packs a GDT descriptor from base, limit and the access/flags bits.
constexpr uint64_t gdtEntry(uint16_t flags, uint32_t base, uint32_t limit) {
  return ((static_cast<uint64_t>(base) & 0xff000000u) << (56 - 24)) |
         ((static_cast<uint64_t>(flags) & 0x0000f0ffu) << 40) |
         ((static_cast<uint64_t>(limit) & 0x000f0000u) << (48 - 16)) |
         ((static_cast<uint64_t>(base) & 0x00ffffffu) << 16) | (static_cast<uint64_t>(limit) & 0x0000ffffu);
}

constexpr std::array<uint64_t, 5> BOOT_GDT = {
    0,
    gdtEntry(0xc09b, 0, 0xfffff),  // 0x08: 32-bit code (PVH).
    gdtEntry(0xa09b, 0, 0xfffff),  // 0x10: 64-bit code.
    gdtEntry(0xc093, 0, 0xfffff),  // 0x18: data.
    gdtEntry(0x808b, 0, 0xfffff),  // 0x20: TSS (busy, unused but loadable).
};

kvm_segment segmentFromGdt(uint64_t descriptor, uint16_t selector) {
  kvm_segment segment{};
  segment.base = ((descriptor >> 16) & 0xffffff) | (((descriptor >> 56) & 0xff) << 24);
  uint32_t limit = static_cast<uint32_t>((descriptor & 0xffff) | (((descriptor >> 48) & 0xf) << 16));
  segment.g = static_cast<uint8_t>((descriptor >> 55) & 1);
  segment.limit = segment.g ? (limit << 12) | 0xfff : limit;
  segment.selector = selector;
  segment.type = static_cast<uint8_t>((descriptor >> 40) & 0xf);
  segment.present = static_cast<uint8_t>((descriptor >> 47) & 1);
  segment.dpl = static_cast<uint8_t>((descriptor >> 45) & 3);
  segment.db = static_cast<uint8_t>((descriptor >> 54) & 1);
  segment.s = static_cast<uint8_t>((descriptor >> 44) & 1);
  segment.l = static_cast<uint8_t>((descriptor >> 53) & 1);
  segment.avl = static_cast<uint8_t>((descriptor >> 52) & 1);
  segment.unusable = segment.present ? 0 : 1;
  return segment;
}

}  // namespace

void writeBootTables(GuestMemory& memory) {
  memory.writeObject(layout::GDT_ADDRESS, BOOT_GDT);
  memory.writeObject(layout::PML4_ADDRESS, layout::PDPT_ADDRESS | PAGE_PRESENT_WRITABLE);
  for (uint64_t gib = 0; gib < 4; ++gib) {
    uint64_t pd = layout::PD_ADDRESS + gib * 0x1000;
    memory.writeObject(layout::PDPT_ADDRESS + gib * 8, pd | PAGE_PRESENT_WRITABLE);
    std::array<uint64_t, 512> entries{};
    for (uint64_t i = 0; i < entries.size(); ++i) {
      entries[i] = ((gib << 30) + (i << 21)) | PAGE_PRESENT_WRITABLE | PAGE_LARGE;
    }
    memory.writeObject(pd, entries);
  }
}

void setBootRegisters(Vcpu& vcpu, const BootEntry& entry) {
  kvm_sregs sregs = vcpu.sregs();
  bool longMode = entry.mode == BootEntry::Mode::LONG_64;
  uint16_t codeSelector = longMode ? boot::CODE64_SELECTOR : boot::CODE32_SELECTOR;
  sregs.cs = segmentFromGdt(BOOT_GDT[codeSelector >> 3], codeSelector);
  kvm_segment data = segmentFromGdt(BOOT_GDT[boot::DATA_SELECTOR >> 3], boot::DATA_SELECTOR);
  sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = data;
  sregs.tr = segmentFromGdt(BOOT_GDT[boot::TSS_SELECTOR >> 3], boot::TSS_SELECTOR);
  sregs.gdt.base = layout::GDT_ADDRESS;
  sregs.gdt.limit = sizeof(BOOT_GDT) - 1;
  sregs.idt.base = 0;
  sregs.idt.limit = 0;
  sregs.cr0 = CR0_PE | CR0_ET;
  sregs.cr4 = 0;
  sregs.efer = 0;
  if (longMode) {
    sregs.cr3 = layout::PML4_ADDRESS;
    sregs.cr4 |= CR4_PAE;
    sregs.cr0 |= CR0_PG;
    sregs.efer |= EFER_LME | EFER_LMA;
  }
  vcpu.setSregs(sregs);

  kvm_regs regs{};
  regs.rflags = 0x2;  // Bit 1 is reserved-one; interrupts stay off.
  regs.rip = entry.entry;
  if (longMode) {
    regs.rsi = entry.bootInfo;
    regs.rsp = layout::BOOT_STACK_TOP;
  } else {
    regs.rbx = entry.bootInfo;
  }
  vcpu.setRegs(regs);

  kvm_fpu fpu{};
  fpu.fcw = 0x37f;     // Power-on x87 control word.
  fpu.mxcsr = 0x1f80;  // Power-on SSE control/status.
  vcpu.setFpu(fpu);
}

}  // namespace cellvisor
