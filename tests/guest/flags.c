/* What bhyve's flags change for a guest: ports nobody emulates (-e),
 * MSRs KVM does not know (-w), x2APIC in CPUID (-x / -a). */
#include "platform.h"

/* No device decodes this port on our platform. */
#define UNCLAIMED_PORT 0x2e0
/* No MSR at this index on any x86 CPU KVM emulates. */
#define UNKNOWN_MSR 0x4b564d7fu

void test_unclaimed_port(void) {
  printf("unclaimed-port: reading port %x\n", UNCLAIMED_PORT);
  uint8_t value = inb(UNCLAIMED_PORT);
  check("a port nobody decodes reads all-ones", value == 0xff);
  outb(UNCLAIMED_PORT, 0x5a);
  check("a write to it is dropped", inb(UNCLAIMED_PORT) == 0xff);
}

/* Without -w the rdmsr raises #GP; this guest has no IDT, so that is a
 * triple fault. With -w it reads 0 and the write is dropped. */
void test_unknown_msr(void) {
  printf("unknown-msr: rdmsr %x\n", UNKNOWN_MSR);
  uint32_t low, high;
  __asm__ volatile("rdmsr" : "=a"(low), "=d"(high) : "c"(UNKNOWN_MSR));
  check("an unknown MSR reads as 0", low == 0 && high == 0);
  __asm__ volatile("wrmsr" ::"a"(0x1234u), "d"(0u), "c"(UNKNOWN_MSR));
  __asm__ volatile("rdmsr" : "=a"(low), "=d"(high) : "c"(UNKNOWN_MSR));
  check("a write to it is dropped", low == 0 && high == 0);
}

void test_cpuid(void) {
  uint32_t eax = 1, ebx, ecx = 0, edx;
  __asm__ volatile("cpuid" : "+a"(eax), "=b"(ebx), "+c"(ecx), "=d"(edx));
  printf("cpuid: x2apic %u\n", (ecx >> 21) & 1);
  /* What the core's mask hides on an emulating host, as ring 0 reads it. */
  printf("cpuid: leaf 1 ecx %x edx %x\n", ecx, edx);
  printf("cpuid: cx16 %u popcnt %u xsave %u\n", (ecx >> 13) & 1, (ecx >> 23) & 1, (ecx >> 26) & 1);
  check("running under a hypervisor", (ecx >> 31) & 1);
  eax = 7;
  ecx = 0;
  __asm__ volatile("cpuid" : "+a"(eax), "=b"(ebx), "+c"(ecx), "=d"(edx));
  printf("cpuid: leaf 7 ebx %x\n", ebx);
  printf("cpuid: smap %u\n", (ebx >> 20) & 1);
}
