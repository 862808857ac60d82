/* A minimal AHCI driver for the test guest: the HBA found by its class
 * (01:06:01), port 0 started with a command list and a received-FIS area,
 * one command at a time in slot 0 polled on PxCI (no interrupts): IDENTIFY,
 * READ/WRITE DMA EXT of a pattern, FLUSH CACHE EXT. */
#include "platform.h"

#define PORT(abar, reg) ((abar) + 0x100 + (reg))
#define PX_CLB 0x00
#define PX_FB 0x08
#define PX_IS 0x10
#define PX_CMD 0x18
#define PX_TFD 0x20
#define PX_SSTS 0x28
#define PX_SERR 0x30
#define PX_CI 0x38
#define CMD_ST (1u << 0)
#define CMD_SUD_POD (3u << 1)
#define CMD_FRE (1u << 4)
#define CMD_CR (1u << 15)
#define IS_FATAL ((1u << 29) | (1u << 30)) /* HBFS, TFES */

struct ahci_header {
  uint32_t flags;
  uint32_t prdbc;
  uint32_t ctba;
  uint32_t ctbau;
  uint32_t reserved[4];
};

struct ahci_table {
  uint8_t cfis[64];
  uint8_t acmd[16];
  uint8_t reserved[48];
  struct {
    uint32_t dba, dbau, reserved, dbc;
  } prdt[1];
};

static struct ahci_header command_list[32] __attribute__((aligned(1024)));
static uint8_t fis_area[256] __attribute__((aligned(256)));
static struct ahci_table table __attribute__((aligned(128)));
static uint8_t identify[512] __attribute__((aligned(512)));
static uint8_t data[4096] __attribute__((aligned(4096)));

static uint64_t ahci_find(void) {
  for (unsigned slot = 0; slot < 32; ++slot) {
    if (pci_cf8_read(0, slot, 0, 0) == 0xffffffffu) continue;
    if ((pci_cf8_read(0, slot, 0, 8) >> 8) != 0x010601) continue;
    return pci_cf8_read(0, slot, 0, 0x24) & ~0xfull; /* ABAR, BAR5. */
  }
  return 0;
}

static bool ahci_setup(uint64_t abar) {
  mmio_write32(abar + 4, 1u << 31);      /* AHCI enable. */
  mmio_write32(abar + 4, 1u << 31 | 1u); /* HBA reset. */
  for (unsigned waited = 0; mmio_read32(abar + 4) & 1; ++waited) {
    if (waited > 100000) return false;
    cpu_relax();
  }
  mmio_write32(abar + 4, 1u << 31);
  mmio_write32(PORT(abar, PX_CMD), 0);
  mmio_write32(PORT(abar, PX_CLB), (uint32_t)(uint64_t)command_list);
  mmio_write32(PORT(abar, PX_CLB + 4), 0);
  mmio_write32(PORT(abar, PX_FB), (uint32_t)(uint64_t)fis_area);
  mmio_write32(PORT(abar, PX_FB + 4), 0);
  mmio_write32(PORT(abar, PX_SERR), ~0u);
  mmio_write32(PORT(abar, PX_IS), ~0u);
  mmio_write32(PORT(abar, PX_CMD), CMD_SUD_POD | CMD_FRE);
  mmio_write32(PORT(abar, PX_CMD), CMD_SUD_POD | CMD_FRE | CMD_ST);
  return (mmio_read32(PORT(abar, PX_SSTS)) & 0xf) == 3 && (mmio_read32(PORT(abar, PX_CMD)) & CMD_CR) != 0;
}

/* One command in slot 0: 0 when it succeeded, (error << 8) | status when the
 * device failed it, -1 when it never completed. */
static int ahci_run(uint64_t abar, uint8_t command, uint64_t lba, uint16_t count, void* buffer,
                    uint32_t bytes, bool write) {
  memset(&table, 0, sizeof(table));
  uint8_t* f = table.cfis;
  f[0] = 0x27; /* Register FIS, host to device. */
  f[1] = 0x80; /* A command. */
  f[2] = command;
  f[4] = (uint8_t)lba;
  f[5] = (uint8_t)(lba >> 8);
  f[6] = (uint8_t)(lba >> 16);
  f[7] = 0x40; /* LBA mode. */
  f[8] = (uint8_t)(lba >> 24);
  f[9] = (uint8_t)(lba >> 32);
  f[10] = (uint8_t)(lba >> 40);
  f[12] = (uint8_t)count;
  f[13] = (uint8_t)(count >> 8);
  uint32_t prds = bytes != 0 ? 1 : 0;
  table.prdt[0].dba = (uint32_t)(uint64_t)buffer;
  table.prdt[0].dbc = bytes - 1;
  command_list[0] = (struct ahci_header){
      5 | (write ? 1u << 6 : 0) | prds << 16, 0, (uint32_t)(uint64_t)&table, 0, {0, 0, 0, 0}};
  __atomic_thread_fence(__ATOMIC_RELEASE);
  mmio_write32(PORT(abar, PX_IS), ~0u);
  mmio_write32(PORT(abar, PX_CI), 1);
  for (unsigned waited = 0; waited < 4000000; ++waited) {
    if (mmio_read32(PORT(abar, PX_CI)) & 1) {
      cpu_relax();
      continue;
    }
    uint32_t is = mmio_read32(PORT(abar, PX_IS));
    uint32_t tfd = mmio_read32(PORT(abar, PX_TFD));
    if ((is & IS_FATAL) == 0 && (tfd & 1) == 0) return 0;
    /* A driver's recovery: stop the engine and start it again. */
    mmio_write32(PORT(abar, PX_CMD), CMD_SUD_POD | CMD_FRE);
    mmio_write32(PORT(abar, PX_IS), ~0u);
    mmio_write32(PORT(abar, PX_CMD), CMD_SUD_POD | CMD_FRE | CMD_ST);
    return (int)(tfd & 0xffff);
  }
  return -1;
}

