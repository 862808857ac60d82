// CPU state at the first guest instruction, as each boot protocol requires:
// 64-bit long mode for Linux (identity-mapped with 2 MiB pages, because the
// emulating KVM faults on 1 GiB pages), or 32-bit flat protected mode with
// paging off for PVH.
#pragma once

#include <cstdint>

namespace cellvisor {

class GuestMemory;
class Vcpu;

struct BootEntry {
  enum class Mode { LONG_64, PROTECTED_32 };
  Mode mode;
  uint64_t entry;
  // Linux: %rsi = zero page. PVH: %ebx = start_info.
  uint64_t bootInfo;
};

// Writes the boot GDT and, for long mode, the identity page tables.
void writeBootTables(GuestMemory& memory);
// Sets registers of the boot vCPU for `entry`.
void setBootRegisters(Vcpu& vcpu, const BootEntry& entry);

}  // namespace cellvisor
