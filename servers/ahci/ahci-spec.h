// AHCI 1.3 and SATA definitions the HBA model uses: register offsets and
// bits of the generic host control and port registers, the command list and
// table layouts, the FIS types, and the ATA command opcodes.
#pragma once

#include <cstdint>

namespace cellvisor::ahci {

// Generic host control, at the start of ABAR (BAR5).
constexpr uint64_t CAP = 0x00;
constexpr uint64_t GHC = 0x04;
constexpr uint64_t IS = 0x08;
constexpr uint64_t PI = 0x0c;
constexpr uint64_t VS = 0x10;
constexpr uint64_t CCC_CTL = 0x14;
constexpr uint64_t CCC_PORTS = 0x18;
constexpr uint64_t EM_LOC = 0x1c;
constexpr uint64_t EM_CTL = 0x20;
constexpr uint64_t CAP2 = 0x24;
constexpr uint64_t BOHC = 0x28;

constexpr uint32_t CAP_S64A = 1u << 31;  // 64-bit addressing.
constexpr uint32_t CAP_SNCQ = 1u << 30;  // Native command queuing.
constexpr uint32_t CAP_SSS = 1u << 27;   // Staggered spin-up.
constexpr uint32_t CAP_SCLO = 1u << 24;  // Command list override.
constexpr uint32_t CAP_ISS_GEN3 = 3u << 20;
constexpr uint32_t CAP_SAM = 1u << 18;  // AHCI only (no legacy IDE).
constexpr uint32_t CAP_NCS_SHIFT = 8;   // Command slots - 1.

constexpr uint32_t GHC_HR = 1u << 0;  // HBA reset.
constexpr uint32_t GHC_IE = 1u << 1;  // Interrupt enable.
constexpr uint32_t GHC_AE = 1u << 31;
constexpr uint32_t VERSION_1_3 = 0x00010300;

// Port registers, PORT_BASE + PORT_STRIDE * port.
constexpr uint64_t PORT_BASE = 0x100;
constexpr uint64_t PORT_STRIDE = 0x80;
constexpr uint64_t PX_CLB = 0x00;
constexpr uint64_t PX_CLBU = 0x04;
constexpr uint64_t PX_FB = 0x08;
constexpr uint64_t PX_FBU = 0x0c;
constexpr uint64_t PX_IS = 0x10;
constexpr uint64_t PX_IE = 0x14;
constexpr uint64_t PX_CMD = 0x18;
constexpr uint64_t PX_TFD = 0x20;
constexpr uint64_t PX_SIG = 0x24;
constexpr uint64_t PX_SSTS = 0x28;
constexpr uint64_t PX_SCTL = 0x2c;
constexpr uint64_t PX_SERR = 0x30;
constexpr uint64_t PX_SACT = 0x34;
constexpr uint64_t PX_CI = 0x38;
constexpr uint64_t PX_SNTF = 0x3c;
constexpr uint64_t PX_FBS = 0x40;

// PxIS / PxIE bits.
constexpr uint32_t PXIS_DHRS = 1u << 0;          // D2H register FIS received.
constexpr uint32_t PXIS_PSS = 1u << 1;           // PIO setup FIS received.
constexpr uint32_t PXIS_SDBS = 1u << 3;          // Set device bits FIS received.
constexpr uint32_t PXIS_DPS = 1u << 5;           // A PRD with I set was processed.
constexpr uint32_t PXIS_PCS = 1u << 6;           // Port connect change.
constexpr uint32_t PXIS_PRCS = 1u << 22;         // PhyRdy change.
constexpr uint32_t PXIS_IFS = 1u << 27;          // Interface fatal error.
constexpr uint32_t PXIS_HBDS = 1u << 28;         // Host bus data error.
constexpr uint32_t PXIS_HBFS = 1u << 29;         // Host bus fatal error.
constexpr uint32_t PXIS_TFES = 1u << 30;         // Task file error.
constexpr uint32_t PXIS_WRITABLE = 0xfd8000afu;  // Implemented, write-one-to-clear.

// PxCMD bits.
constexpr uint32_t PXCMD_ST = 1u << 0;
constexpr uint32_t PXCMD_SUD = 1u << 1;
constexpr uint32_t PXCMD_POD = 1u << 2;
constexpr uint32_t PXCMD_CLO = 1u << 3;
constexpr uint32_t PXCMD_FRE = 1u << 4;
constexpr uint32_t PXCMD_CCS_SHIFT = 8;
constexpr uint32_t PXCMD_FR = 1u << 14;
constexpr uint32_t PXCMD_CR = 1u << 15;
constexpr uint32_t PXCMD_ATAPI = 1u << 24;
constexpr uint32_t PXCMD_ICC_ACTIVE = 1u << 28;

// Task file status and error bits (PxTFD: status in 7:0, error in 15:8).
constexpr uint8_t ATA_ERR = 1u << 0;
constexpr uint8_t ATA_DRQ = 1u << 3;
constexpr uint8_t ATA_DSC = 1u << 4;  // Seek complete (ATA-1 name; reads as set).
constexpr uint8_t ATA_DF = 1u << 5;
constexpr uint8_t ATA_DRDY = 1u << 6;
constexpr uint8_t ATA_BSY = 1u << 7;
constexpr uint8_t ATA_ABRT = 1u << 2;  // Error register: command aborted.
constexpr uint8_t ATA_IDNF = 1u << 4;  // Error register: address not found.

constexpr uint32_t SIG_ATA = 0x00000101;
constexpr uint32_t SIG_ATAPI = 0xeb140101;
// PxSSTS: device present and communication established (DET=3), Gen3
// speed, interface active.
constexpr uint32_t SSTS_ESTABLISHED = 0x133;
constexpr uint32_t SCTL_DET_MASK = 0xf;
constexpr uint32_t SCTL_DET_COMRESET = 1;

// Command list: 32 headers of 32 bytes; received FIS area: 256 bytes.
constexpr uint32_t SLOTS = 32;
constexpr uint32_t COMMAND_HEADER_SIZE = 32;
constexpr uint64_t CLB_ALIGN = 1024;
constexpr uint64_t FB_ALIGN = 256;
constexpr uint32_t RECEIVED_FIS_SIZE = 256;
constexpr uint32_t RFIS_PIO_SETUP = 0x20;
constexpr uint32_t RFIS_D2H = 0x40;
constexpr uint32_t RFIS_SET_DEVICE_BITS = 0x58;

struct CommandHeader {
  uint32_t flags;  // CFL 4:0, A 5, W 6, P 7, R 8, B 9, C 10, PMP 15:12, PRDTL 31:16.
  uint32_t prdbc;  // Bytes transferred, written back.
  uint32_t ctba;   // Command table, 128-byte aligned.
  uint32_t ctbau;
  uint32_t reserved[4];
};
static_assert(sizeof(CommandHeader) == COMMAND_HEADER_SIZE);
constexpr uint32_t HEADER_ATAPI = 1u << 5;
constexpr uint32_t HEADER_WRITE = 1u << 6;
constexpr uint32_t HEADER_CLEAR_BUSY = 1u << 10;

// Command table: the command FIS, the ATAPI command, then the PRD table.
constexpr uint32_t TABLE_CFIS = 0x00;
constexpr uint32_t TABLE_ACMD = 0x40;
constexpr uint32_t TABLE_PRDT = 0x80;
constexpr uint32_t CFIS_SIZE = 64;
constexpr uint32_t ACMD_SIZE = 16;
constexpr uint32_t MAX_PRDT_ENTRIES = 65535;

struct PrdEntry {
  uint32_t dba;
  uint32_t dbau;
  uint32_t reserved;
  uint32_t flags;  // DBC 21:0 (byte count - 1, bit 0 set), I 31.
};
static_assert(sizeof(PrdEntry) == 16);
constexpr uint32_t PRD_BYTE_COUNT_MASK = 0x3fffff;
constexpr uint32_t PRD_INTERRUPT = 1u << 31;

// FIS types.
constexpr uint8_t FIS_H2D_REGISTER = 0x27;
constexpr uint8_t FIS_D2H_REGISTER = 0x34;
constexpr uint8_t FIS_SET_DEVICE_BITS = 0xa1;
constexpr uint8_t FIS_PIO_SETUP = 0x5f;
constexpr uint8_t H2D_COMMAND = 1u << 7;  // Byte 1: a command, not a control update.
constexpr uint8_t FIS_INTERRUPT = 1u << 6;

// ATA commands.
constexpr uint8_t DATA_SET_MANAGEMENT = 0x06;
constexpr uint8_t READ_DMA_EXT = 0x25;
constexpr uint8_t READ_LOG_EXT = 0x2f;
constexpr uint8_t WRITE_DMA_EXT = 0x35;
constexpr uint8_t READ_VERIFY_EXT = 0x42;
constexpr uint8_t READ_VERIFY = 0x40;
constexpr uint8_t READ_FPDMA_QUEUED = 0x60;
constexpr uint8_t WRITE_FPDMA_QUEUED = 0x61;
constexpr uint8_t INITIALIZE_DEVICE_PARAMETERS = 0x91;
constexpr uint8_t PACKET = 0xa0;
constexpr uint8_t IDENTIFY_PACKET_DEVICE = 0xa1;
constexpr uint8_t READ_DMA = 0xc8;
constexpr uint8_t WRITE_DMA = 0xca;
constexpr uint8_t SET_MULTIPLE_MODE = 0xc6;
constexpr uint8_t STANDBY_IMMEDIATE = 0xe0;
constexpr uint8_t IDLE_IMMEDIATE = 0xe1;
constexpr uint8_t STANDBY = 0xe2;
constexpr uint8_t IDLE = 0xe3;
constexpr uint8_t CHECK_POWER_MODE = 0xe5;
constexpr uint8_t SLEEP = 0xe6;
constexpr uint8_t FLUSH_CACHE = 0xe7;
constexpr uint8_t FLUSH_CACHE_EXT = 0xea;
constexpr uint8_t IDENTIFY_DEVICE = 0xec;
constexpr uint8_t SET_FEATURES = 0xef;
constexpr uint8_t SECURITY_FREEZE_LOCK = 0xf5;

}  // namespace cellvisor::ahci
