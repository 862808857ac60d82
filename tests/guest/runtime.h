/* The test guest's tiny runtime: port and MMIO access, COM1 output, a
 * printf subset, the ACPI PM timer for delays, and the check framework. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DEBUG_EXIT_PORT 0x501
#define GUEST_PASS 0x10 /* exit status (0x10 << 1) | 1 = 33 */
#define GUEST_FAIL 0x11 /* exit status 35 */

static inline void outb(uint16_t port, uint8_t value) {
  __asm__ volatile("outb %0, %1" ::"a"(value), "Nd"(port));
}
static inline void outw(uint16_t port, uint16_t value) {
  __asm__ volatile("outw %0, %1" ::"a"(value), "Nd"(port));
}
static inline void outl(uint16_t port, uint32_t value) {
  __asm__ volatile("outl %0, %1" ::"a"(value), "Nd"(port));
}
static inline uint8_t inb(uint16_t port) {
  uint8_t value;
  __asm__ volatile("inb %1, %0" : "=a"(value) : "Nd"(port));
  return value;
}
static inline uint16_t inw(uint16_t port) {
  uint16_t value;
  __asm__ volatile("inw %1, %0" : "=a"(value) : "Nd"(port));
  return value;
}
static inline uint32_t inl(uint16_t port) {
  uint32_t value;
  __asm__ volatile("inl %1, %0" : "=a"(value) : "Nd"(port));
  return value;
}
static inline uint32_t mmio_read32(uint64_t address) {
  return *(volatile uint32_t*)address;
}
static inline void mmio_write32(uint64_t address, uint32_t value) {
  *(volatile uint32_t*)address = value;
}
static inline void mmio_write16(uint64_t address, uint16_t value) {
  *(volatile uint16_t*)address = value;
}
static inline uint16_t mmio_read16(uint64_t address) {
  return *(volatile uint16_t*)address;
}
static inline uint8_t mmio_read8(uint64_t address) {
  return *(volatile uint8_t*)address;
}
static inline void cpu_relax(void) {
  __asm__ volatile("pause" ::: "memory");
}

void* memset(void* dest, int value, size_t count);
void* memcpy(void* dest, const void* src, size_t count);
int memcmp(const void* a, const void* b, size_t count);
size_t strlen(const char* text);
int strncmp(const char* a, const char* b, size_t count);

void console_init(void);
void console_putc(char c);
void console_puts(const char* text);
void printf(const char* format, ...) __attribute__((format(printf, 1, 2)));

/* Microseconds from the ACPI PM timer (3.579545 MHz, 24 bits). */
uint32_t pm_timer_ticks(void);
void delay_us(uint32_t microseconds);

/* Named checks and the summary/exit. */
void check(const char* name, bool ok);
__attribute__((noreturn)) void finish(void);
unsigned checks_failed_so_far(void);
__attribute__((noreturn)) void debug_exit(uint8_t value);

/* A word from the kernel command line: value of "key=" or NULL. */
const char* cmdline_value(const char* cmdline, const char* key, char* out, size_t size);
