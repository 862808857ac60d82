#include "platform.h"

struct sdt_header {
  char signature[4];
  uint32_t length;
  uint8_t revision;
  uint8_t checksum;
  char oem[6];
  char oem_table[8];
  uint32_t oem_revision;
  uint32_t creator;
  uint32_t creator_revision;
} __attribute__((packed));

static bool checksum_ok(const void* table, size_t length) {
  const uint8_t* bytes = table;
  uint8_t sum = 0;
  for (size_t i = 0; i < length; ++i) sum = (uint8_t)(sum + bytes[i]);
  return sum == 0;
}

static uint32_t read32(const uint8_t* at) {
  return at[0] | at[1] << 8 | at[2] << 16 | (uint32_t)at[3] << 24;
}
static uint64_t read64(const uint8_t* at) {
  return read32(at) | (uint64_t)read32(at + 4) << 32;
}

static void parse_madt(const uint8_t* madt, uint32_t length, struct platform* out) {
  for (uint32_t at = 44; at + 2 <= length;) {
    uint8_t type = madt[at];
    uint8_t size = madt[at + 1];
    if (size < 2) break;
    if (type == 0 && (read32(madt + at + 4) & 1) && out->cpu_count < MAX_CPUS) {
      out->apic_ids[out->cpu_count++] = madt[at + 3];
    }
    at += size;
  }
}

/* Finds Name(_S5, Package(){ BytePrefix SLP_TYPa ... }) in the AML. */
static void parse_dsdt(const uint8_t* dsdt, uint32_t length, struct platform* out) {
  for (uint32_t at = 36; at + 10 < length; ++at) {
    if (memcmp(dsdt + at, "_S5_", 4) == 0 && dsdt[at + 4] == 0x12) {
      const uint8_t* element = dsdt + at + 7; /* PackageOp, PkgLength, NumElements */
      out->s5_type = element[0] == 0x0a ? element[1] : element[0];
      return;
    }
  }
}

bool acpi_parse(uint64_t rsdp_address, struct platform* out) {
  memset(out, 0, sizeof(*out));
  const uint8_t* rsdp = (const uint8_t*)rsdp_address;
  if (!rsdp || memcmp(rsdp, "RSD PTR ", 8) != 0 || !checksum_ok(rsdp, 20) || rsdp[15] < 2 ||
      !checksum_ok(rsdp, 36)) {
    return false;
  }
  const struct sdt_header* xsdt = (const struct sdt_header*)read64(rsdp + 24);
  if (memcmp(xsdt->signature, "XSDT", 4) != 0 || !checksum_ok(xsdt, xsdt->length)) return false;
  unsigned entries = (xsdt->length - 36) / 8;
  for (unsigned i = 0; i < entries; ++i) {
    const uint8_t* table = (const uint8_t*)read64((const uint8_t*)xsdt + 36 + 8 * i);
    const struct sdt_header* header = (const struct sdt_header*)table;
    if (!checksum_ok(table, header->length)) return false;
    if (memcmp(header->signature, "APIC", 4) == 0) {
      parse_madt(table, header->length, out);
    } else if (memcmp(header->signature, "MCFG", 4) == 0) {
      out->ecam_base = read64(table + 44);
    } else if (memcmp(header->signature, "FACP", 4) == 0) {
      out->pm1a_event = (uint16_t)read32(table + 56);
      out->pm1a_control = (uint16_t)read32(table + 64);
      out->reset_port = (uint16_t)read64(table + 120);
      out->reset_value = table[128];
      const struct sdt_header* dsdt = (const struct sdt_header*)read64(table + 140);
      if (!checksum_ok(dsdt, dsdt->length)) return false;
      parse_dsdt((const uint8_t*)dsdt, dsdt->length, out);
    }
  }
  out->acpi_ok = out->cpu_count > 0 && out->ecam_base != 0 && out->pm1a_control != 0;
  return out->acpi_ok;
}
