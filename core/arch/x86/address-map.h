// Every guest-physical address the x86 machine uses, in one place, from the
// bottom up. Two areas belong to firmware and hold none of the core's own
// structures: the BIOS area below 1 MiB (0xE0000-0xFFFFF, where a BIOS's
// last 128 KiB are aliased) and the top 16 MiB below 4 GiB (a bootrom's
// flash). Only the direct-kernel boot, which has no firmware, writes its ACPI
// tables into the BIOS area, where a BIOS would have put them.
#pragma once

#include <cstdint>

#include "base/guest-memory.h"

namespace cellvisor::layout {

constexpr uint64_t KiB = 1024;
constexpr uint64_t MiB = 1024 * KiB;
constexpr uint64_t GiB = 1024 * MiB;

// Below 1 MiB: the direct-kernel boot's structures, inside the first e820
// RAM range and away from where kernels load (1 MiB and up).
constexpr uint64_t GDT_ADDRESS = 0x500;
constexpr uint64_t PVH_START_INFO = 0x1000;
constexpr uint64_t PVH_MEMMAP = 0x1100;  // Up to 64 entries of 24 bytes.
constexpr uint64_t ZERO_PAGE = 0x7000;   // Linux boot_params.
constexpr uint64_t BOOT_STACK_TOP = 0x8FF0;
constexpr uint64_t PML4_ADDRESS = 0x9000;
constexpr uint64_t PDPT_ADDRESS = 0xA000;
constexpr uint64_t PD_ADDRESS = 0xB000;  // Four pages: 4 GiB of 2 MiB pages.
constexpr uint64_t CMDLINE_ADDRESS = 0x20000;
constexpr uint64_t CMDLINE_MAX = 0x10000;
// Legacy holes inside low RAM, reported as reserved in e820.
constexpr uint64_t EBDA_BASE = 0x9'FC00;
constexpr uint64_t BIOS_AREA_BASE = 0xE0000;       // Firmware's (see above).
constexpr uint64_t ACPI_ADDRESS = BIOS_AREA_BASE;  // RSDP must sit in 0xE0000-0xFFFFF.
constexpr uint64_t ACPI_SIZE = 0x10000;
constexpr uint64_t BIOS_END = 1 * MiB;
constexpr uint64_t KERNEL_DEFAULT_LOAD = BIOS_END;

// RAM below 4 GiB ends where Q35's ECAM window starts, where SeaBIOS and
// OVMF put it (PCIEXBAR); the rest of RAM continues at 4 GiB. Above ECAM,
// the 32-bit PCI window, which firmware assigns from itself when it boots.
constexpr uint64_t ECAM_BASE = 0xB000'0000;
constexpr uint64_t ECAM_SIZE = 256 * MiB;  // Bus 0-255.
constexpr uint64_t LOW_RAM_LIMIT = ECAM_BASE;
constexpr uint64_t HIGH_RAM_BASE = 4 * GiB;

// The 32-bit PCI window, BARs placed by the resource allocator.
constexpr uint64_t PCI_MMIO32_BASE = 3 * GiB;
constexpr uint64_t PCI_MMIO32_SIZE = 512 * MiB;
constexpr uint64_t IOAPIC_BASE = 0xFEC0'0000;
constexpr uint64_t LAPIC_BASE = 0xFEE0'0000;
// KVM on Intel needs three pages for a real-mode TSS and one for an identity
// page table, somewhere no RAM or device is: just below the firmware's 16 MiB.
constexpr uint64_t IDENTITY_MAP_ADDRESS = 0xFEFF'C000;
constexpr uint64_t TSS_ADDRESS = 0xFEFF'D000;
constexpr uint64_t FIRMWARE_BASE = 0xFF00'0000;  // Top 16 MiB: a bootrom's.
constexpr uint64_t FIRMWARE_SIZE = 16 * MiB;

// The 64-bit PCI window starts at the first 1 GiB boundary above RAM.
constexpr uint64_t PCI_MMIO64_ALIGN = 1 * GiB;
constexpr uint64_t PCI_MMIO64_SIZE = 64 * GiB;

// Interrupts: GSIs 0-23 are the IOAPIC's pins; MSI routes take GSIs from 24.
constexpr uint32_t IOAPIC_PINS = 24;
constexpr uint32_t FIRST_MSI_GSI = IOAPIC_PINS;

static_assert(ACPI_ADDRESS + ACPI_SIZE <= BIOS_END);
static_assert(ECAM_BASE + ECAM_SIZE <= PCI_MMIO32_BASE);
static_assert(PCI_MMIO32_BASE + PCI_MMIO32_SIZE <= IOAPIC_BASE);
static_assert(TSS_ADDRESS + 3 * 4 * KiB <= FIRMWARE_BASE);
static_assert(LAPIC_BASE < IDENTITY_MAP_ADDRESS);

// Guest RAM around the MMIO hole below 4 GiB.
constexpr RamSplit RAM_SPLIT{LOW_RAM_LIMIT, HIGH_RAM_BASE};

}  // namespace cellvisor::layout
