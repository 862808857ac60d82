/* A minimal virtio-blk driver for the test guest: modern virtio-pci
 * transport found through the capability list, one queue, polling (no
 * interrupts), a pattern written and read back. */
#include "platform.h"

#define QUEUE_SIZE 16
#define SECTORS 8 /* 4 KiB per request */

struct descriptor {
  uint64_t address;
  uint32_t length;
  uint16_t flags;
  uint16_t next;
};

struct request_header {
  uint32_t type;
  uint32_t reserved;
  uint64_t sector;
};

static struct descriptor descriptors[QUEUE_SIZE] __attribute__((aligned(4096)));
static uint16_t avail[3 + QUEUE_SIZE] __attribute__((aligned(4096)));
static uint8_t used[6 + 8 * QUEUE_SIZE] __attribute__((aligned(4096)));
static struct request_header header __attribute__((aligned(16)));
static uint8_t data[SECTORS * 512] __attribute__((aligned(4096)));
static volatile uint8_t status;

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

static bool find_device(struct virtio_device* dev) {
  for (unsigned slot = 0; slot < 32; ++slot) {
    if (pci_cf8_read(0, slot, 0, 0) != 0x10421af4) continue;
    dev->slot = slot;
    uint64_t low = pci_cf8_read(0, slot, 0, 0x10);
    dev->bar = (low & ~0xfull) | ((uint64_t)pci_cf8_read(0, slot, 0, 0x14) << 32);
    for (unsigned at = pci_cf8_read(0, slot, 0, 0x34) & 0xff, steps = 0; at && steps < 48; ++steps) {
      uint32_t word = pci_cf8_read(0, slot, 0, at);
      if ((word & 0xff) == 0x09) {
        unsigned type = (word >> 24) & 0xff;
        uint64_t offset = pci_cf8_read(0, slot, 0, at + 8);
        if (type == 1) dev->common = dev->bar + offset;
        if (type == 2) {
          dev->notify = dev->bar + offset;
          dev->notify_multiplier = pci_cf8_read(0, slot, 0, at + 16);
        }
        if (type == 4) dev->device = dev->bar + offset;
      }
      at = (word >> 8) & 0xff;
    }
    return dev->common && dev->notify && dev->device;
  }
  return false;
}

static void mmio_write8(uint64_t address, uint8_t value) { *(volatile uint8_t*)address = value; }
static void mmio_write16(uint64_t address, uint16_t value) { *(volatile uint16_t*)address = value; }
static void mmio_write64(uint64_t address, uint64_t value) {
  mmio_write32(address, (uint32_t)value);
  mmio_write32(address + 4, (uint32_t)(value >> 32));
}

static bool setup(struct virtio_device* dev) {
  uint64_t c = dev->common;
  mmio_write8(c + 0x14, 0);
  mmio_write8(c + 0x14, 1 | 2);
  mmio_write32(c + 0x08, 1);
  mmio_write32(c + 0x0c, 1); /* VERSION_1 only */
  mmio_write32(c + 0x08, 0);
  mmio_write32(c + 0x0c, 0);
  mmio_write8(c + 0x14, 1 | 2 | 8);
  if (!(mmio_read8(c + 0x14) & 8)) return false;
  mmio_write16(c + 0x10, 0xffff); /* no config interrupt: we poll */
  mmio_write16(c + 0x16, 0);
  uint16_t max = mmio_read16(c + 0x18);
  if (max < QUEUE_SIZE) return false;
  mmio_write16(c + 0x18, QUEUE_SIZE);
  mmio_write16(c + 0x1a, 0xffff);
  mmio_write64(c + 0x20, (uint64_t)descriptors);
  mmio_write64(c + 0x28, (uint64_t)avail);
  mmio_write64(c + 0x30, (uint64_t)used);
  mmio_write16(c + 0x1c, 1);
  mmio_write8(c + 0x14, 1 | 2 | 8 | 4);
  return (mmio_read8(c + 0x14) & 0x44) == 4; /* DRIVER_OK, not NEEDS_RESET */
}

