#include "servers/ahci/ahci-port.h"

#include <limits.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "base/guest-memory.h"
#include "servers/ahci/ata-identify.h"
#include "servers/ahci/atapi.h"

namespace cellvisor {
namespace {

using namespace ahci;

constexpr uint8_t OK_STATUS = ATA_DRDY | ATA_DSC;
constexpr uint8_t ERROR_STATUS = ATA_DRDY | ATA_ERR;
constexpr uint32_t PXIE_WRITABLE = 0xfdc000ff;
constexpr uint32_t PXCMD_WRITABLE = PXCMD_ST | PXCMD_SUD | PXCMD_POD | PXCMD_CLO | PXCMD_FRE | PXCMD_ATAPI |
                                    (1u << 17) | (1u << 23) | (1u << 25) | (1u << 26) | (1u << 27);
constexpr uint8_t NCQ_LOG = 0x10;
constexpr uint8_t NO_NCQ_ERROR = 0x80;

uint64_t join(uint32_t low, uint32_t high) {
  return (uint64_t{high} << 32) | low;
}

}  // namespace

AhciPort::AhciPort(const AhciPortOptions& options, GuestMemory& memory, BlockBackend& backend,
                   PortState& state, std::function<void()> interruptChanged)
    : options_(options),
      memory_(memory),
      backend_(backend),
      state_(state),
      interruptChanged_(std::move(interruptChanged)) {
  sectorSize_ = options_.cd ? CD_SECTOR : options_.logicalSectorSize;
  sectors_ = backend_.sizeBytes() / sectorSize_;
  if (sectors_ == 0) {
    throw std::invalid_argument("ahci: " + options_.path + ": smaller than one " +
                                std::to_string(sectorSize_) + "-byte sector");
  }
}

void AhciPort::raise(uint32_t bits) {
  state_.is |= bits;
  interruptChanged_();
}

void AhciPort::resumeTaken() {
  PortState& port = state_;
  port.ncq &= port.taken;
  for (uint32_t slot = 0; slot < SLOTS; ++slot) {
    uint32_t bit = 1u << slot;
    if ((port.taken & bit) == 0) continue;
    // A predecessor that died between handing a slot back (PxCI or PxSACT
    // cleared) and forgetting it had finished it: the driver may already
    // count it done, so running it again could complete a later command
    // that reuses the slot.
    bool stillOwned = (port.ncq & bit) != 0 ? (port.sact & bit) != 0 : (port.ci & bit) != 0;
    if (!stillOwned) {
      port.taken &= ~bit;
      port.ncq &= ~bit;
      continue;
    }
    execute(slot);
  }
  issue();
  backend_.flushSubmissions();
}

void AhciPort::pause() {
  paused_ = true;
  while (backend_.outstanding() != 0) {
    backend_.waitForCompletion();
    onCompletions();
  }
}

void AhciPort::resume() {
  paused_ = false;
  issue();
  backend_.flushSubmissions();
}

void AhciPort::abandon() {
  ++generation_;
  backend_.dropWaiting();
  while (backend_.outstanding() != 0) {
    backend_.waitForCompletion();
    backend_.reap([](uint64_t, int32_t) {});
  }
}

uint32_t AhciPort::read(uint64_t offset) const {
  const PortState& port = state_;
  switch (offset) {
    case PX_CLB:
      return port.clb;
    case PX_CLBU:
      return port.clbu;
    case PX_FB:
      return port.fb;
    case PX_FBU:
      return port.fbu;
    case PX_IS:
      return port.is;
    case PX_IE:
      return port.ie;
    case PX_CMD:
      return port.cmd;
    case PX_TFD:
      return port.tfd;
    case PX_SIG:
      return port.sig;
    case PX_SSTS:
      return (port.sctl & SCTL_DET_MASK) == SCTL_DET_COMRESET ? 0 : SSTS_ESTABLISHED;
    case PX_SCTL:
      return port.sctl;
    case PX_SERR:
      return port.serr;
    case PX_SACT:
      return port.sact;
    case PX_CI:
      return port.ci;
    default:
      return 0;
  }
}

void AhciPort::write(uint64_t offset, uint32_t value) {
  PortState& port = state_;
  switch (offset) {
    case PX_CLB:
      port.clb = value & ~uint32_t(CLB_ALIGN - 1);
      break;
    case PX_CLBU:
      port.clbu = value;
      break;
    case PX_FB:
      port.fb = value & ~uint32_t(FB_ALIGN - 1);
      break;
    case PX_FBU:
      port.fbu = value;
      break;
    case PX_IS:
      port.is &= ~value;
      interruptChanged_();
      break;
    case PX_IE:
      port.ie = value & PXIE_WRITABLE;
      interruptChanged_();
      break;
    case PX_CMD: {
      bool wasStarted = (port.cmd & PXCMD_ST) != 0;
      port.cmd = (port.cmd & ~PXCMD_WRITABLE) | (value & PXCMD_WRITABLE);
      if ((port.cmd & PXCMD_CLO) != 0) {
        port.tfd &= ~uint32_t(ATA_BSY | ATA_DRQ);
        port.cmd &= ~PXCMD_CLO;
      }
      if (wasStarted && (port.cmd & PXCMD_ST) == 0) {
        // Stopping the engine drops whatever was issued; completions of
        // operations still in the backend are ignored (a new generation).
        port.ci = 0;
        port.sact = 0;
        port.taken = 0;
        port.ncq = 0;
        ++generation_;
      }
      updateCommandStatus();
      if (!wasStarted && (port.cmd & PXCMD_ST) != 0) issue();
      break;
    }
    case PX_SCTL: {
      bool resetting = (port.sctl & SCTL_DET_MASK) == SCTL_DET_COMRESET;
      port.sctl = value & 0xfff;
      if ((value & SCTL_DET_MASK) == SCTL_DET_COMRESET) {
        port.tfd = 0x7f;  // Link down while COMRESET is held.
        port.sig = 0xffffffff;
      } else if (resetting) {
        linkReset();
      }
      break;
    }
    case PX_SERR:
      port.serr &= ~value;
      break;
    case PX_SACT:
      if ((port.cmd & PXCMD_ST) != 0) port.sact |= value;
      break;
    case PX_CI:
      if ((port.cmd & PXCMD_ST) != 0) {
        port.ci |= value;
        issue();
      }
      break;
    default:
      break;
  }
}

void AhciPort::hbaReset() {
  ++generation_;
  PortState& port = state_;
  PortState kept = port;
  port = PortState{};
  // The command list and FIS base survive a reset (AHCI 1.3 10.4.3), and
  // so do the statistics.
  port.clb = kept.clb;
  port.clbu = kept.clbu;
  port.fb = kept.fb;
  port.fbu = kept.fbu;
  port.sectorsRead = kept.sectorsRead;
  port.sectorsWritten = kept.sectorsWritten;
  port.cmd = PXCMD_SUD | PXCMD_POD;
  port.ncqErrorTag = NO_NCQ_ERROR;
  linkReset();
}

void AhciPort::linkReset() {
  PortState& port = state_;
  port.serr = 0;
  port.senseKey = 0;
  port.asc = 0;
  port.ascq = 0;
  port.unitAttention = options_.cd ? 1 : 0;  // A CD reports the reset once.
  // The device's signature, as its first D2H register FIS after a reset.
  uint8_t fis[20] = {FIS_D2H_REGISTER, 0, static_cast<uint8_t>(options_.cd ? 0 : OK_STATUS), 0x01, 0x01};
  if (options_.cd) {
    fis[5] = 0x14;
    fis[6] = 0xeb;
  }
  fis[12] = 0x01;
  port.sig = options_.cd ? SIG_ATAPI : SIG_ATA;
  port.tfd = (uint32_t{0x01} << 8) | fis[2];
  writeReceivedFis(RFIS_D2H, fis, sizeof(fis));
}

void AhciPort::updateCommandStatus() {
  PortState& port = state_;
  port.cmd &= ~(PXCMD_CR | PXCMD_FR);
  if ((port.cmd & PXCMD_ST) != 0) port.cmd |= PXCMD_CR;
  if ((port.cmd & PXCMD_FRE) != 0) port.cmd |= PXCMD_FR;
}

void AhciPort::issue() {
  PortState& port = state_;
  if (paused_ || (port.cmd & PXCMD_ST) == 0) return;
  uint32_t fresh = port.ci & ~port.taken;
  for (uint32_t slot = 0; slot < SLOTS; ++slot) {
    if ((fresh & (1u << slot)) == 0) continue;
    port.taken |= 1u << slot;
    execute(slot);
  }
}

bool AhciPort::readCommand(uint32_t slot, std::array<uint8_t, CFIS_SIZE>& fis, CommandHeader& header,
                           uint64_t& table) {
  uint64_t list = join(state_.clb, state_.clbu);
  uint64_t at = list + uint64_t{slot} * COMMAND_HEADER_SIZE;
  if (!memory_.contains(at, sizeof(header))) return false;
  memory_.read(at, {reinterpret_cast<uint8_t*>(&header), sizeof(header)});
  table = join(header.ctba & ~0x7fu, header.ctbau);
  if (!memory_.contains(table, TABLE_PRDT)) return false;
  memory_.read(table, fis);
  return true;
}

bool AhciPort::scatterList(const CommandHeader& header, uint64_t table, std::vector<iovec>& iov,
                           uint64_t& total) const {
  iov.clear();
  total = 0;
  uint32_t entries = header.flags >> 16;
  if (entries == 0) return true;
  const uint8_t* prdt = memory_.translate(table + TABLE_PRDT, uint64_t{entries} * sizeof(PrdEntry));
  if (prdt == nullptr) return false;
  for (uint32_t i = 0; i < entries; ++i) {
    PrdEntry entry;
    std::memcpy(&entry, prdt + i * sizeof(PrdEntry), sizeof(entry));
    uint64_t address = join(entry.dba & ~1u, entry.dbau);
    uint64_t length = uint64_t{entry.flags & PRD_BYTE_COUNT_MASK} + 1;
    uint8_t* host = memory_.translate(address, length);
    if (host == nullptr) return false;
    iov.push_back({host, length});
    total += length;
  }
  return true;
}

uint32_t AhciPort::copyOut(const CommandHeader& header, uint64_t table,
                           const std::vector<uint8_t>& data) const {
  std::vector<iovec> iov;
  uint64_t total = 0;
  if (!scatterList(header, table, iov, total)) return 0;
  size_t copied = 0;
  for (const auto& piece : iov) {
    if (copied == data.size()) break;
    size_t length = std::min(piece.iov_len, data.size() - copied);
    std::memcpy(piece.iov_base, data.data() + copied, length);
    copied += length;
  }
  return static_cast<uint32_t>(copied);
}

void AhciPort::execute(uint32_t slot) {
  work_[slot] = SlotWork{};
  std::array<uint8_t, CFIS_SIZE> fis{};
  CommandHeader header{};
  uint64_t table = 0;
  if (!readCommand(slot, fis, header, table)) {
    // A command list or table outside RAM: a host bus fatal error.
    complete(slot, Outcome{ERROR_STATUS, ATA_ABRT, 0, false});
    raise(PXIS_HBFS);
    return;
  }
  if (fis[0] != FIS_H2D_REGISTER) {
    complete(slot, Outcome{ERROR_STATUS, ATA_ABRT, 0, false});
    return;
  }
  if ((fis[1] & H2D_COMMAND) == 0) {
    // A device control FIS (Linux's soft reset): SRST set, then cleared.
    if ((fis[15] & 0x04) == 0) linkReset();
    state_.ci &= ~(1u << slot);
    state_.taken &= ~(1u << slot);
    return;
  }
  if (auto outcome = executeAta(slot, fis, header, table)) complete(slot, *outcome);
}

std::optional<AhciPort::Outcome> AhciPort::executeAta(uint32_t slot,
                                                      const std::array<uint8_t, CFIS_SIZE>& fis,
                                                      const CommandHeader& header, uint64_t table) {
  const Outcome abort{ERROR_STATUS, ATA_ABRT, 0, false};
  uint8_t command = fis[2];
  uint64_t lba48 = uint64_t{fis[4]} | uint64_t{fis[5]} << 8 | uint64_t{fis[6]} << 16 |
                   uint64_t{fis[8]} << 24 | uint64_t{fis[9]} << 32 | uint64_t{fis[10]} << 40;
  uint64_t lba28 =
      uint64_t{fis[4]} | uint64_t{fis[5]} << 8 | uint64_t{fis[6]} << 16 | uint64_t{fis[7] & 0xfu} << 24;
  uint32_t count16 = fis[12] | uint32_t{fis[13]} << 8;
  if (options_.cd && command != PACKET && command != IDENTIFY_PACKET_DEVICE && command != SET_FEATURES &&
      command != FLUSH_CACHE && command != CHECK_POWER_MODE && command != IDLE_IMMEDIATE) {
    // A packet device aborts ATA commands, IDENTIFY DEVICE with its
    // signature in the registers.
    return abort;
  }
  switch (command) {
    case IDENTIFY_DEVICE:
      return Outcome{OK_STATUS, 0,
                     copyOut(header, table, ata::identifyDevice(options_, sectors_, sectorSize_, SLOTS)),
                     true};
    case IDENTIFY_PACKET_DEVICE:
      if (!options_.cd) return abort;
      return Outcome{OK_STATUS, 0, copyOut(header, table, ata::identifyPacketDevice(options_)), true};
    case READ_DMA:
    case WRITE_DMA:
    case READ_DMA_EXT:
    case WRITE_DMA_EXT: {
      bool write = command == WRITE_DMA || command == WRITE_DMA_EXT;
      bool ext = command == READ_DMA_EXT || command == WRITE_DMA_EXT;
      uint64_t lba = ext ? lba48 : lba28;
      uint64_t count = ext ? (count16 == 0 ? 65536 : count16) : (fis[12] == 0 ? 256 : fis[12]);
      if (write && options_.readOnly) return abort;
      if (lba > sectors_ || count > sectors_ - lba) return Outcome{ERROR_STATUS, ATA_IDNF, 0, false};
      if (!submitTransfer(slot, write, lba, count, sectorSize_, header, table)) return abort;
      return std::nullopt;
    }
    case READ_FPDMA_QUEUED:
    case WRITE_FPDMA_QUEUED: {
      bool write = command == WRITE_FPDMA_QUEUED;
      uint32_t features = fis[3] | uint32_t{fis[11]} << 8;
      uint64_t count = features == 0 ? 65536 : features;
      PortState& port = state_;
      port.ncq |= 1u << slot;
      // Queued: the command slot is free again at once; SActive tracks it.
      uint8_t accepted[20] = {FIS_D2H_REGISTER, 0, ATA_DRDY, 0};
      writeReceivedFis(RFIS_D2H, accepted, sizeof(accepted));
      port.tfd = ATA_DRDY;
      port.ci &= ~(1u << slot);
      bool bad = (write && options_.readOnly) || lba48 > sectors_ || count > sectors_ - lba48 ||
                 !submitTransfer(slot, write, lba48, count, sectorSize_, header, table);
      if (bad)
        complete(slot, Outcome{ERROR_STATUS, write && options_.readOnly ? ATA_ABRT : ATA_IDNF, 0, false});
      return std::nullopt;
    }
    case FLUSH_CACHE:
    case FLUSH_CACHE_EXT:
      work_[slot].operations = 1;
      backend_.submit(BlockBackend::Op::FLUSH, tagFor(slot), {}, 0);
      return std::nullopt;
    case DATA_SET_MANAGEMENT:
      if ((fis[3] & 1) == 0 || options_.readOnly || options_.noDelete || count16 == 0) return abort;
      return trim(slot, count16, header, table);
    case READ_LOG_EXT:
      return readLog(fis[4], header, table);
    case READ_VERIFY:
    case READ_VERIFY_EXT: {
      uint64_t lba = command == READ_VERIFY_EXT ? lba48 : lba28;
      uint64_t count =
          command == READ_VERIFY_EXT ? (count16 == 0 ? 65536 : count16) : (fis[12] == 0 ? 256 : fis[12]);
      if (lba > sectors_ || count > sectors_ - lba) return Outcome{ERROR_STATUS, ATA_IDNF, 0, false};
      return Outcome{};
    }
    case SET_FEATURES:
    case SET_MULTIPLE_MODE:
    case INITIALIZE_DEVICE_PARAMETERS:
    case CHECK_POWER_MODE:
    case IDLE:
    case IDLE_IMMEDIATE:
    case STANDBY:
    case STANDBY_IMMEDIATE:
    case SLEEP:
    case SECURITY_FREEZE_LOCK:
      return Outcome{};
    case PACKET: {
      const uint8_t* cdb = memory_.translate(table + TABLE_ACMD, ACMD_SIZE);
      if (cdb == nullptr) return abort;
      return executePacket(slot, cdb, header, table);
    }
    default:
      return abort;
  }
}

std::optional<AhciPort::Outcome> AhciPort::trim(uint32_t slot, uint32_t blocks, const CommandHeader& header,
                                                uint64_t table) {
  SlotWork& work = work_[slot];
  work.buffer.assign(size_t{blocks} * ata::PAGE, 0);
  std::vector<iovec> iov;
  uint64_t total = 0;
  if (!scatterList(header, table, iov, total)) return Outcome{ERROR_STATUS, ATA_ABRT, 0, false};
  size_t copied = 0;
  for (const auto& piece : iov) {
    size_t length = std::min(piece.iov_len, work.buffer.size() - copied);
    std::memcpy(work.buffer.data() + copied, piece.iov_base, length);
    copied += length;
  }
  // Eight bytes a range: a 48-bit LBA and a 16-bit count (0: unused).
  for (size_t at = 0; at + 8 <= copied; at += 8) {
    uint64_t entry;
    std::memcpy(&entry, work.buffer.data() + at, 8);
    uint64_t start = entry & 0xffff'ffff'ffffull;
    uint64_t length = entry >> 48;
    if (length == 0) continue;
    if (start > sectors_ || length > sectors_ - start) {
      if (work.operations == 0) return Outcome{ERROR_STATUS, ATA_IDNF, 0, false};
      work.failed = true;
      break;
    }
    ++work.operations;
    backend_.submit(BlockBackend::Op::DISCARD, tagFor(slot), {}, start * sectorSize_, length * sectorSize_);
  }
  if (work.operations == 0) return Outcome{};
  return std::nullopt;
}

AhciPort::Outcome AhciPort::readLog(uint8_t log, const CommandHeader& header, uint64_t table) {
  std::vector<uint8_t> page(ata::PAGE, 0);
  if (log == 0x00) {
    // The directory: version 1, and one page of the NCQ error log.
    ata::putWord(page, 0, 0x0001);
    ata::putWord(page, NCQ_LOG, 1);
  } else if (log == NCQ_LOG) {
    page[0] = state_.ncqErrorTag;
    page[2] = state_.ncqErrorStatus;
    page[3] = state_.ncqErrorCode;
    ata::sealChecksum(page);
    state_.ncqErrorTag = NO_NCQ_ERROR;
  } else {
    return Outcome{ERROR_STATUS, ATA_ABRT, 0, false};
  }
  return Outcome{OK_STATUS, 0, copyOut(header, table, page), true};
}

bool AhciPort::submitTransfer(uint32_t slot, bool write, uint64_t lba, uint64_t sectors, uint32_t sectorSize,
                              const CommandHeader& header, uint64_t table) {
  SlotWork& work = work_[slot];
  uint64_t total = 0;
  if (!scatterList(header, table, work.iov, total)) return false;
  uint64_t bytes = sectors * sectorSize;
  if (total < bytes) return false;  // A PRD table shorter than the transfer.
  // Trim the list to exactly the transfer; the driver may offer more room.
  uint64_t kept = 0;
  size_t count = 0;
  for (; count < work.iov.size() && kept < bytes; ++count) {
    uint64_t room = bytes - kept;
    if (work.iov[count].iov_len > room) work.iov[count].iov_len = room;
    kept += work.iov[count].iov_len;
  }
  work.iov.resize(count);
  work.bytes = static_cast<uint32_t>(bytes);
  // io_uring takes at most IOV_MAX vectors an operation: longer lists go
  // as several operations at their own offsets.
  uint64_t offset = lba * sectorSize;
  for (size_t first = 0; first < work.iov.size(); first += IOV_MAX) {
    size_t n = std::min<size_t>(IOV_MAX, work.iov.size() - first);
    uint64_t length = 0;
    for (size_t i = first; i < first + n; ++i) length += work.iov[i].iov_len;
    ++work.operations;
    backend_.submit(write ? BlockBackend::Op::WRITE : BlockBackend::Op::READ, tagFor(slot),
                    std::span<const iovec>(work.iov.data() + first, n), offset);
    offset += length;
  }
  if (write) {
    state_.sectorsWritten += sectors;
    stats_->writtenBytes += bytes;
  } else {
    state_.sectorsRead += sectors;
    stats_->readBytes += bytes;
  }
  return true;
}

void AhciPort::onCompletions() {
  backend_.reap([this](uint64_t tag, int32_t result) {
    if ((tag >> 32) != generation_) return;  // From before a reset.
    auto slot = static_cast<uint32_t>(tag);
    if (slot >= SLOTS) return;
    SlotWork& work = work_[slot];
    if (work.operations == 0) return;
    if (result < 0) work.failed = true;
    if (--work.operations != 0) return;
    if (work.failed) {
      complete(slot,
               options_.cd ? atapiError(atapi::MEDIUM_ERROR, 0x11) : Outcome{ERROR_STATUS, 0x40, 0, false});
    } else {
      complete(slot, Outcome{OK_STATUS, 0, work.bytes, false});
    }
  });
  backend_.flushSubmissions();
}

void AhciPort::writeReceivedFis(uint32_t offset, const uint8_t* fis, size_t length) {
  if ((state_.cmd & PXCMD_FRE) == 0) return;
  uint64_t base = join(state_.fb, state_.fbu);
  if (uint8_t* area = memory_.translate(base + offset, length)) std::memcpy(area, fis, length);
}

void AhciPort::complete(uint32_t slot, const Outcome& outcome) {
  PortState& port = state_;
  uint32_t bit = 1u << slot;
  if ((port.taken & bit) == 0) return;  // Stopped meanwhile.
  bool failed = (outcome.status & ATA_ERR) != 0;
  bool queued = (port.ncq & bit) != 0;
  // Data moved, byte count written, FIS posted, event noted in PxIS, slot
  // released: then the interrupt, so a driver that looks at PxCI or PxSACT
  // sees it done. A successor restarted after the release does not run the
  // slot again (resumeTaken) and re-sends the interrupt PxIS still holds.
  uint64_t headerAt = join(port.clb, port.clbu) + uint64_t{slot} * COMMAND_HEADER_SIZE + 4;
  if (uint8_t* prdbc = memory_.translate(headerAt, 4)) std::memcpy(prdbc, &outcome.bytes, 4);
  if (queued) {
    uint8_t sdb[8] = {FIS_SET_DEVICE_BITS, FIS_INTERRUPT, static_cast<uint8_t>(outcome.status & 0x77),
                      outcome.error};
    if (!failed) std::memcpy(sdb + 4, &bit, 4);
    writeReceivedFis(RFIS_SET_DEVICE_BITS, sdb, sizeof(sdb));
    port.tfd = (uint32_t{outcome.error} << 8) | outcome.status;
    if (failed) {
      port.ncqErrorTag = static_cast<uint8_t>(slot);
      port.ncqErrorStatus = outcome.status;
      port.ncqErrorCode = outcome.error;
    }
    port.is |= failed ? PXIS_TFES : PXIS_SDBS;
    port.sact &= ~bit;
  } else {
    if (outcome.pio) {
      uint8_t setup[20] = {FIS_PIO_SETUP, FIS_INTERRUPT | (1u << 5), ATA_DRDY | ATA_DSC | ATA_DRQ, 0};
      setup[15] = outcome.status;
      setup[16] = static_cast<uint8_t>(outcome.bytes);
      setup[17] = static_cast<uint8_t>(outcome.bytes >> 8);
      writeReceivedFis(RFIS_PIO_SETUP, setup, sizeof(setup));
      port.is |= PXIS_PSS;
    }
    uint8_t d2h[20] = {FIS_D2H_REGISTER, FIS_INTERRUPT, outcome.status, outcome.error};
    if (options_.cd) d2h[12] = 0x03;  // Interrupt reason: command done, to the host.
    writeReceivedFis(RFIS_D2H, d2h, sizeof(d2h));
    port.tfd = (uint32_t{outcome.error} << 8) | outcome.status;
    // A task file error comes with DHRS too: firmware that predates AHCI
    // drivers reading TFES waits for DHRS alone.
    port.is |= PXIS_DHRS | (failed ? PXIS_TFES : 0);
    port.ci &= ~bit;
  }
  port.ncq &= ~bit;
  port.taken &= ~bit;
  work_[slot] = SlotWork{};
  ++stats_->requests;
  if (failed) ++stats_->errors;
  interruptChanged_();
}

AhciPort::Outcome AhciPort::atapiError(uint8_t senseKey, uint8_t asc, uint8_t ascq) {
  state_.senseKey = senseKey;
  state_.asc = asc;
  state_.ascq = ascq;
  return Outcome{ERROR_STATUS, static_cast<uint8_t>(senseKey << 4), 0, false};
}

AhciPort::Outcome AhciPort::atapiData(const CommandHeader& header, uint64_t table, std::vector<uint8_t> data,
                                      uint32_t allocation) {
  if (data.size() > allocation) data.resize(allocation);
  state_.senseKey = 0;
  state_.asc = 0;
  state_.ascq = 0;
  return Outcome{OK_STATUS, 0, copyOut(header, table, data), false};
}

std::optional<AhciPort::Outcome> AhciPort::executePacket(uint32_t slot, const uint8_t* cdb,
                                                         const CommandHeader& header, uint64_t table) {
  atapi::Request request{cdb, sectors_};
  PortState& port = state_;
  if (port.unitAttention != 0 && atapi::reportsUnitAttention(cdb[0])) {
    port.unitAttention = 0;
    return atapiError(atapi::UNIT_ATTENTION, 0x29);  // Power on or reset occurred.
  }
  if (cdb[0] == atapi::REQUEST_SENSE) {
    auto sense = atapi::senseData(port.senseKey, port.asc, port.ascq);
    return atapiData(header, table, std::move(sense), cdb[4]);
  }
  atapi::Reply reply = atapi::respond(request);
  if (reply.senseKey != 0) return atapiError(reply.senseKey, reply.asc, reply.ascq);
  if (reply.readBlocks != 0) {
    if (!submitTransfer(slot, false, reply.readLba, reply.readBlocks, CD_SECTOR, header, table)) {
      return atapiError(atapi::ILLEGAL_REQUEST, 0x24);
    }
    port.senseKey = 0;
    port.asc = 0;
    port.ascq = 0;
    return std::nullopt;
  }
  return atapiData(header, table, std::move(reply.data), reply.allocation);
}

}  // namespace cellvisor
