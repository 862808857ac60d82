/* The test guest: boots, prints over COM1, runs the test named by
 * "test=NAME" on its command line, and reports through the debug-exit port. */
#include "platform.h"

#define HVM_START_MAGIC 0x336ec578
#define COM1 0x3f8

static struct platform platform;
static const struct hvm_start_info* start_info;

static void test_hello(void) {
  printf("Hello from the cellvisor test guest\n");
  check("start info magic", start_info->magic == HVM_START_MAGIC);
  check("memory map present", start_info->memmap_entries > 0);
  uint64_t ram = 0;
  const struct memmap_entry* map = (const struct memmap_entry*)start_info->memmap_paddr;
  for (uint32_t i = 0; i < start_info->memmap_entries; ++i) {
    if (map[i].type == 1) ram += map[i].size;
  }
  printf("memory: %lu MiB usable\n", ram >> 20);
  check("usable RAM reported", ram > (1u << 20));
  check("ACPI tables parse", platform.acpi_ok);
}

static void test_pci(void) {
  check("ACPI MCFG gives ECAM", platform.ecam_base != 0);
  uint32_t id = pci_cf8_read(0, 0, 0, 0);
  printf("pci: 00:00.0 %04x:%04x via 0xCF8\n", id & 0xffff, id >> 16);
  check("host bridge at 00:00.0 (0xCF8)", id != 0xffffffff && (pci_cf8_read(0, 0, 0, 8) >> 16) == 0x0600);
  check("ECAM agrees with 0xCF8", pci_ecam_read(platform.ecam_base, 0, 0, 0, 0) == id);
  unsigned found = 0;
  for (unsigned slot = 0; slot < 32; ++slot) {
    uint32_t slot_id = pci_cf8_read(0, slot, 0, 0);
    if (slot_id == 0xffffffff) continue;
    ++found;
    uint32_t class_code = pci_cf8_read(0, slot, 0, 8) >> 8;
    printf("pci: 00:%02x.0 %04x:%04x class %06x\n", slot, slot_id & 0xffff, slot_id >> 16, class_code);
    check("ECAM sees the same function", pci_ecam_read(platform.ecam_base, 0, slot, 0, 0) == slot_id);
  }
  check("empty slot reads all-ones", pci_cf8_read(0, 17, 0, 0) == 0xffffffff || found > 17);
  /* Read-only identity registers ignore writes; the interrupt line is scratch. */
  pci_cf8_write(0, 0, 0, 0, 0x12345678);
  check("vendor/device are read-only", pci_cf8_read(0, 0, 0, 0) == id);
  uint32_t line = pci_cf8_read(0, 0, 0, 0x3c);
  pci_cf8_write(0, 0, 0, 0x3c, (line & ~0xffu) | 0x0b);
  check("interrupt line is writable", (pci_cf8_read(0, 0, 0, 0x3c) & 0xff) == 0x0b);
  printf("pci: %u functions on bus 0\n", found);
}

static void test_smp(void) {
  printf("smp: MADT lists %u CPUs\n", platform.cpu_count);
  unsigned started = smp_start(&platform);
  check("every AP came up", started + 1 == platform.cpu_count);
  printf("smp: %u CPUs running\n", started + 1);
}

/* The APs come up late (after the host's halt probe has run a few times)
 * and idle with interrupts on while the BSP keeps working: the VM is busy,
 * not halted, however often the probe asks. */
static void test_smp_idle(void) {
  printf("smp-idle: BSP busy before starting the APs\n");
  delay_us(700000);
  ap_idle_with_interrupts = true;
  unsigned started = smp_start(&platform);
  check("every AP came up", started + 1 == platform.cpu_count);
  printf("smp-idle: APs idle with interrupts on; BSP busy\n");
  delay_us(1500000);
  check("BSP still running after the APs went idle", true);
}

