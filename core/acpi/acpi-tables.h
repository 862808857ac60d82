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

// Writes the tables at layout::ACPI_ADDRESS and returns the RSDP's address.
uint64_t writeAcpiTables(GuestMemory& memory, const AcpiLayout& acpi);

// Exposed for tests: the bytes of one table with a valid header checksum.
uint8_t acpiChecksum(const uint8_t* data, size_t length);

}  // namespace cellvisor
