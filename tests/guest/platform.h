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

/* Starts every AP listed in the MADT; returns how many reported in. The
 * APs then halt with interrupts off, or on when `ap_idle_with_interrupts`. */
unsigned smp_start(const struct platform* platform);
extern volatile bool ap_idle_with_interrupts;

/* flags.c: what bhyve's -e, -w and -x change for a guest. */
void test_unclaimed_port(void);
void test_unknown_msr(void);
void test_cpuid(void);

/* The modern virtio-pci transport (virtio-pci.c). */
struct descriptor {
  uint64_t address;
  uint32_t length;
  uint16_t flags;
  uint16_t next;
};

struct virtio_device {
  unsigned slot;
  uint64_t bar;
  uint64_t common;
  uint64_t notify;
  uint32_t notify_multiplier;
  uint64_t device;
  uint16_t avail_idx;
  uint16_t last_used;
};

/* The first virtio device with PCI device ID `id` (0x1042 block, 0x1041 net). */
bool virtio_find(uint32_t id, struct virtio_device* dev);
/* Reset, acknowledge, negotiate VERSION_1 plus `features` (low 32 bits). */
bool virtio_begin(struct virtio_device* dev, uint32_t features);
bool virtio_queue(struct virtio_device* dev, uint16_t index, uint16_t size, void* descriptors, void* avail,
                  void* used);
bool virtio_driver_ok(struct virtio_device* dev);
void virtio_notify(struct virtio_device* dev, uint16_t queue);

/* Finds the NVMe controller, identifies it and writes/reads a pattern
 * (polling); the stress variant verifies rounds while its server is killed. */
void test_nvme(void);
void test_nvme_stress(unsigned rounds);
void test_ahci(void);
void test_display(unsigned width, unsigned height);
void test_display_input(unsigned width, unsigned height);
void test_ps2_echo(void);
void test_display_animation(bool animate);
void test_ahci_stress(unsigned rounds);

/* Finds the virtio-blk device and writes/reads a pattern (polling). */
void test_virtio_blk(void);
void test_virtio_blk_stress(unsigned rounds);
/* Finds the virtio-net device, resolves `peer` by ARP and pings it
 * `pings` times. */
void test_virtio_net(const char* ip, const char* peer, unsigned pings);
