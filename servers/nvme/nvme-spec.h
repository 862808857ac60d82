// NVM Express 1.4 as the controller speaks it: register offsets, command
// and completion layouts, opcodes and status codes. Names follow the
// specification's; values are its.
#pragma once

#include <cstdint>

namespace cellvisor::nvme {

// Controller registers (BAR0), 3.1.
constexpr uint64_t REG_CAP = 0x00;
constexpr uint64_t REG_VS = 0x08;
constexpr uint64_t REG_INTMS = 0x0c;
constexpr uint64_t REG_INTMC = 0x10;
constexpr uint64_t REG_CC = 0x14;
constexpr uint64_t REG_CSTS = 0x1c;
constexpr uint64_t REG_NSSR = 0x20;
constexpr uint64_t REG_AQA = 0x24;
constexpr uint64_t REG_ASQ = 0x28;
constexpr uint64_t REG_ACQ = 0x30;
constexpr uint64_t REG_CMBLOC = 0x38;
constexpr uint64_t REG_CMBSZ = 0x3c;
constexpr uint64_t DOORBELLS = 0x1000;  // SQ y tail at 0x1000 + 8y, CQ y head 4 bytes after (DSTRD 0).

constexpr uint32_t VERSION_1_4 = 0x00010400;

// CC
constexpr uint32_t CC_EN = 1u << 0;
constexpr uint32_t CC_CSS_SHIFT = 4;      // 3 bits
constexpr uint32_t CC_MPS_SHIFT = 7;      // 4 bits
constexpr uint32_t CC_AMS_SHIFT = 11;     // 3 bits
constexpr uint32_t CC_SHN_SHIFT = 14;     // 2 bits
constexpr uint32_t CC_IOSQES_SHIFT = 16;  // 4 bits
constexpr uint32_t CC_IOCQES_SHIFT = 20;  // 4 bits
// CSTS
constexpr uint32_t CSTS_RDY = 1u << 0;
constexpr uint32_t CSTS_CFS = 1u << 1;
constexpr uint32_t CSTS_SHST_COMPLETE = 2u << 2;

constexpr uint32_t PAGE = 4096;  // CC.MPS 0: the only page size offered (CAP.MPSMIN = MPSMAX = 0).

// A submission queue entry (64 bytes) and a completion queue entry (16).
struct Command {
  uint8_t opcode;
  uint8_t flags;  // Bits 1:0 fused, 7:6 PSDT (0: PRPs, 1 or 2: SGLs).
  uint16_t cid;
  uint32_t nsid;
  uint64_t reserved;
  uint64_t metadata;
  uint64_t dptr[2];  // PRP1, PRP2 or the first SGL descriptor.
  uint32_t cdw10, cdw11, cdw12, cdw13, cdw14, cdw15;
};
static_assert(sizeof(Command) == 64);

struct Completion {
  uint32_t dw0;
  uint32_t dw1;
  uint16_t sqHead;
  uint16_t sqId;
  uint16_t cid;
  uint16_t status;  // Bit 0: phase tag; 15:1 the status field.
};
static_assert(sizeof(Completion) == 16);

// Status: (SCT << 8) | SC, shifted into bits 15:1 of the CQE with DNR (bit 14 of the field).
constexpr uint16_t status(uint8_t type, uint8_t code) {
  return static_cast<uint16_t>((type << 8) | code);
}
constexpr uint16_t SUCCESS = 0;
constexpr uint16_t INVALID_OPCODE = status(0, 0x01);
constexpr uint16_t INVALID_FIELD = status(0, 0x02);
constexpr uint16_t DATA_TRANSFER_ERROR = status(0, 0x04);
constexpr uint16_t INTERNAL_ERROR = status(0, 0x06);
constexpr uint16_t ABORTED_SQ_DELETION = status(0, 0x08);
constexpr uint16_t INVALID_NAMESPACE = status(0, 0x0b);
constexpr uint16_t SGL_SEGMENT_INVALID = status(0, 0x0d);  // Invalid number of SGL descriptors.
constexpr uint16_t SGL_DATA_LENGTH_INVALID = status(0, 0x0f);
constexpr uint16_t SGL_TYPE_INVALID = status(0, 0x11);
constexpr uint16_t PRP_OFFSET_INVALID = status(0, 0x13);
constexpr uint16_t LBA_OUT_OF_RANGE = status(0, 0x80);
constexpr uint16_t COMPLETION_QUEUE_INVALID = status(1, 0x00);
constexpr uint16_t INVALID_QUEUE_IDENTIFIER = status(1, 0x01);
constexpr uint16_t INVALID_QUEUE_SIZE = status(1, 0x02);
constexpr uint16_t ASYNC_EVENT_LIMIT_EXCEEDED = status(1, 0x05);
constexpr uint16_t INVALID_FORMAT = status(1, 0x0a);
constexpr uint16_t INVALID_QUEUE_DELETION = status(1, 0x0c);
constexpr uint16_t FEATURE_NOT_SAVEABLE = status(1, 0x0d);
constexpr uint16_t INVALID_INTERRUPT_VECTOR = status(1, 0x08);
constexpr uint16_t INVALID_LOG_PAGE = status(1, 0x09);
constexpr uint16_t WRITE_FAULT = status(2, 0x80);
constexpr uint16_t UNRECOVERED_READ_ERROR = status(2, 0x81);
constexpr uint16_t ACCESS_DENIED = status(2, 0x86);
constexpr uint16_t DO_NOT_RETRY = 1u << 14;  // In the status field: DNR.

// Admin opcodes.
enum AdminOpcode : uint8_t {
  DELETE_IO_SQ = 0x00,
  CREATE_IO_SQ = 0x01,
  GET_LOG_PAGE = 0x02,
  DELETE_IO_CQ = 0x04,
  CREATE_IO_CQ = 0x05,
  IDENTIFY = 0x06,
  ABORT = 0x08,
  SET_FEATURES = 0x09,
  GET_FEATURES = 0x0a,
  ASYNC_EVENT_REQUEST = 0x0c,
  KEEP_ALIVE = 0x18,
  DOORBELL_BUFFER_CONFIG = 0x7c,
  FORMAT_NVM = 0x80,
};

// NVM command set opcodes.
enum IoOpcode : uint8_t {
  FLUSH = 0x00,
  WRITE = 0x01,
  READ = 0x02,
  COMPARE = 0x05,
  WRITE_ZEROES = 0x08,
  DATASET_MANAGEMENT = 0x09,
};

// Feature identifiers.
enum Feature : uint8_t {
  ARBITRATION = 0x01,
  POWER_MANAGEMENT = 0x02,
  TEMPERATURE_THRESHOLD = 0x04,
  ERROR_RECOVERY = 0x05,
  VOLATILE_WRITE_CACHE = 0x06,
  NUMBER_OF_QUEUES = 0x07,
  INTERRUPT_COALESCING = 0x08,
  INTERRUPT_VECTOR_CONFIG = 0x09,
  WRITE_ATOMICITY = 0x0a,
  ASYNC_EVENT_CONFIG = 0x0b,
  TIMESTAMP = 0x0e,
};

}  // namespace cellvisor::nvme
