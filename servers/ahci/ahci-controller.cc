#include "servers/ahci/ahci-controller.h"

#include <fmt/format.h>
#include <limits.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <stdexcept>

#include "base/guest-memory.h"
#include "proto/state-segment.h"
#include "servers/ahci/atapi.h"

namespace cellvisor {
namespace {

using namespace ahci;

constexpr uint16_t INTEL = 0x8086;
constexpr uint16_t ICH9_AHCI = 0x2922;  // The AHCI function every AHCI driver knows.
constexpr uint16_t QEMU_SUBSYSTEM_VENDOR = 0x1af4;
constexpr uint16_t QEMU_SUBSYSTEM = 0x1100;
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

// ATA strings: space padded, two characters a word, the first in the high byte.
void putAtaString(std::vector<uint8_t>& identify, int word, int words, const std::string& text) {
  for (int i = 0; i < 2 * words; ++i) {
    char c = static_cast<size_t>(i) < text.size() ? text[static_cast<size_t>(i)] : ' ';
    identify[static_cast<size_t>(2 * word + (i ^ 1))] = static_cast<uint8_t>(c);
  }
}

void putWord(std::vector<uint8_t>& identify, int word, uint16_t value) {
  identify[static_cast<size_t>(2 * word)] = static_cast<uint8_t>(value);
  identify[static_cast<size_t>(2 * word + 1)] = static_cast<uint8_t>(value >> 8);
}

// Word 255: signature 0xA5 and a checksum making the 512 bytes sum to zero.
void sealIdentify(std::vector<uint8_t>& identify) {
  identify[510] = 0xa5;
  uint8_t sum = 0;
  for (size_t i = 0; i < 511; ++i) sum = static_cast<uint8_t>(sum + identify[i]);
  identify[511] = static_cast<uint8_t>(-sum);
}

}  // namespace

AhciController::AhciController(const AhciOptions& options, std::string deviceName, GuestMemory& memory,
                               BlockBackend& backend, StateHeader& header, AhciState& state)
    : options_(options),
      deviceName_(std::move(deviceName)),
      memory_(memory),
      backend_(backend),
      header_(header),
      state_(state) {
  sectorSize_ = options_.cd ? CD_SECTOR : options_.logicalSectorSize;
  sectors_ = backend_.sizeBytes() / sectorSize_;
  if (sectors_ == 0)
    throw std::invalid_argument(
        fmt::format("ahci: the image is smaller than one {}-byte sector", sectorSize_));
  if (options_.serial.empty()) options_.serial = "CV" + deviceName_.substr(0, 18);

  bool restored = claimState(header_, STATE_MAGIC, STATE_LAYOUT_VERSION) == StateOrigin::RESTORED;
  if (!restored) std::memset(&state_, 0, sizeof(state_));
  config_.emplace(std::span<uint8_t>(state_.pciConfig),
                  restored ? pci::ConfigSpace::Contents::RESTORED : pci::ConfigSpace::Contents::FRESH);
  // Class 01:06:01: SATA, AHCI 1.0 programming interface.
  config_->setIdentity({.vendor = INTEL,
                        .device = ICH9_AHCI,
                        .revision = 0x02,
                        .progIf = 0x01,
                        .subclass = 0x06,
                        .classCode = 0x01,
                        .subsystemVendor = QEMU_SUBSYSTEM_VENDOR,
                        .subsystem = QEMU_SUBSYSTEM});
  config_->setBar(ABAR, {pci::BarKind::MEMORY32, ABAR_SIZE, false}, 0);
  // Linux's Intel quirk writes the port control and status register.
  config_->set16(0x92, 0, 0xffff);
  msix_.emplace(*config_, std::span<pci::MsixEntry>(state_.msix, VECTORS),
                std::span<uint64_t>(state_.msixPending));
  msix_->addCapability(ABAR, MSIX_TABLE, MSIX_PBA);
  if (restored) return;
  msix_->reset();
  hbaReset();
  publishState(header_, STATE_MAGIC, STATE_LAYOUT_VERSION);
}

FunctionLayout AhciController::layout() const {
  FunctionLayout layout;
  layout.bars.push_back({ABAR, ABAR_SIZE, pci::BarKind::MEMORY32});
  layout.doorbellCount = 0;
  layout.msixVectors = VECTORS;
  return layout;
}

void AhciController::start(std::function<void(uint16_t)> signal) {
  signal_ = signal;
  msix_->setSignal(std::move(signal));
  // What a predecessor took and did not complete runs again: every command
  // here is idempotent, and its completion is posted once, below.
  for (uint32_t slot = 0; slot < SLOTS; ++slot) {
    if ((state_.port.taken & (1u << slot)) != 0) execute(slot);
  }
  issue();
  backend_.flushSubmissions();
}

FailureNotice AhciController::failureNotice() const {
  // A host bus fatal error and a task file error: the AHCI driver's cue to
  // reset the port, and with no server left, to give up on it.
  FailureNotice notice{};
  notice.count = 2;
  notice.ops[0] = {static_cast<uint32_t>(offsetof(AhciState, port) + offsetof(PortState, is) + 3),
                   FailureNotice::OR_BYTE, static_cast<uint8_t>((PXIS_HBFS | PXIS_TFES) >> 24), 0};
  notice.ops[1] = {static_cast<uint32_t>(offsetof(AhciState, port) + offsetof(PortState, tfd)),
                   FailureNotice::OR_BYTE, ATA_ERR, 0};
  notice.vectorOffset = FailureNotice::NO_VECTOR;
  notice.readCount = 2;
  notice.reads[0] = {ABAR, 4, 0, static_cast<uint32_t>(PORT_BASE + PX_IS), PXIS_HBFS | PXIS_TFES};
  notice.reads[1] = {ABAR, 4, 0, static_cast<uint32_t>(PORT_BASE + PX_TFD), (ATA_ABRT << 8) | ERROR_STATUS};
  return notice;
}

uint32_t AhciController::configRead(uint16_t offset, uint8_t size) {
  if (offset >= sizeof(state_.pciConfig)) return 0;
  return config_->read(offset, size);
}

std::vector<MsixUpdate> AhciController::configWrite(uint16_t offset, uint8_t size, uint32_t value) {
  if (offset >= sizeof(state_.pciConfig)) return {};
  uint16_t before = msix_->control();
  config_->write(offset, size, value);
  if (msix_->control() != before) msix_->controlWritten();
  if (msi_->touches(offset, size)) return {msi_->route()};
  return {};
}

std::vector<MsixUpdate> AhciController::msixVectors() const {
  if (msi_->enabled()) return {msi_->route()};
  return msix_->vectors();
}

uint64_t AhciController::barRead(uint8_t bar, uint64_t offset, uint8_t size) {
  if (bar != ABAR || offset + size > ABAR_SIZE) return 0;
  if (offset >= MSIX_PBA) return msix_->pbaRead(offset - MSIX_PBA, size);
  if (offset >= MSIX_TABLE) return msix_->tableRead(offset - MSIX_TABLE, size);
  // Registers are dwords; narrower reads take their part of one.
  uint64_t aligned = offset & ~3ull;
  uint32_t value = aligned < PORT_BASE                 ? hbaRead(aligned)
                   : aligned < PORT_BASE + PORT_STRIDE ? portRead(aligned - PORT_BASE)
                                                       : 0;
  uint64_t wide = size == 8 ? (uint64_t{barRead(bar, aligned + 4, 4)} << 32) | value : value;
  return (wide >> (8 * (offset - aligned))) & (size >= 8 ? ~0ull : (1ull << (8 * size)) - 1);
}

std::vector<MsixUpdate> AhciController::barWrite(uint8_t bar, uint64_t offset, uint8_t size, uint64_t value) {
  std::vector<MsixUpdate> effects;
  if (bar != ABAR || offset + size > ABAR_SIZE) return effects;
  if (offset >= MSIX_PBA) return effects;
  if (offset >= MSIX_TABLE) {
    if (auto update = msix_->tableWrite(offset - MSIX_TABLE, size, value)) effects.push_back(*update);
    return effects;
  }
  if (offset % 4 != 0 || (size != 4 && size != 8)) return effects;  // Registers take dword writes.
  for (uint64_t at = offset; at < offset + size; at += 4, value >>= 32) {
    auto dword = static_cast<uint32_t>(value);
    if (at < PORT_BASE) {
      hbaWrite(at, dword);
    } else if (at < PORT_BASE + PORT_STRIDE) {
      portWrite(at - PORT_BASE, dword);
    }
  }
  backend_.flushSubmissions();
  return effects;
}

uint32_t AhciController::hbaRead(uint64_t offset) const {
  switch (offset) {
    case CAP:
      return CAP_S64A | CAP_SNCQ | CAP_SCLO | CAP_ISS_GEN3 | CAP_SAM | ((SLOTS - 1) << CAP_NCS_SHIFT);
    case GHC:
      return state_.ghc;
    case IS:
      return state_.is;
    case PI:
      return 1;
    case VS:
      return VERSION_1_3;
    default:
      return 0;
  }
}

void AhciController::hbaWrite(uint64_t offset, uint32_t value) {
  if (offset == GHC) {
    if ((value & GHC_HR) != 0) {
      hbaReset();
      return;
    }
    state_.ghc = GHC_AE | (value & GHC_IE);
    updateInterrupt();
  } else if (offset == IS) {
    state_.is &= ~value;
    updateInterrupt();
  }
}

uint32_t AhciController::portRead(uint64_t offset) const {
  const PortState& port = state_.port;
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

void AhciController::portWrite(uint64_t offset, uint32_t value) {
  PortState& port = state_.port;
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
      updateInterrupt();
      break;
    case PX_IE:
      port.ie = value & PXIE_WRITABLE;
      updateInterrupt();
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
        portReset();
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

void AhciController::hbaReset() {
  ++generation_;
  state_.ghc = GHC_AE;
  state_.is = 0;
  PortState& port = state_.port;
  uint32_t clb = port.clb, clbu = port.clbu, fb = port.fb, fbu = port.fbu;
  port = PortState{};
  port.clb = clb;
  port.clbu = clbu;
  port.fb = fb;
  port.fbu = fbu;
  port.cmd = PXCMD_SUD | PXCMD_POD;
  port.ncqErrorTag = NO_NCQ_ERROR;
  portReset();
}

void AhciController::portReset() {
  PortState& port = state_.port;
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

void AhciController::updateCommandStatus() {
  PortState& port = state_.port;
  port.cmd &= ~(PXCMD_CR | PXCMD_FR);
  if ((port.cmd & PXCMD_ST) != 0) port.cmd |= PXCMD_CR;
  if ((port.cmd & PXCMD_FRE) != 0) port.cmd |= PXCMD_FR;
}

void AhciController::updateInterrupt() {
  if ((state_.port.is & state_.port.ie) != 0) state_.is |= 1;
  // A message for anything still pending, also right after the driver
  // acknowledged part of it: an event between its two writes is not lost.
  if ((state_.is & 1) != 0 && (state_.ghc & GHC_IE) != 0 && (state_.port.is & state_.port.ie) != 0) {
    if (msi_->enabled()) {
      if (signal_) signal_(0);
    } else {
      msix_->raise(0);
    }
  }
}

void AhciController::setPortInterrupt(uint32_t bits) {
  state_.port.is |= bits;
  updateInterrupt();
}

void AhciController::pause() {
  paused_ = true;
  while (backend_.outstanding() != 0) {
    backend_.waitForCompletion();
    onCompletions();
  }
}

void AhciController::resume() {
  paused_ = false;
  issue();
  backend_.flushSubmissions();
}

std::vector<MsixUpdate> AhciController::reset() {
  ++generation_;
  backend_.dropWaiting();
  while (backend_.outstanding() != 0) {
    backend_.waitForCompletion();
    backend_.reap([](uint64_t, int32_t) {});
  }
  msix_->reset();
  hbaReset();
  return msix_->vectors();
}

void AhciController::issue() {
  PortState& port = state_.port;
  if (paused_ || (port.cmd & PXCMD_ST) == 0) return;
  uint32_t fresh = port.ci & ~port.taken;
  for (uint32_t slot = 0; slot < SLOTS; ++slot) {
    if ((fresh & (1u << slot)) == 0) continue;
    port.taken |= 1u << slot;
    execute(slot);
  }
}

bool AhciController::readCommand(uint32_t slot, std::array<uint8_t, CFIS_SIZE>& fis, CommandHeader& header,
                                 uint64_t& table) {
  uint64_t list = join(state_.port.clb, state_.port.clbu);
  uint64_t at = list + uint64_t{slot} * COMMAND_HEADER_SIZE;
  if (!memory_.contains(at, sizeof(header))) return false;
  memory_.read(at, {reinterpret_cast<uint8_t*>(&header), sizeof(header)});
  table = join(header.ctba & ~0x7fu, header.ctbau);
  if (!memory_.contains(table, TABLE_PRDT)) return false;
  memory_.read(table, fis);
  return true;
}

bool AhciController::scatterList(const CommandHeader& header, uint64_t table, std::vector<iovec>& iov,
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

uint32_t AhciController::copyOut(const CommandHeader& header, uint64_t table,
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

void AhciController::execute(uint32_t slot) {
  work_[slot] = SlotWork{};
  std::array<uint8_t, CFIS_SIZE> fis{};
  CommandHeader header{};
  uint64_t table = 0;
  if (!readCommand(slot, fis, header, table)) {
    // A command list or table outside RAM: a host bus fatal error.
    complete(slot, Outcome{ERROR_STATUS, ATA_ABRT, 0, false});
    setPortInterrupt(PXIS_HBFS);
    return;
  }
  if (fis[0] != FIS_H2D_REGISTER) {
    complete(slot, Outcome{ERROR_STATUS, ATA_ABRT, 0, false});
    return;
  }
  if ((fis[1] & H2D_COMMAND) == 0) {
    // A device control FIS (Linux's soft reset): SRST set, then cleared.
    if ((fis[15] & 0x04) == 0) portReset();
    state_.port.ci &= ~(1u << slot);
    state_.port.taken &= ~(1u << slot);
    return;
  }
  if (auto outcome = executeAta(slot, fis, header, table)) complete(slot, *outcome);
}

std::optional<AhciController::Outcome> AhciController::executeAta(uint32_t slot,
                                                                  const std::array<uint8_t, CFIS_SIZE>& fis,
                                                                  const CommandHeader& header,
                                                                  uint64_t table) {
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
      return Outcome{OK_STATUS, 0, copyOut(header, table, identifyDevice()), true};
    case IDENTIFY_PACKET_DEVICE:
      if (!options_.cd) return abort;
      return Outcome{OK_STATUS, 0, copyOut(header, table, identifyPacketDevice()), true};
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
      PortState& port = state_.port;
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
    case DATA_SET_MANAGEMENT: {
      if ((fis[3] & 1) == 0 || options_.readOnly || options_.noDelete || count16 == 0) return abort;
      SlotWork& work = work_[slot];
      work.buffer.assign(size_t{count16} * 512, 0);
      std::vector<iovec> iov;
      uint64_t total = 0;
      if (!scatterList(header, table, iov, total)) return abort;
      size_t copied = 0;
      for (const auto& piece : iov) {
        size_t length = std::min(piece.iov_len, work.buffer.size() - copied);
        std::memcpy(work.buffer.data() + copied, piece.iov_base, length);
        copied += length;
      }
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
        backend_.submit(BlockBackend::Op::DISCARD, tagFor(slot), {}, start * sectorSize_,
                        length * sectorSize_);
      }
      if (work.operations == 0) return Outcome{};
      return std::nullopt;
    }
    case READ_LOG_EXT: {
      std::vector<uint8_t> page(512, 0);
      if (fis[4] == 0x00) {
        putWord(page, 0, 0x0001);
        putWord(page, NCQ_LOG, 1);
      } else if (fis[4] == NCQ_LOG) {
        PortState& port = state_.port;
        page[0] = port.ncqErrorTag;
        page[2] = port.ncqErrorStatus;
        page[3] = port.ncqErrorCode;
        uint8_t sum = 0;
        for (size_t i = 0; i < 511; ++i) sum = static_cast<uint8_t>(sum + page[i]);
        page[511] = static_cast<uint8_t>(-sum);
        port.ncqErrorTag = NO_NCQ_ERROR;
      } else {
        return abort;
      }
      return Outcome{OK_STATUS, 0, copyOut(header, table, page), true};
    }
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

bool AhciController::submitTransfer(uint32_t slot, bool write, uint64_t lba, uint64_t sectors,
                                    uint32_t sectorSize, const CommandHeader& header, uint64_t table) {
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

void AhciController::onCompletions() {
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

void AhciController::writeReceivedFis(uint32_t offset, const uint8_t* fis, size_t length) {
  if ((state_.port.cmd & PXCMD_FRE) == 0) return;
  uint64_t base = join(state_.port.fb, state_.port.fbu);
  if (uint8_t* area = memory_.translate(base + offset, length)) std::memcpy(area, fis, length);
}

void AhciController::complete(uint32_t slot, const Outcome& outcome) {
  PortState& port = state_.port;
  uint32_t bit = 1u << slot;
  if ((port.taken & bit) == 0) return;  // Stopped meanwhile.
  bool failed = (outcome.status & ATA_ERR) != 0;
  bool queued = (port.ncq & bit) != 0;
  // Data moved, byte count written, FIS posted, slot released: then the
  // interrupt, so a driver that looks at PxCI or PxSACT sees it done.
  uint64_t headerAt = join(port.clb, port.clbu) + uint64_t{slot} * COMMAND_HEADER_SIZE + 4;
  if (uint8_t* prdbc = memory_.translate(headerAt, 4)) std::memcpy(prdbc, &outcome.bytes, 4);
  uint32_t events = 0;
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
    port.sact &= ~bit;
    port.ncq &= ~bit;
    events = failed ? PXIS_TFES : PXIS_SDBS;
  } else {
    if (outcome.pio) {
      uint8_t setup[20] = {FIS_PIO_SETUP, FIS_INTERRUPT | (1u << 5), ATA_DRDY | ATA_DSC | ATA_DRQ, 0};
      setup[15] = outcome.status;
      setup[16] = static_cast<uint8_t>(outcome.bytes);
      setup[17] = static_cast<uint8_t>(outcome.bytes >> 8);
      writeReceivedFis(RFIS_PIO_SETUP, setup, sizeof(setup));
      events |= PXIS_PSS;
    }
    uint8_t d2h[20] = {FIS_D2H_REGISTER, FIS_INTERRUPT, outcome.status, outcome.error};
    if (options_.cd) d2h[12] = 0x03;  // Interrupt reason: command done, to the host.
    writeReceivedFis(RFIS_D2H, d2h, sizeof(d2h));
    port.tfd = (uint32_t{outcome.error} << 8) | outcome.status;
    port.ci &= ~bit;
    // A task file error comes with DHRS too: firmware that predates AHCI
    // drivers reading TFES waits for DHRS alone.
    events |= PXIS_DHRS | (failed ? PXIS_TFES : 0);
  }
  port.taken &= ~bit;
  work_[slot] = SlotWork{};
  ++stats_->requests;
  if (failed) ++stats_->errors;
  setPortInterrupt(events);
}

std::vector<uint8_t> AhciController::identifyDevice() const {
  std::vector<uint8_t> id(512, 0);
  uint64_t sectors = sectors_;
  uint64_t cylinders = std::min<uint64_t>(sectors / (16 * 63), 16383);
  putWord(id, 0, 0x0040);
  putWord(id, 1, static_cast<uint16_t>(cylinders));
  putWord(id, 3, 16);
  putWord(id, 6, 63);
  putAtaString(id, 10, 10, options_.serial);
  putAtaString(id, 23, 4, options_.revision.empty() ? "1.0" : options_.revision);
  putAtaString(id, 27, 20, options_.model.empty() ? "cellvisor AHCI disk" : options_.model);
  putWord(id, 47, 0x8010);
  putWord(id, 49, 0x0b00);  // LBA, DMA, IORDY.
  putWord(id, 50, 0x4000);
  putWord(id, 53, 0x0007);
  putWord(id, 54, static_cast<uint16_t>(cylinders));
  putWord(id, 55, 16);
  putWord(id, 56, 63);
  uint64_t chs = cylinders * 16 * 63;
  putWord(id, 57, static_cast<uint16_t>(chs));
  putWord(id, 58, static_cast<uint16_t>(chs >> 16));
  putWord(id, 59, 0x0110);
  uint64_t lba28 = std::min<uint64_t>(sectors, 0x0fffffff);
  putWord(id, 60, static_cast<uint16_t>(lba28));
  putWord(id, 61, static_cast<uint16_t>(lba28 >> 16));
  putWord(id, 62, 0x0007);
  putWord(id, 63, 0x0407);
  putWord(id, 64, 0x0003);
  for (int word = 65; word <= 68; ++word) putWord(id, word, 120);
  if (!options_.readOnly && !options_.noDelete) putWord(id, 69, 0x4020);  // Deterministic zeroes after TRIM.
  putWord(id, 75, SLOTS - 1);
  putWord(id, 76, 0x010e);  // NCQ, SATA Gen1-3.
  putWord(id, 77, 0x0006);
  putWord(id, 80, 0x03f0);  // ATA-4 to ACS-2.
  putWord(id, 81, 0x0028);
  putWord(id, 82, 0x4020);  // NOP, write cache.
  putWord(id, 83, 0x7400);  // FLUSH CACHE EXT, FLUSH CACHE, LBA48.
  putWord(id, 84, 0x4000);
  putWord(id, 85, 0x4020);
  putWord(id, 86, 0x3400);
  putWord(id, 87, 0x4000);
  putWord(id, 88, 0x407f);  // UDMA 0-6, UDMA 6 selected.
  for (int i = 0; i < 4; ++i) putWord(id, 100 + i, static_cast<uint16_t>(sectors >> (16 * i)));
  putWord(id, 105, 1);
  uint32_t physical = options_.physicalSectorSize != 0 ? options_.physicalSectorSize : sectorSize_;
  uint16_t word106 = 0x4000;
  if (physical > sectorSize_)
    word106 |= 0x2000 | static_cast<uint16_t>(__builtin_ctz(physical / sectorSize_));
  if (sectorSize_ > 512) {
    word106 |= 0x1000;
    putWord(id, 117, static_cast<uint16_t>(sectorSize_ / 2));
    putWord(id, 118, static_cast<uint16_t>((sectorSize_ / 2) >> 16));
  }
  putWord(id, 106, word106);
  if (!options_.readOnly && !options_.noDelete) putWord(id, 169, 0x0001);  // TRIM.
  putWord(id, 217, options_.rotationRate);
  putWord(id, 222, 0x1020);
  sealIdentify(id);
  return id;
}

std::vector<uint8_t> AhciController::identifyPacketDevice() const {
  std::vector<uint8_t> id(512, 0);
  putWord(id, 0, 0x85c0);  // ATAPI, CD-ROM, removable, 12-byte packets.
  putAtaString(id, 10, 10, options_.serial);
  putAtaString(id, 23, 4, options_.revision.empty() ? "1.0" : options_.revision);
  putAtaString(id, 27, 20, options_.model.empty() ? "cellvisor AHCI CD-ROM" : options_.model);
  putWord(id, 49, 0x0300);
  putWord(id, 53, 0x0007);
  putWord(id, 62, 0x0007);
  putWord(id, 63, 0x0007);
  putWord(id, 64, 0x0003);
  for (int word = 65; word <= 68; ++word) putWord(id, word, 120);
  putWord(id, 71, 30);
  putWord(id, 72, 30);
  putWord(id, 76, 0x000e);
  putWord(id, 80, 0x01f0);
  putWord(id, 82, 0x4210);  // NOP, DEVICE RESET, PACKET.
  putWord(id, 83, 0x4000);
  putWord(id, 84, 0x4000);
  putWord(id, 85, 0x4210);
  putWord(id, 86, 0x0000);
  putWord(id, 87, 0x4000);
  putWord(id, 88, 0x203f);
  sealIdentify(id);
  return id;
}

AhciController::Outcome AhciController::atapiError(uint8_t senseKey, uint8_t asc, uint8_t ascq) {
  state_.port.senseKey = senseKey;
  state_.port.asc = asc;
  state_.port.ascq = ascq;
  return Outcome{ERROR_STATUS, static_cast<uint8_t>(senseKey << 4), 0, false};
}

AhciController::Outcome AhciController::atapiData(const CommandHeader& header, uint64_t table,
                                                  std::vector<uint8_t> data, uint32_t allocation) {
  if (data.size() > allocation) data.resize(allocation);
  state_.port.senseKey = 0;
  state_.port.asc = 0;
  state_.port.ascq = 0;
  return Outcome{OK_STATUS, 0, copyOut(header, table, data), false};
}

std::optional<AhciController::Outcome> AhciController::executePacket(uint32_t slot, const uint8_t* cdb,
                                                                     const CommandHeader& header,
                                                                     uint64_t table) {
  atapi::Request request{cdb, sectors_};
  PortState& port = state_.port;
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
