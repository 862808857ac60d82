#include "servers/ahci/atapi.h"

#include <algorithm>
#include <cstring>
#include <string>

namespace cellvisor::atapi {
namespace {

constexpr uint32_t BLOCK = 2048;
constexpr uint64_t CD_ROM_BYTES = 737'280'000;  // Larger media report the DVD-ROM profile.
constexpr uint16_t PROFILE_CD_ROM = 0x0008;
constexpr uint16_t PROFILE_DVD_ROM = 0x0010;

uint32_t be16(const uint8_t* p) {
  return uint32_t{p[0]} << 8 | p[1];
}
uint32_t be32(const uint8_t* p) {
  return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | p[3];
}
void put16(std::vector<uint8_t>& out, size_t at, uint32_t value) {
  out[at] = static_cast<uint8_t>(value >> 8);
  out[at + 1] = static_cast<uint8_t>(value);
}
void put32(std::vector<uint8_t>& out, size_t at, uint32_t value) {
  put16(out, at, value >> 16);
  put16(out, at + 2, value);
}
void putText(std::vector<uint8_t>& out, size_t at, size_t length, const std::string& text) {
  for (size_t i = 0; i < length; ++i) out[at + i] = static_cast<uint8_t>(i < text.size() ? text[i] : ' ');
}

Reply error(uint8_t key, uint8_t asc) {
  Reply reply;
  reply.senseKey = key;
  reply.asc = asc;
  return reply;
}

Reply data(std::vector<uint8_t> bytes, uint32_t allocation) {
  Reply reply;
  reply.data = std::move(bytes);
  reply.allocation = allocation;
  return reply;
}

// A track address as an LBA or, with MSF, minutes/seconds/frames (+2 s).
void putAddress(std::vector<uint8_t>& out, size_t at, uint64_t lba, bool msf) {
  if (!msf) {
    put32(out, at, static_cast<uint32_t>(lba));
    return;
  }
  uint64_t frames = lba + 150;
  out[at] = 0;
  out[at + 1] = static_cast<uint8_t>(frames / (60 * 75));
  out[at + 2] = static_cast<uint8_t>(frames / 75 % 60);
  out[at + 3] = static_cast<uint8_t>(frames % 75);
}

Reply readToc(const uint8_t* cdb, uint64_t blocks) {
  bool msf = (cdb[1] & 0x02) != 0;
  uint8_t format = cdb[2] & 0x0f;
  if (format == 0) format = cdb[9] >> 6;  // The older place for it.
  uint32_t allocation = be16(cdb + 7);
  if (format == 0) {
    uint8_t start = cdb[6];
    if (start > 1 && start != 0xaa) return error(ILLEGAL_REQUEST, INVALID_FIELD);
    std::vector<uint8_t> out(4);
    out[2] = 1;
    out[3] = 1;
    auto descriptor = [&](uint8_t track, uint64_t lba) {
      size_t at = out.size();
      out.resize(at + 8, 0);
      out[at + 1] = 0x14;  // Data track, ADR 1.
      out[at + 2] = track;
      putAddress(out, at + 4, lba, msf);
    };
    if (start != 0xaa) descriptor(1, 0);
    descriptor(0xaa, blocks);  // The lead-out.
    put16(out, 0, static_cast<uint32_t>(out.size() - 2));
    return data(std::move(out), allocation);
  }
  if (format == 1) {  // Session information: one session, track 1 at 0.
    std::vector<uint8_t> out(12, 0);
    put16(out, 0, 10);
    out[2] = 1;
    out[3] = 1;
    out[5] = 0x14;
    out[6] = 1;
    putAddress(out, 8, 0, msf);
    return data(std::move(out), allocation);
  }
  return error(ILLEGAL_REQUEST, INVALID_FIELD);
}

Reply modeSense(const uint8_t* cdb) {
  uint8_t control = cdb[2] >> 6;
  uint8_t page = cdb[2] & 0x3f;
  uint32_t allocation = be16(cdb + 7);
  if (control == 3) return error(ILLEGAL_REQUEST, 0x39);  // Saved values: none.
  std::vector<uint8_t> out(8, 0);
  out[2] = 0x70;  // Medium type: door closed, no disc type reported.
  auto capabilities = [&] {
    size_t at = out.size();
    out.resize(at + 22, 0);
    out[at] = 0x2a;
    out[at + 1] = 0x14;
    out[at + 2] = 0x3b;  // Reads CD-R/RW, DVD-ROM/R/RAM.
    out[at + 4] = 0x71;
    out[at + 5] = 0x60;
    out[at + 6] = 0x29;  // Tray, eject, lock.
    put16(out, at + 8, 704);
    put16(out, at + 10, 2);
    put16(out, at + 12, 512);
    put16(out, at + 14, 704);
  };
  auto errorRecovery = [&] {
    size_t at = out.size();
    out.resize(at + 8, 0);
    out[at] = 0x01;
    out[at + 1] = 0x06;
    out[at + 3] = 0x05;
  };
  if (page == 0x2a) {
    capabilities();
  } else if (page == 0x01) {
    errorRecovery();
  } else if (page == 0x3f) {
    errorRecovery();
    capabilities();
  } else {
    return error(ILLEGAL_REQUEST, INVALID_FIELD);
  }
  put16(out, 0, static_cast<uint32_t>(out.size() - 2));
  return data(std::move(out), allocation);
}

}  // namespace

bool reportsUnitAttention(uint8_t opcode) {
  return opcode != INQUIRY && opcode != REQUEST_SENSE && opcode != GET_CONFIGURATION &&
         opcode != GET_EVENT_STATUS_NOTIFICATION;
}

std::vector<uint8_t> senseData(uint8_t key, uint8_t asc, uint8_t ascq) {
  std::vector<uint8_t> out(18, 0);
  out[0] = 0x70;
  out[2] = key;
  out[7] = 10;
  out[12] = asc;
  out[13] = ascq;
  return out;
}

Reply respond(const Request& request) {
  const uint8_t* cdb = request.cdb;
  switch (cdb[0]) {
    case TEST_UNIT_READY:
    case PREVENT_ALLOW_MEDIUM_REMOVAL:
    case START_STOP_UNIT:
    case SET_CD_SPEED:
      return {};
    case SEEK_10:
      if (be32(cdb + 2) >= request.blocks) return error(ILLEGAL_REQUEST, LBA_OUT_OF_RANGE);
      return {};
    case INQUIRY: {
      uint32_t allocation = be16(cdb + 3);
      if ((cdb[1] & 1) != 0) {
        if (cdb[2] != 0x00) return error(ILLEGAL_REQUEST, INVALID_FIELD);
        return data({0x05, 0x00, 0x00, 0x01, 0x00}, allocation);  // Supported VPD pages: this one.
      }
      std::vector<uint8_t> out(36, 0);
      out[0] = 0x05;  // CD/DVD device.
      out[1] = 0x80;  // Removable.
      out[2] = 0x05;
      out[3] = 0x32;
      out[4] = 31;
      putText(out, 8, 8, "CELLVSR");
      putText(out, 16, 16, "Virtual CD-ROM");
      putText(out, 32, 4, "1.0");
      return data(std::move(out), allocation);
    }
    case READ_CAPACITY: {
      std::vector<uint8_t> out(8);
      put32(out, 0, static_cast<uint32_t>(std::min<uint64_t>(request.blocks - 1, 0xffffffff)));
      put32(out, 4, BLOCK);
      return data(std::move(out), 8);
    }
    case READ_10:
    case READ_12: {
      uint64_t lba = be32(cdb + 2);
      uint32_t count = cdb[0] == READ_10 ? be16(cdb + 7) : be32(cdb + 6);
      if (lba > request.blocks || count > request.blocks - lba)
        return error(ILLEGAL_REQUEST, LBA_OUT_OF_RANGE);
      Reply reply;
      reply.readLba = lba;
      reply.readBlocks = count;
      return reply;
    }
    case READ_TOC:
      return readToc(cdb, request.blocks);
    case GET_CONFIGURATION: {
      uint32_t allocation = be16(cdb + 7);
      if (be16(cdb + 2) != 0) return error(ILLEGAL_REQUEST, INVALID_FIELD);
      uint16_t current = uint64_t{request.blocks} * BLOCK > CD_ROM_BYTES ? PROFILE_DVD_ROM : PROFILE_CD_ROM;
      std::vector<uint8_t> out(8 + 4 + 8, 0);
      put16(out, 6, current);
      // Feature 0, the profile list: DVD-ROM and CD-ROM, the current one marked.
      out[10] = 0x03;
      out[11] = 8;
      put16(out, 12, PROFILE_DVD_ROM);
      out[14] = current == PROFILE_DVD_ROM ? 1 : 0;
      put16(out, 16, PROFILE_CD_ROM);
      out[18] = current == PROFILE_CD_ROM ? 1 : 0;
      put32(out, 0, static_cast<uint32_t>(out.size() - 4));
      return data(std::move(out), allocation);
    }
    case GET_EVENT_STATUS_NOTIFICATION: {
      uint32_t allocation = be16(cdb + 7);
      if ((cdb[1] & 1) == 0) return error(ILLEGAL_REQUEST, INVALID_FIELD);  // Only polled.
      if ((cdb[4] & 0x10) == 0) {
        std::vector<uint8_t> out(4, 0);
        out[2] = 0x80;  // No event class available.
        out[3] = 0x10;
        return data(std::move(out), allocation);
      }
      std::vector<uint8_t> out(8, 0);
      put16(out, 0, 6);
      out[2] = 0x04;  // Media class.
      out[3] = 0x10;
      out[5] = 0x02;  // Media present, tray closed, no event.
      return data(std::move(out), allocation);
    }
    case READ_DISC_INFORMATION: {
      if ((cdb[1] & 0x07) != 0) return error(ILLEGAL_REQUEST, INVALID_FIELD);
      std::vector<uint8_t> out(34, 0);
      put16(out, 0, 32);
      out[2] = 0x0e;  // Finalized, last session complete.
      out[3] = 1;
      out[4] = 1;
      out[5] = 1;
      out[6] = 1;
      out[7] = 0x20;
      return data(std::move(out), be16(cdb + 7));
    }
    case MODE_SENSE_10:
      return modeSense(cdb);
    case MECHANISM_STATUS: {
      std::vector<uint8_t> out(8, 0);
      out[5] = 1;
      return data(std::move(out), be16(cdb + 8));
    }
    default:
      return error(ILLEGAL_REQUEST, INVALID_OPCODE);
  }
}

}  // namespace cellvisor::atapi