static void test_uart(void) {
  outb(COM1 + 7, 0x5a);
  check("scratch register holds a value", inb(COM1 + 7) == 0x5a);
  outb(COM1 + 4, 0x10 | 0x03); /* loopback */
  outb(COM1, 'Q');
  check("loopback: data ready", inb(COM1 + 5) & 0x01);
  check("loopback: byte comes back", inb(COM1) == 'Q');
  check("loopback: RTS shows as CTS", inb(COM1 + 6) & 0x10);
  outb(COM1 + 4, 0x03);
  outb(COM1 + 3, 0x83);
  outb(COM1, 0x0c);
  check("divisor latch is readable", inb(COM1) == 0x0c);
  outb(COM1 + 3, 0x03);
  check("IIR reports FIFOs and no interrupt", (inb(COM1 + 2) & 0xcf) == 0xc1);
}

static uint8_t rtc_read(uint8_t index) {
  outb(0x70, index);
  return inb(0x71);
}

static void test_rtc(void) {
  uint8_t b = rtc_read(0x0b);
  check("RTC in 24-hour mode", b & 0x02);
  uint8_t year = rtc_read(0x09);
  uint8_t century = rtc_read(0x32);
  if (!(b & 0x04)) {
    year = (uint8_t)((year >> 4) * 10 + (year & 0xf));
    century = (uint8_t)((century >> 4) * 10 + (century & 0xf));
  }
  printf("rtc: year %u%02u\n", century, year);
  check("RTC year is plausible", century == 20 && year >= 24);
  check("RTC valid RAM bit", rtc_read(0x0d) & 0x80);
}

static void test_poweroff(void) {
  check("FADT gives PM1a_CNT", platform.pm1a_control != 0);
  printf("poweroff: S5 via port %x\n", platform.pm1a_control);
  outw(platform.pm1a_control, (uint16_t)(platform.s5_type << 10 | 1u << 13));
  check("still running after S5", false);
}

static void test_power_button(void) {
  outw(platform.pm1a_event + 2, 1u << 8); /* PWRBTN_EN */
  printf("power-button: waiting\n");
  for (;;) {
    if (inw(platform.pm1a_event) & (1u << 8)) break;
    delay_us(1000);
  }
  printf("power-button: pressed, powering off\n");
  outw(platform.pm1a_event, 1u << 8); /* acknowledge */
  outw(platform.pm1a_control, (uint16_t)(platform.s5_type << 10 | 1u << 13));
}

static void test_triple_fault(void) {
  struct {
    uint16_t limit;
    uint64_t base;
  } __attribute__((packed)) empty = {0, 0};
  printf("triple-fault: faulting with an empty IDT\n");
  __asm__ volatile("lidt %0; ud2" ::"m"(empty));
}

/* Reads one line from COM1 (polling) and prints it back. */
static void test_echo(void) {
  char line[80];
  unsigned length = 0;
  printf("echo: ready\n");
  for (unsigned waited_ms = 0; waited_ms < 30000 && length + 1 < sizeof(line);) {
    if (!(inb(COM1 + 5) & 0x01)) {
      delay_us(1000);
      ++waited_ms;
      continue;
    }
    char c = (char)inb(COM1);
    if (c == '\r' || c == '\n') break;
    line[length++] = c;
  }
  line[length] = 0;
  printf("echo: %s\n", line);
  check("received a line", length > 0);
}

/* The README's demo: a tour of the platform, then an ACPI power-off. */
/* The stress tests' "rounds=N" (default 4). */
static unsigned rounds_of(const char* cmdline) {
  char rounds[12] = "4";
  cmdline_value(cmdline, "rounds", rounds, sizeof(rounds));
  unsigned count = 0;
  for (const char* at = rounds; *at >= '0' && *at <= '9'; ++at) count = count * 10 + (unsigned)(*at - '0');
  return count;
}

static void test_demo(const char* cmdline) {
  test_hello();
  test_pci();
  test_smp();
  test_rtc();
  test_virtio_blk(); /* The disk the demo attaches: served by its own sandboxed process. */
  /* The NIC, when the demo has one (ip= and peer= on the command line). */
  char ip[16] = "", peer[16] = "";
  if (cmdline_value(cmdline, "ip", ip, sizeof(ip)) && cmdline_value(cmdline, "peer", peer, sizeof(peer))) {
    test_virtio_net(ip, peer, 1);
  }
  if (checks_failed_so_far() != 0) finish();
  printf("demo: all checks passed; powering off through ACPI S5\n");
  outw(platform.pm1a_control, (uint16_t)(platform.s5_type << 10 | 1u << 13));
  finish();
}

