// What an AHCI server keeps in its state segment's body: PCI config and
// MSI-X, the HBA's and every port's registers as the driver programmed them,
// and which command slots were taken from PxCI and not yet completed, so a
// restarted server re-executes them (reads, writes, flushes, IDENTIFY and
// ATAPI commands are all idempotent) and completes each exactly once.
#pragma once

#include <cstdint>

#include "pci/msix.h"

namespace cellvisor::ahci {

constexpr uint32_t STATE_MAGIC = 0x41435643;  // "CVCA"
constexpr uint32_t STATE_LAYOUT_VERSION = 2;  // 2: up to 32 ports.
constexpr uint16_t VECTORS = 1;
constexpr uint32_t MAX_PORTS = 32;

struct PortState {
  uint32_t clb;
  uint32_t clbu;
  uint32_t fb;
  uint32_t fbu;
  uint32_t is;
  uint32_t ie;
  uint32_t cmd;
  uint32_t tfd;
  uint32_t sig;
  uint32_t sctl;
  uint32_t serr;
  uint32_t sact;
  uint32_t ci;
  uint32_t sntf;
  uint32_t taken;  // Slots taken from CI and not yet completed.
  uint32_t ncq;    // Of those, the queued (FPDMA) ones.
  // The NCQ error log (READ LOG EXT page 10h): the failed tag, 0x80 = none.
  uint8_t ncqErrorTag;
  uint8_t ncqErrorStatus;
  uint8_t ncqErrorCode;
  uint8_t reserved;
  // ATAPI: the sense of the last command (REQUEST SENSE), and a unit
  // attention owed once after a reset.
  uint8_t senseKey;
  uint8_t asc;
  uint8_t ascq;
  uint8_t unitAttention;
  uint64_t sectorsRead;
  uint64_t sectorsWritten;
};

struct AhciState {
  uint8_t pciConfig[256];
  pci::MsixEntry msix[VECTORS];
  uint64_t msixPending[1];
  uint32_t ghc;
  uint32_t is;
  uint32_t portCount;  // As the options said when the state was set up.
  uint32_t reserved;
  PortState ports[MAX_PORTS];
};

}  // namespace cellvisor::ahci