void test_ahci(void) {
  uint64_t abar = ahci_find();
  check("ahci: controller found by its class", abar != 0);
  if (!abar) return;
  printf("ahci: ABAR at %lx, CAP %x, PI %x\n", abar, mmio_read32(abar), mmio_read32(abar + 0x0c));
  check("ahci: port 0 up and started", ahci_setup(abar));
  check("ahci: an ATA disk's signature", mmio_read32(PORT(abar, 0x24)) == 0x00000101);
  check("ahci: identify device", ahci_run(abar, 0xec, 0, 0, identify, 512, false) == 0);
  uint64_t sectors = 0;
  for (int i = 3; i >= 0; --i)
    sectors = sectors << 16 | (uint16_t)(identify[200 + 2 * i] | identify[201 + 2 * i] << 8);
  printf("ahci: %lu sectors, LBA48 %s\n", sectors, (identify[167] & 0x04) ? "yes" : "no");
  check("ahci: LBA48 disk of at least 64 sectors", (identify[167] & 0x04) && sectors >= 64);
  bool written = true;
  bool verified = true;
  for (uint64_t lba = 0; lba < 64; lba += 8) {
    for (unsigned i = 0; i < sizeof(data); ++i) data[i] = (uint8_t)(i * 37 + lba);
    written &= ahci_run(abar, 0x35, lba, 8, data, sizeof(data), true) == 0;
  }
  for (uint64_t lba = 0; lba < 64; lba += 8) {
    memset(data, 0, sizeof(data));
    if (ahci_run(abar, 0x25, lba, 8, data, sizeof(data), false) != 0) {
      verified = false;
      continue;
    }
    for (unsigned i = 0; i < sizeof(data); ++i) verified &= data[i] == (uint8_t)(i * 37 + lba);
  }
  check("ahci: pattern written", written);
  check("ahci: pattern read back intact", verified);
  int past = ahci_run(abar, 0x25, sectors, 8, data, sizeof(data), false);
  check("ahci: past-the-end read fails with ID not found", past > 0 && (past >> 8) == 0x10);
  check("ahci: flush", ahci_run(abar, 0xea, 0, 0, 0, 0, false) == 0);
  check("ahci: port healthy", (mmio_read32(PORT(abar, PX_IS)) & IS_FATAL) == 0);
}

/* Write-then-verify rounds over the first 128 KiB while the host kills and
 * restarts the AHCI server; the guest must not notice. */
void test_ahci_stress(unsigned rounds) {
  uint64_t abar = ahci_find();
  if (!abar || !ahci_setup(abar)) {
    check("ahci stress: controller set up", false);
    return;
  }
  unsigned io_errors = 0;
  unsigned bad_blocks = 0;
  for (unsigned round = 0; round < rounds; ++round) {
    for (uint64_t lba = 0; lba < 256; lba += 8) {
      for (unsigned i = 0; i < sizeof(data); i += 8) *(uint64_t*)(data + i) = (round << 24) ^ (lba << 12) ^ i;
      if (ahci_run(abar, 0x35, lba, 8, data, sizeof(data), true) != 0) ++io_errors;
    }
    for (uint64_t lba = 0; lba < 256; lba += 8) {
      memset(data, 0, sizeof(data));
      if (ahci_run(abar, 0x25, lba, 8, data, sizeof(data), false) != 0) {
        ++io_errors;
        continue;
      }
      for (unsigned i = 0; i < sizeof(data); i += 8) {
        if (*(uint64_t*)(data + i) != ((round << 24) ^ (lba << 12) ^ i)) {
          ++bad_blocks;
          break;
        }
      }
    }
    printf("stress: round %u done, %u I/O errors, %u bad blocks\n", round + 1, io_errors, bad_blocks);
  }
  check("ahci stress: no I/O errors", io_errors == 0);
  check("ahci stress: every block verified", bad_blocks == 0);
  check("ahci stress: port healthy", (mmio_read32(PORT(abar, PX_IS)) & IS_FATAL) == 0);
}
