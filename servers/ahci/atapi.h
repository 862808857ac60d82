// The MMC (SCSI) commands of an ATAPI CD-ROM drive with a medium that never
// changes: what firmware boots El Torito with and drivers mount with. Pure
// functions of the command block and the medium's size; the controller
// moves the data and keeps the sense.
#pragma once

#include <cstdint>
#include <vector>

namespace cellvisor::atapi {

constexpr uint8_t TEST_UNIT_READY = 0x00;
constexpr uint8_t REQUEST_SENSE = 0x03;
constexpr uint8_t INQUIRY = 0x12;
constexpr uint8_t START_STOP_UNIT = 0x1b;
constexpr uint8_t PREVENT_ALLOW_MEDIUM_REMOVAL = 0x1e;
constexpr uint8_t READ_CAPACITY = 0x25;
constexpr uint8_t READ_10 = 0x28;
constexpr uint8_t SEEK_10 = 0x2b;
constexpr uint8_t READ_TOC = 0x43;
constexpr uint8_t GET_CONFIGURATION = 0x46;
constexpr uint8_t GET_EVENT_STATUS_NOTIFICATION = 0x4a;
constexpr uint8_t READ_DISC_INFORMATION = 0x51;
constexpr uint8_t MODE_SENSE_10 = 0x5a;
constexpr uint8_t READ_12 = 0xa8;
constexpr uint8_t SET_CD_SPEED = 0xbb;
constexpr uint8_t MECHANISM_STATUS = 0xbd;

constexpr uint8_t NO_SENSE = 0x0;
constexpr uint8_t NOT_READY = 0x2;
constexpr uint8_t MEDIUM_ERROR = 0x3;
constexpr uint8_t ILLEGAL_REQUEST = 0x5;
constexpr uint8_t UNIT_ATTENTION = 0x6;
constexpr uint8_t INVALID_OPCODE = 0x20;
constexpr uint8_t LBA_OUT_OF_RANGE = 0x21;
constexpr uint8_t INVALID_FIELD = 0x24;

struct Request {
  const uint8_t* cdb;  // 12 bytes at least.
  uint64_t blocks;     // The medium's size in 2048-byte blocks.
};

struct Reply {
  std::vector<uint8_t> data;  // Data-in, cut to `allocation` by the caller.
  uint32_t allocation = 0;
  uint8_t senseKey = NO_SENSE;  // Non-zero: CHECK CONDITION.
  uint8_t asc = 0;
  uint8_t ascq = 0;
  uint64_t readLba = 0;  // READ(10)/(12): blocks to read from the medium.
  uint32_t readBlocks = 0;
};

// Whether a pending unit attention fails this command (all but the ones a
// driver uses to learn about it).
bool reportsUnitAttention(uint8_t opcode);
// Fixed-format sense data (REQUEST SENSE).
std::vector<uint8_t> senseData(uint8_t key, uint8_t asc, uint8_t ascq);
Reply respond(const Request& request);

}  // namespace cellvisor::atapi
