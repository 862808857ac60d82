#include "runtime.h"

#include <stdarg.h>

#define COM1 0x3f8
#define PM_TIMER_PORT 0x608

static unsigned checks_run;
static unsigned checks_failed;

void* memset(void* dest, int value, size_t count) {
  uint8_t* out = dest;
  while (count--) *out++ = (uint8_t)value;
  return dest;
}

void* memcpy(void* dest, const void* src, size_t count) {
  uint8_t* out = dest;
  const uint8_t* in = src;
  while (count--) *out++ = *in++;
  return dest;
}

int memcmp(const void* a, const void* b, size_t count) {
  const uint8_t* x = a;
  const uint8_t* y = b;
  for (; count; --count, ++x, ++y) {
    if (*x != *y) return *x - *y;
  }
  return 0;
}

size_t strlen(const char* text) {
  size_t length = 0;
  while (text[length]) ++length;
  return length;
}

int strncmp(const char* a, const char* b, size_t count) {
  for (; count; --count, ++a, ++b) {
    if (*a != *b || !*a) return (uint8_t)*a - (uint8_t)*b;
  }
  return 0;
}

void console_init(void) {
  outb(COM1 + 3, 0x80); /* DLAB */
  outb(COM1 + 0, 0x01); /* 115200 baud */
  outb(COM1 + 1, 0x00);
  outb(COM1 + 3, 0x03); /* 8N1 */
  outb(COM1 + 2, 0x01); /* FIFO on; keep what the host typed before boot */
  outb(COM1 + 4, 0x03); /* DTR, RTS */
}

void console_putc(char c) {
  if (c == '\n') console_putc('\r');
  while (!(inb(COM1 + 5) & 0x20)) cpu_relax();
  outb(COM1, (uint8_t)c);
}

void console_puts(const char* text) {
  while (*text) console_putc(*text++);
}

static void put_number(uint64_t value, unsigned base, int width, char pad, bool negative) {
  char digits[24];
  int count = 0;
  do {
    unsigned digit = (unsigned)(value % base);
    digits[count++] = (char)(digit < 10 ? '0' + digit : 'a' + digit - 10);
    value /= base;
  } while (value);
  if (negative) digits[count++] = '-';
  for (int i = count; i < width; ++i) console_putc(pad);
  while (count) console_putc(digits[--count]);
}

void printf(const char* format, ...) {
  va_list args;
  va_start(args, format);
  for (; *format; ++format) {
    if (*format != '%') {
      console_putc(*format);
      continue;
    }
    ++format;
    char pad = ' ';
    int width = 0;
    if (*format == '0') pad = '0';
    while (*format >= '0' && *format <= '9') width = width * 10 + (*format++ - '0');
    int longs = 0;
    while (*format == 'l') ++longs, ++format;
    switch (*format) {
      case 's':
        console_puts(va_arg(args, const char*));
        break;
      case 'c':
        console_putc((char)va_arg(args, int));
        break;
      case 'd': {
        int64_t value = longs ? va_arg(args, int64_t) : va_arg(args, int);
        put_number(value < 0 ? (uint64_t)-value : (uint64_t)value, 10, width, pad, value < 0);
        break;
      }
      case 'u':
        put_number(longs ? va_arg(args, uint64_t) : va_arg(args, unsigned), 10, width, pad, false);
        break;
      case 'x':
        put_number(longs ? va_arg(args, uint64_t) : va_arg(args, unsigned), 16, width, pad, false);
        break;
      case 'p':
        console_puts("0x");
        put_number((uint64_t)va_arg(args, void*), 16, 0, ' ', false);
        break;
      case '%':
        console_putc('%');
        break;
      default:
        console_putc('?');
        break;
    }
  }
  va_end(args);
}

uint32_t pm_timer_ticks(void) {
  return inl(PM_TIMER_PORT) & 0xffffff;
}

void delay_us(uint32_t microseconds) {
  uint64_t wanted = (uint64_t)microseconds * 3579545 / 1000000;
  uint32_t last = pm_timer_ticks();
  uint64_t elapsed = 0;
  while (elapsed < wanted) {
    uint32_t now = pm_timer_ticks();
    elapsed += (now - last) & 0xffffff;
    last = now;
  }
}

void check(const char* name, bool ok) {
  ++checks_run;
  if (!ok) ++checks_failed;
  printf("%s - %s\n", ok ? "ok" : "FAIL", name);
}

unsigned checks_failed_so_far(void) {
  return checks_failed;
}

void debug_exit(uint8_t value) {
  outb(DEBUG_EXIT_PORT, value);
  for (;;) __asm__ volatile("cli; hlt");
}

void finish(void) {
  printf("guest: %u checks, %u failed\n", checks_run, checks_failed);
  debug_exit(checks_failed == 0 && checks_run > 0 ? GUEST_PASS : GUEST_FAIL);
}

const char* cmdline_value(const char* cmdline, const char* key, char* out, size_t size) {
  size_t key_length = strlen(key);
  const char* at = cmdline;
  while (at && *at) {
    while (*at == ' ') ++at;
    if (strncmp(at, key, key_length) == 0 && at[key_length] == '=') {
      const char* value = at + key_length + 1;
      size_t length = 0;
      while (value[length] && value[length] != ' ' && length + 1 < size) {
        out[length] = value[length];
        ++length;
      }
      out[length] = 0;
      return out;
    }
    while (*at && *at != ' ') ++at;
  }
  return 0;
}
