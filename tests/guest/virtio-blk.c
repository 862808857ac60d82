/* A minimal virtio-blk driver for the test guest: one queue, polling (no
 * interrupts), a pattern written and read back. */
#include "platform.h"

#define QUEUE_SIZE 16
#define SECTORS 8 /* 4 KiB per request */

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

static bool setup(struct virtio_device* dev) {
  if (!virtio_begin(dev, 0)) return false;
  if (!virtio_queue(dev, 0, QUEUE_SIZE, descriptors, avail, used)) return false;
  return virtio_driver_ok(dev);
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
  virtio_notify(dev, 0);
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
  check("virtio-blk device found with its capabilities", virtio_find(0x1042, &dev));
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
  if (!virtio_find(0x1042, &dev) || !setup(&dev)) {
    check("virtio-blk stress: device set up", false);
    return;
  }
  unsigned io_errors = 0;
  unsigned bad_blocks = 0;
  for (unsigned round = 0; round < rounds; ++round) {
    for (uint64_t sector = 0; sector < 256; sector += SECTORS) {
      for (unsigned i = 0; i < sizeof(data); i += 8)
        *(uint64_t*)(data + i) = (round << 24) ^ (sector << 12) ^ i;
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
