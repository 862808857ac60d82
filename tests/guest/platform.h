/* What the test guest learns from PVH start info and ACPI. */
#pragma once

#include "runtime.h"

struct hvm_start_info {
  uint32_t magic;
  uint32_t version;
  uint32_t flags;
  uint32_t nr_modules;
  uint64_t modlist_paddr;
  uint64_t cmdline_paddr;
  uint64_t rsdp_paddr;
  uint64_t memmap_paddr;
  uint32_t memmap_entries;
  uint32_t reserved;
};

struct memmap_entry {
  uint64_t addr;
  uint64_t size;
  uint32_t type;
  uint32_t reserved;
};

#define MAX_CPUS 64

struct platform {
  bool acpi_ok;
  unsigned cpu_count;
  uint8_t apic_ids[MAX_CPUS];
  uint64_t ecam_base;
  uint16_t pm1a_event;
  uint16_t pm1a_control;
  uint16_t reset_port;
  uint8_t reset_value;
  uint8_t s5_type;
};

/* Parses RSDP -> XSDT -> FADT/MADT/MCFG (and \_S5 from the DSDT). */
bool acpi_parse(uint64_t rsdp, struct platform* out);

uint32_t pci_cf8_read(unsigned bus, unsigned slot, unsigned function, unsigned offset);
uint32_t pci_ecam_read(uint64_t ecam, unsigned bus, unsigned slot, unsigned function, unsigned offset);
void pci_cf8_write(unsigned bus, unsigned slot, unsigned function, unsigned offset, uint32_t value);

/* Starts every AP listed in the MADT; returns how many reported in. */
unsigned smp_start(const struct platform* platform);

/* Finds the virtio-blk device and writes/reads a pattern (polling). */
void test_virtio_blk(void);
void test_virtio_blk_stress(unsigned rounds);