void guest_main(const struct hvm_start_info* info) {
  start_info = info;
  console_init();
  const char* cmdline = (const char*)info->cmdline_paddr;
  acpi_parse(info->rsdp_paddr, &platform);
  char test[32] = "hello";
  cmdline_value(cmdline, "test", test, sizeof(test));
  printf("guest: running test '%s'\n", test);
  if (strncmp(test, "hello", 32) == 0) {
    test_hello();
  } else if (strncmp(test, "pci", 32) == 0) {
    test_pci();
  } else if (strncmp(test, "smp", 32) == 0) {
    test_smp();
  } else if (strncmp(test, "smp-idle", 32) == 0) {
    test_smp_idle();
  } else if (strncmp(test, "unclaimed-port", 32) == 0) {
    test_unclaimed_port();
  } else if (strncmp(test, "unknown-msr", 32) == 0) {
    test_unknown_msr();
  } else if (strncmp(test, "cpuid", 32) == 0) {
    test_cpuid();
  } else if (strncmp(test, "uart", 32) == 0) {
    test_uart();
  } else if (strncmp(test, "rtc", 32) == 0) {
    test_rtc();
  } else if (strncmp(test, "reset", 32) == 0) {
    outb(platform.reset_port, platform.reset_value);
  } else if (strncmp(test, "reset-i8042", 32) == 0) {
    outb(0x64, 0xfe);
  } else if (strncmp(test, "poweroff", 32) == 0) {
    test_poweroff();
  } else if (strncmp(test, "power-button", 32) == 0) {
    test_power_button();
  } else if (strncmp(test, "ahci-stress", 32) == 0) {
    test_ahci_stress(rounds_of(cmdline));
  } else if (strncmp(test, "ahci", 32) == 0) {
    test_ahci();
  } else if (strncmp(test, "nvme-stress", 32) == 0) {
    test_nvme_stress(rounds_of(cmdline));
  } else if (strncmp(test, "nvme", 32) == 0) {
    test_nvme();
  } else if (strncmp(test, "virtio-blk-stress", 32) == 0) {
    test_virtio_blk_stress(rounds_of(cmdline));
  } else if (strncmp(test, "virtio-blk", 32) == 0) {
    test_virtio_blk();
  } else if (strncmp(test, "virtio-net", 32) == 0) {
    char ip[16] = "", peer[16] = "";
    cmdline_value(cmdline, "ip", ip, sizeof(ip));
    cmdline_value(cmdline, "peer", peer, sizeof(peer));
    char pings[12] = "1";
    cmdline_value(cmdline, "pings", pings, sizeof(pings));
    unsigned count = 0;
    for (const char* at = pings; *at >= '0' && *at <= '9'; ++at) count = count * 10 + (unsigned)(*at - '0');
    test_virtio_net(ip, peer, count);
  } else if (strncmp(test, "demo", 32) == 0) {
    test_demo(cmdline);
  } else if (strncmp(test, "echo", 32) == 0) {
    test_echo();
  } else if (strncmp(test, "idle", 32) == 0) {
    printf("idle: waiting with interrupts on\n");
    for (;;) __asm__ volatile("sti; hlt");
  } else if (strncmp(test, "display-animation", 32) == 0) {
    char frames[8] = "on";
    cmdline_value(cmdline, "frames", frames, sizeof(frames));
    test_display_animation(strncmp(frames, "off", 8) != 0);
  } else if (strncmp(test, "display-input", 32) == 0) {
    test_display_input(800, 600);
  } else if (strncmp(test, "ps2", 32) == 0) {
    test_ps2_echo();
  } else if (strncmp(test, "display", 32) == 0) {
    test_display(800, 600);
  } else if (strncmp(test, "spin", 32) == 0) {
    /* A guest that wants all the CPU it can get (CPU limit tests). */
    printf("spin: busy forever\n");
    for (volatile unsigned long spins = 0;; ++spins) {
    }
  } else if (strncmp(test, "halt", 32) == 0) {
    printf("halt: cli; hlt\n");
    __asm__ volatile("cli; hlt");
  } else if (strncmp(test, "triple-fault", 32) == 0) {
    test_triple_fault();
  } else {
    printf("guest: unknown test '%s'\n", test);
    debug_exit(GUEST_FAIL);
  }
  finish();
}
