// ACPI tables for the guest: RSDP, XSDT, FADT (+FACS, DSDT with \_S5), MADT
// (one LAPIC per vCPU, the IOAPIC, ISA overrides) and MCFG (ECAM). They are
// how the guest finds its CPUs, PCI config space, the power button and the
// poweroff/reset registers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace cellvisor {

class GuestMemory;

struct AcpiLayout {
  uint32_t cpuCount;
  uint64_t ecamBase;
  uint8_t ecamEndBus;
  uint16_t pmEventBlock;
  uint16_t pmControlBlock;
  uint16_t pmTimerBlock;
  uint16_t sciIrq;
  uint16_t resetPort;
  uint8_t resetValue;
};

// The tables as one blob laid out to start at guest address `base`, the
// RSDP apart, and where their pointers and checksums are, so firmware can
// place them itself (fw_cfg's table-loader) when `base` is 0.
struct AcpiTables {
  struct Pointer {
    bool inRsdp;  // The field is in the RSDP, else in the tables blob.
    uint32_t offset;
    uint8_t size;  // 4 or 8; the field holds an address in the tables blob.
  };
  struct Checksum {
    bool inRsdp;
    uint32_t field;  // The checksum byte.
    uint32_t start;
    uint32_t length;
  };
  std::vector<uint8_t> tables;
  std::vector<uint8_t> rsdp;
  std::vector<Pointer> pointers;
  std::vector<Checksum> checksums;
};
AcpiTables buildAcpiTables(const AcpiLayout& acpi, uint64_t base);

// Direct-kernel boot: writes the tables at layout::ACPI_ADDRESS and returns
// the RSDP's address.
uint64_t writeAcpiTables(GuestMemory& memory, const AcpiLayout& acpi);

// Exposed for tests: the bytes of one table with a valid header checksum.
uint8_t acpiChecksum(const uint8_t* data, size_t length);

}  // namespace cellvisor
