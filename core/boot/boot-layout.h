// Where the core puts boot-time structures in low guest RAM. Everything here
// sits below 1 MiB, inside the first e820 RAM range but away from where
// kernels are loaded (1 MiB and up) and from the ACPI area.
#pragma once

#include <cstdint>

namespace cellvisor::boot {

constexpr uint64_t GDT_ADDRESS = 0x500;
constexpr uint64_t PVH_START_INFO = 0x1000;
constexpr uint64_t PVH_MEMMAP = 0x1100;  // Up to 64 entries of 24 bytes.
constexpr uint64_t ZERO_PAGE = 0x7000;   // Linux boot_params.
constexpr uint64_t PML4_ADDRESS = 0x9000;
constexpr uint64_t PDPT_ADDRESS = 0xA000;
constexpr uint64_t PD_ADDRESS = 0xB000;  // Four pages: 4 GiB of 2 MiB pages.
constexpr uint64_t CMDLINE_ADDRESS = 0x20000;
constexpr uint64_t CMDLINE_MAX = 0x10000;
constexpr uint64_t ACPI_ADDRESS = 0xE0000;  // RSDP must sit in 0xE0000-0xFFFFF.
constexpr uint64_t ACPI_SIZE = 0x10000;
constexpr uint64_t KERNEL_DEFAULT_LOAD = 0x100000;
constexpr uint64_t BOOT_STACK_TOP = 0x8FF0;

// Segment selectors of our boot GDT: Linux's 64-bit protocol wants
// __BOOT_CS = 0x10 and __BOOT_DS = 0x18.
constexpr uint16_t CODE32_SELECTOR = 0x08;
constexpr uint16_t CODE64_SELECTOR = 0x10;
constexpr uint16_t DATA_SELECTOR = 0x18;
constexpr uint16_t TSS_SELECTOR = 0x20;

}  // namespace cellvisor::boot
