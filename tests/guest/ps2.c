/* The i8042's keyboard and mouse as a polling driver sees them: the
 * controller's self-test, the keyboard's identity, the mouse switched on;
 * then every byte that arrives is printed, keyboard bytes as the set-1
 * codes the controller translates to, mouse bytes as whole packets, for
 * the host test to compare with what its VNC client sent. */
#include "platform.h"

enum {
  DATA = 0x60,
  STATUS = 0x64,
  OUTPUT_FULL = 0x01,
  INPUT_FULL = 0x02,
  FROM_MOUSE = 0x20,
};

static bool wait_output(void) {
  for (unsigned spins = 0; spins < 1000000; ++spins) {
    if (inb(STATUS) & OUTPUT_FULL) return true;
  }
  return false;
}

static int read_data(void) {
  return wait_output() ? inb(DATA) : -1;
}

static void controller(uint8_t command) {
  while (inb(STATUS) & INPUT_FULL) {
  }
  outb(STATUS, command);
}

static void data(uint8_t value) {
  while (inb(STATUS) & INPUT_FULL) {
  }
  outb(DATA, value);
}

void test_ps2_echo(void) {
  while (inb(STATUS) & OUTPUT_FULL) inb(DATA);
  controller(0xaa);
  check("ps2: controller self-test 55", read_data() == 0x55);
  /* Polled: no interrupts; translation on, both ports on. */
  controller(0x60);
  data(0x44);
  controller(0x20);
  check("ps2: command byte reads back", read_data() == 0x44);
  data(0xf2);
  int ack = read_data(), id0 = read_data(), id1 = read_data();
  check("ps2: keyboard identifies as MF2 (translated AB 41)", ack == 0xfa && id0 == 0xab && id1 == 0x41);
  controller(0xd4);
  data(0xf4);
  bool answered = wait_output();
  uint8_t from = inb(STATUS) & FROM_MOUSE;
  check("ps2: the mouse acknowledges reporting on", answered && inb(DATA) == 0xfa && from);
  if (checks_failed_so_far() != 0) return;
  printf("ps2: ready\n");
  uint8_t packet[3];
  unsigned have = 0;
  for (;;) {
    uint8_t status = inb(STATUS);
    if (!(status & OUTPUT_FULL)) continue;
    uint8_t byte = inb(DATA);
    if (!(status & FROM_MOUSE)) {
      printf("ps2: key %x\n", byte);
      continue;
    }
    /* Bit 3 of a first byte is always set: resynchronise on it. */
    if (have == 0 && !(byte & 0x08)) continue;
    packet[have++] = byte;
    if (have < 3) continue;
    have = 0;
    int dx = packet[0] & 0x10 ? (int)packet[1] - 256 : packet[1];
    int dy = packet[0] & 0x20 ? (int)packet[2] - 256 : packet[2];
    printf("ps2: mouse buttons %x dx %d dy %d\n", packet[0] & 7, dx, dy);
  }
}
