/* The Bochs display adapter (1234:1111) as a driver finds it: by its IDs,
 * the DISPI interface checked through BAR2, a mode set the way Linux's
 * bochs driver sets one, and a pattern drawn straight into VRAM (BAR0, a
 * memory slot: no exits). Then the guest idles and the host looks at the
 * screen through VNC. The pattern is the host test's too
 * (tests/boot/display-boot-test.cc): keep the two the same. */
#include "platform.h"

#define DISPI(mmio, index) ((mmio) + 0x500 + 2 * (index))
enum { ID, XRES, YRES, BPP, ENABLE, BANK, VIRT_WIDTH, VIRT_HEIGHT, X_OFFSET, Y_OFFSET, VIDEO_MEMORY_64K };

static uint32_t pattern(unsigned x, unsigned y, unsigned width, unsigned height) {
  if (x == 0 || y == 0 || x == width - 1 || y == height - 1) return 0xffffff;
  return (x & 0xff) << 16 | (y & 0xff) << 8 | ((x + y) & 0xff);
}

static void draw_pattern(unsigned width, unsigned height) {
  unsigned slot = 0;
  for (; slot < 32; ++slot) {
    if (pci_cf8_read(0, slot, 0, 0) == 0x11111234u) break;
  }
  check("display: 1234:1111 found", slot < 32);
  if (slot == 32) return;
  uint64_t vram = pci_cf8_read(0, slot, 0, 0x10) & ~0xfull;
  uint64_t mmio = pci_cf8_read(0, slot, 0, 0x18) & ~0xfull;
  uint16_t id = mmio_read16(DISPI(mmio, ID));
  printf("display: VRAM at %lx (%u KiB), registers at %lx, DISPI id %x\n", vram,
         mmio_read16(DISPI(mmio, VIDEO_MEMORY_64K)) * 64u, mmio, id);
  check("display: DISPI interface 0xb0c0 to 0xb0c5", (id & 0xfff0) == 0xb0c0);
  mmio_write16(DISPI(mmio, ENABLE), 0);
  mmio_write16(DISPI(mmio, BPP), 32);
  mmio_write16(DISPI(mmio, XRES), (uint16_t)width);
  mmio_write16(DISPI(mmio, YRES), (uint16_t)height);
  mmio_write16(DISPI(mmio, BANK), 0);
  mmio_write16(DISPI(mmio, VIRT_WIDTH), (uint16_t)width);
  mmio_write16(DISPI(mmio, VIRT_HEIGHT), (uint16_t)height);
  mmio_write16(DISPI(mmio, X_OFFSET), 0);
  mmio_write16(DISPI(mmio, Y_OFFSET), 0);
  mmio_write16(DISPI(mmio, ENABLE), 0x41); /* Enabled, linear framebuffer. */
  check("display: mode reads back", mmio_read16(DISPI(mmio, XRES)) == width &&
                                        mmio_read16(DISPI(mmio, YRES)) == height &&
                                        mmio_read16(DISPI(mmio, BPP)) == 32);
  volatile uint32_t* pixels = (volatile uint32_t*)vram;
  for (unsigned y = 0; y < height; ++y) {
    for (unsigned x = 0; x < width; ++x) pixels[y * width + x] = pattern(x, y, width, height);
  }
  printf("display: %ux%ux32 pattern drawn\n", width, height);
  check("display: the pattern reads back", pixels[width + 1] == pattern(1, 1, width, height));
}

void test_display(unsigned width, unsigned height) {
  draw_pattern(width, height);
  if (checks_failed_so_far() != 0) return;
  /* The host looks now; the guest stays. */
  for (;;) __asm__ volatile("sti; hlt");
}

/* The pattern, then the keyboard and mouse: what a VNC client types and
 * points at the screen reaches the guest (tests/guest/ps2.c). */
void test_display_input(unsigned width, unsigned height) {
  draw_pattern(width, height);
  if (checks_failed_so_far() != 0) return;
  test_ps2_echo();
}

/* display-bench's guest: 1920x1080x32, then (if `animate`) whole frames
 * forever, each a solid colour from a counter (rep stosl: one instruction
 * per frame for an emulator), announced on the console with its number
 * once written; else it idles and the benchmark draws from the host. */
void test_display_animation(bool animate) {
  const unsigned width = 1920, height = 1080;
  unsigned slot = 0;
  for (; slot < 32 && pci_cf8_read(0, slot, 0, 0) != 0x11111234u; ++slot) {
  }
  check("display: 1234:1111 found", slot < 32);
  if (slot == 32) return;
  uint64_t vram = pci_cf8_read(0, slot, 0, 0x10) & ~0xfull;
  uint64_t mmio = pci_cf8_read(0, slot, 0, 0x18) & ~0xfull;
  mmio_write16(DISPI(mmio, ENABLE), 0);
  mmio_write16(DISPI(mmio, BPP), 32);
  mmio_write16(DISPI(mmio, XRES), width);
  mmio_write16(DISPI(mmio, YRES), height);
  mmio_write16(DISPI(mmio, VIRT_WIDTH), width);
  mmio_write16(DISPI(mmio, ENABLE), 0x41);
  printf("display: 1920x1080x32 set\n");
  if (!animate) {
    for (;;) __asm__ volatile("sti; hlt");
  }
  for (uint32_t frame = 1;; ++frame) {
    uint32_t colour = (frame * 0x3b) & 0xff;
    colour |= colour << 8 | colour << 16;
    uint64_t count = (uint64_t)width * height;
    void* target = (void*)vram;
    __asm__ volatile("rep stosl" : "+D"(target), "+c"(count) : "a"(colour) : "memory");
    printf("frame %u %06x\n", frame, colour);
  }
}
