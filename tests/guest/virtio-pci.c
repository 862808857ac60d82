/* The modern virtio-pci transport as the test guest drives it: the device
 * found through its capability list, features, queues, notifications. */
#include "platform.h"

bool virtio_find(uint32_t id, struct virtio_device* dev) {
  for (unsigned slot = 0; slot < 32; ++slot) {
    if (pci_cf8_read(0, slot, 0, 0) != ((id << 16) | 0x1af4)) continue;
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

static void mmio_write8(uint64_t address, uint8_t value) {
  *(volatile uint8_t*)address = value;
}
static void mmio_write64(uint64_t address, uint64_t value) {
  mmio_write32(address, (uint32_t)value);
  mmio_write32(address + 4, (uint32_t)(value >> 32));
}

bool virtio_begin(struct virtio_device* dev, uint32_t features) {
  uint64_t c = dev->common;
  mmio_write8(c + 0x14, 0);
  mmio_write8(c + 0x14, 1 | 2);
  mmio_write32(c + 0x08, 0);
  uint32_t offered = mmio_read32(c + 0x0c);
  mmio_write32(c + 0x08, 1);
  mmio_write32(c + 0x0c, 1); /* VERSION_1 */
  mmio_write32(c + 0x08, 0);
  mmio_write32(c + 0x0c, features & offered);
  mmio_write8(c + 0x14, 1 | 2 | 8);
  if (!(mmio_read8(c + 0x14) & 8)) return false;
  mmio_write16(c + 0x10, 0xffff); /* no config interrupt: we poll */
  return true;
}

bool virtio_queue(struct virtio_device* dev, uint16_t index, uint16_t size, void* descriptors, void* avail,
                  void* used) {
  uint64_t c = dev->common;
  mmio_write16(c + 0x16, index);
  uint16_t max = mmio_read16(c + 0x18);
  if (max < size) return false;
  mmio_write16(c + 0x18, size);
  mmio_write16(c + 0x1a, 0xffff);
  mmio_write64(c + 0x20, (uint64_t)descriptors);
  mmio_write64(c + 0x28, (uint64_t)avail);
  mmio_write64(c + 0x30, (uint64_t)used);
  mmio_write16(c + 0x1c, 1);
  return true;
}

bool virtio_driver_ok(struct virtio_device* dev) {
  mmio_write8(dev->common + 0x14, 1 | 2 | 8 | 4);
  return (mmio_read8(dev->common + 0x14) & 0x44) == 4; /* DRIVER_OK, not NEEDS_RESET */
}

void virtio_notify(struct virtio_device* dev, uint16_t queue) {
  mmio_write16(dev->notify + queue * dev->notify_multiplier, queue);
}
