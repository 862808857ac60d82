// Hands the core's ACPI tables to firmware through fw_cfg, as QEMU does:
// the tables in "etc/acpi/tables", the RSDP in "etc/acpi/rsdp", and
// "etc/table-loader", a script of fixed-size commands telling the firmware
// to allocate both, patch the pointers between them once it knows where they
// went, and fix the checksums. The core stays the one author of ACPI.
#pragma once

#include "core/acpi/acpi-tables.h"

namespace cellvisor {

class FwCfg;

// `tables` must be built for base 0 (pointers as offsets in the blob).
void addAcpiTableLoader(FwCfg& fwCfg, const AcpiTables& tables);

}  // namespace cellvisor
