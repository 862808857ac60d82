#include "platform.h"

#define AP_TRAMPOLINE 0x8000
#define LAPIC 0xfee00000ull
#define ICR_LOW 0x300
#define ICR_HIGH 0x310

extern char ap_trampoline_start[];
extern char ap_trampoline_end[];

static volatile unsigned aps_started;
volatile bool ap_idle_with_interrupts;
static volatile uint32_t ap_seen_apic_id[MAX_CPUS];

static uint32_t cpuid_apic_id(void) {
  uint32_t eax = 1, ebx, ecx = 0, edx;
  __asm__ volatile("cpuid" : "+a"(eax), "=b"(ebx), "+c"(ecx), "=d"(edx));
  return ebx >> 24;
}

void ap_main(unsigned index) {
  if (index < MAX_CPUS) ap_seen_apic_id[index] = cpuid_apic_id() + 1;
  __atomic_add_fetch(&aps_started, 1, __ATOMIC_SEQ_CST);
  if (ap_idle_with_interrupts) {
    for (;;) __asm__ volatile("sti; hlt");
  }
  for (;;) __asm__ volatile("cli; hlt");
}

static void send_ipi(uint8_t apic_id, uint32_t command) {
  mmio_write32(LAPIC + ICR_HIGH, (uint32_t)apic_id << 24);
  mmio_write32(LAPIC + ICR_LOW, command);
  while (mmio_read32(LAPIC + ICR_LOW) & (1u << 12)) cpu_relax(); /* delivery pending */
}

unsigned smp_start(const struct platform* platform) {
  memcpy((void*)AP_TRAMPOLINE, ap_trampoline_start, (size_t)(ap_trampoline_end - ap_trampoline_start));
  uint32_t self = mmio_read32(LAPIC + 0x20) >> 24;
  unsigned expected = 0;
  for (unsigned i = 0; i < platform->cpu_count; ++i) {
    uint8_t id = platform->apic_ids[i];
    if (id == self) continue;
    ++expected;
    send_ipi(id, 0x00004500); /* INIT, assert */
    delay_us(10000);
    send_ipi(id, 0x00004600 | (AP_TRAMPOLINE >> 12)); /* STARTUP */
    delay_us(200);
    send_ipi(id, 0x00004600 | (AP_TRAMPOLINE >> 12));
  }
  /* Each AP reports in; allow plenty of time on an emulating host. */
  for (unsigned waited = 0; aps_started < expected && waited < 5000; ++waited) delay_us(1000);
  for (unsigned i = 0; i < aps_started && i < MAX_CPUS; ++i) {
    printf("cpu: AP %u running with APIC id %u\n", i, ap_seen_apic_id[i] - 1);
  }
  return aps_started;
}