/* One request; returns the status byte or 0xff on timeout. */
static uint8_t transfer(struct virtio_device* dev, uint32_t type, uint64_t sector) {
  header.type = type;
  header.sector = sector;
  status = 0xee;
  descriptors[0] = (struct descriptor){(uint64_t)&header, sizeof(header), 1, 1};
  descriptors[1] = (struct descriptor){(uint64_t)data, sizeof(data), (uint16_t)(1 | (type == 0 ? 2 : 0)), 2};
  descriptors[2] = (struct descriptor){(uint64_t)&status, 1, 2, 0};
  avail[2 + dev->avail_idx % QUEUE_SIZE] = 0;
  __atomic_store_n(&avail[1], (uint16_t)(dev->avail_idx + 1), __ATOMIC_RELEASE);
  ++dev->avail_idx;
  mmio_write16(dev->notify + 0 * dev->notify_multiplier, 0);
  for (unsigned waited = 0; waited < 2000000; ++waited) {
    uint16_t used_idx = __atomic_load_n((volatile uint16_t*)(used + 2), __ATOMIC_ACQUIRE);
    if (used_idx != dev->last_used) {
      dev->last_used = used_idx;
      return status;
    }
    cpu_relax();
  }
  return 0xff;
}

void test_virtio_blk(void) {
  struct virtio_device dev = {0};
  check("virtio-blk device found with its capabilities", find_device(&dev));
  if (!dev.common) return;
  printf("virtio-blk: 00:%02x.0 BAR0 at %lx\n", dev.slot, dev.bar);
  check("virtio-blk: driver setup accepted", setup(&dev));
  uint64_t capacity = (uint64_t)mmio_read32(dev.device) | (uint64_t)mmio_read32(dev.device + 4) << 32;
  printf("virtio-blk: capacity %lu sectors\n", capacity);
  check("virtio-blk: capacity reported", capacity >= 64);
  bool written = true;
  bool verified = true;
  for (uint64_t sector = 0; sector < 64; sector += SECTORS) {
    for (unsigned i = 0; i < sizeof(data); ++i) data[i] = (uint8_t)(i * 31 + sector);
    written &= transfer(&dev, 1, sector) == 0;
  }
  for (uint64_t sector = 0; sector < 64; sector += SECTORS) {
    memset(data, 0, sizeof(data));
    if (transfer(&dev, 0, sector) != 0) {
      verified = false;
      continue;
    }
    for (unsigned i = 0; i < sizeof(data); ++i) verified &= data[i] == (uint8_t)(i * 31 + sector);
  }
  check("virtio-blk: pattern written", written);
  check("virtio-blk: pattern read back intact", verified);
  check("virtio-blk: past-the-end read fails with IOERR", transfer(&dev, 0, capacity) == 1);
  check("virtio-blk: device still healthy", (mmio_read8(dev.common + 0x14) & 0x40) == 0);
}

/* Write-then-verify rounds over the first 128 KiB until `rounds` are done,
 * counting every I/O error and every block that does not verify. The host
 * kills and restarts the device server meanwhile; the guest must not notice. */
void test_virtio_blk_stress(unsigned rounds) {
  struct virtio_device dev = {0};
  if (!find_device(&dev) || !setup(&dev)) {
    check("virtio-blk stress: device set up", false);
    return;
  }
  unsigned io_errors = 0;
  unsigned bad_blocks = 0;
  for (unsigned round = 0; round < rounds; ++round) {
    for (uint64_t sector = 0; sector < 256; sector += SECTORS) {
      for (unsigned i = 0; i < sizeof(data); i += 8) *(uint64_t*)(data + i) = (round << 24) ^ (sector << 12) ^ i;
      if (transfer(&dev, 1, sector) != 0) ++io_errors;
    }
    for (uint64_t sector = 0; sector < 256; sector += SECTORS) {
      memset(data, 0, sizeof(data));
      if (transfer(&dev, 0, sector) != 0) {
        ++io_errors;
        continue;
      }
      for (unsigned i = 0; i < sizeof(data); i += 8) {
        if (*(uint64_t*)(data + i) != ((round << 24) ^ (sector << 12) ^ i)) {
          ++bad_blocks;
          break;
        }
      }
    }
    printf("stress: round %u done, %u I/O errors, %u bad blocks\n", round + 1, io_errors, bad_blocks);
  }
  check("virtio-blk stress: no I/O errors", io_errors == 0);
  check("virtio-blk stress: every block verified", bad_blocks == 0);
  check("virtio-blk stress: device healthy", (mmio_read8(dev.common + 0x14) & 0x40) == 0);
}
