#include "servers/nvme/nvme-controller.h"

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include "base/guest-memory.h"
#include "base/little-endian.h"
#include "servers/nvme/data-pointer.h"

namespace cellvisor {

using namespace nvme;

namespace {

constexpr uint16_t VENDOR = 0xfb5d;  // bhyve's NVMe identity, as its guests know it.
constexpr uint16_t DEVICE = 0x0a0a;
constexpr uint32_t NAMESPACE_ID = 1;
constexpr uint32_t ALL_NAMESPACES = 0xffffffff;
constexpr uint32_t NO_QUEUES_SET = 0xffffffff;
// An admin command that finishes later (deleting a queue whose completions wait for room).
constexpr uint16_t WAIT_FOR_COMPLETIONS = 0xffff;
constexpr uint16_t OACS_FORMAT = 1u << 1;
constexpr uint16_t OACS_DOORBELL_BUFFER = 1u << 8;
constexpr uint16_t ONCS_DSM = 1u << 2;
constexpr uint16_t ONCS_WRITE_ZEROES = 1u << 3;

void putText(std::vector<uint8_t>& data, size_t at, size_t width, const std::string& text) {
  for (size_t i = 0; i < width; ++i) data[at + i] = i < text.size() ? static_cast<uint8_t>(text[i]) : ' ';
}

void put(std::vector<uint8_t>& data, size_t at, size_t bytes, uint64_t value) {
  storeLittleEndian(data.data() + at, bytes, value);
}

// 128-bit little-endian counters of the SMART log, from 64-bit values.
void put128(std::vector<uint8_t>& data, size_t at, uint64_t value) {
  put(data, at, 8, value);
}

// Publishes a word after every store before it (the compiler may not move
// those past it, and x86 keeps them in order): what a successor finds set
// is backed by everything written before it.
template <typename T>
void publish(T& word, T value) {
  std::atomic_ref<T>(word).store(value, std::memory_order_release);
}

std::string fmtHex(uint16_t value) {
  char text[5];
  std::snprintf(text, sizeof(text), "%04x", value);
  return text;
}

uint16_t cqidOf(const Slot& slot, const NvmeState& state) {
  return state.sq[slot.sqid].cqid;
}

}  // namespace

NvmeController::NvmeController(const NvmeOptions& options, std::string deviceName, GuestMemory& memory,
                               BlockBackend& backend, StateHeader& header, NvmeState& state)
    : options_(options),
      deviceName_(std::move(deviceName)),
      memory_(memory),
      backend_(backend),
      header_(header),
      state_(state),
      vectorCount_(static_cast<uint16_t>(options.maxQueues + 1)),
      slotCount_(std::min<uint32_t>(MAX_SLOTS, options.ioSlots * options.maxQueues + MAX_ASYNC_EVENTS + 4)),
      work_(MAX_SLOTS) {
  if (options_.maxQueues > MAX_IO_QUEUES) throw std::invalid_argument("nvme: at most 64 I/O queues");
  blockSize_ = options_.sectorSize != 0 ? options_.sectorSize : 512;
  blocks_ = backend_.sizeBytes() / blockSize_;
  if (blocks_ == 0) throw std::invalid_argument("nvme: the namespace is smaller than one block");

  bool restored = claimState(header_, STATE_MAGIC, STATE_LAYOUT_VERSION) == StateOrigin::RESTORED;
  if (!restored) std::memset(&state_, 0, sizeof(state_));
  config_.emplace(std::span<uint8_t>(state_.pciConfig),
                  restored ? pci::ConfigSpace::Contents::RESTORED : pci::ConfigSpace::Contents::FRESH);
  // Class 01:08:02: NVM Express, the class every NVMe driver binds to.
  config_->setIdentity({.vendor = VENDOR,
                        .device = DEVICE,
                        .progIf = 0x02,
                        .subclass = 0x08,
                        .classCode = 0x01,
                        .subsystemVendor = VENDOR,
                        .subsystem = DEVICE});
  config_->setBar(0, {pci::BarKind::MEMORY64, BAR0_SIZE, false}, 0);
  msix_.emplace(*config_, std::span<pci::MsixEntry>(state_.msix, vectorCount_),
                std::span<uint64_t>(state_.msixPending));
  msix_->addCapability(0, MSIX_TABLE, MSIX_PBA);
  if (restored) return;
  msix_->reset();
  state_.queuesGranted = NO_QUEUES_SET;
  state_.temperatureThreshold = 0x0157;  // 343 K.
  state_.volatileWriteCache = 1;
  publishState(header_, STATE_MAGIC, STATE_LAYOUT_VERSION);
}

FunctionLayout NvmeController::layout() const {
  FunctionLayout layout;
  layout.bars.push_back({0, BAR0_SIZE, pci::BarKind::MEMORY64});
  // Each I/O queue's doorbells as eventfds, off until the driver gives us
  // shadow doorbells (the eventfd carries no value; the shadow does). Doorbell
  // y - 1 is SQ y's tail, maxq + y - 1 CQ y's head.
  for (uint16_t qid = 1; qid <= options_.maxQueues; ++qid) {
    layout.doorbells.push_back({0, DOORBELLS + 8ull * qid, 4, static_cast<uint16_t>(qid - 1), true});
    layout.doorbells.push_back(
        {0, DOORBELLS + 8ull * qid + 4, 4, static_cast<uint16_t>(options_.maxQueues + qid - 1), true});
  }
  layout.doorbellCount = static_cast<uint16_t>(2 * options_.maxQueues);
  layout.msixVectors = vectorCount_;
  return layout;
}

void NvmeController::switchShadowDoorbells(bool on) {
  for (uint16_t index = 0; index < 2 * options_.maxQueues; ++index) switches_.push_back({index, on});
}

uint32_t* NvmeController::shadowSlot(uint64_t buffer, uint32_t index) const {
  // Checked against RAM when the buffers were given; checked again here, as
  // nothing the driver named is trusted twice.
  return reinterpret_cast<uint32_t*>(memory_.translate(buffer + 4ull * index, 4));
}

void NvmeController::readShadowHead(uint16_t cqid) {
  CompletionQueue& cq = state_.cq[cqid];
  uint32_t* event = shadowSlot(state_.eventIndexes, 2u * cqid + 1);
  uint32_t* head = shadowSlot(state_.shadowDoorbells, 2u * cqid + 1);
  if (event == nullptr || head == nullptr) return;
  // EventIdx first, then the shadow (the host writes the shadow, then reads
  // EventIdx): whichever way they race, a head we have not seen is rung.
  std::atomic_ref<uint32_t>(*event).store(cq.head, std::memory_order_seq_cst);
  uint32_t value = std::atomic_ref<uint32_t>(*head).load(std::memory_order_seq_cst);
  if (value < cq.size) cq.head = static_cast<uint16_t>(value);
}

void NvmeController::doorbell(uint16_t index) {
  if (!ready() || state_.shadowDoorbells == 0) return;
  if (index < options_.maxQueues) {
    processQueue(static_cast<uint16_t>(index + 1));
  } else {
    postWaiting();
    processAllQueues();
  }
  backend_.flushSubmissions();
}

void NvmeController::start(std::function<void(uint16_t)> signal) {
  msix_->setSignal(std::move(signal));
  if (ready()) recover();
}

FailureNotice NvmeController::failureNotice() const {
  // Controller Fatal Status: what the NVMe driver checks when a command
  // times out, and answers with a controller reset.
  FailureNotice notice{};
  notice.count = 1;
  notice.ops[0] = {static_cast<uint32_t>(offsetof(NvmeState, csts)), FailureNotice::OR_BYTE,
                   static_cast<uint8_t>(CSTS_CFS), 0};
  notice.vectorOffset = FailureNotice::NO_VECTOR;
  // With no server to answer, CSTS still says so (not all ones: "gone").
  notice.readCount = 1;
  notice.reads[0] = {0, 4, 0, static_cast<uint32_t>(REG_CSTS), 0, 0, CSTS_RDY | CSTS_CFS};
  return notice;
}

uint32_t NvmeController::configRead(uint16_t offset, uint8_t size) {
  if (offset >= sizeof(state_.pciConfig)) return 0;  // No extended capabilities.
  return config_->read(offset, size);
}

std::vector<MsixUpdate> NvmeController::configWrite(uint16_t offset, uint8_t size, uint32_t value) {
  uint16_t before = msix_->control();
  config_->write(offset, size, value);
  if (msix_->control() != before) msix_->controlWritten();
  return {};
}

uint64_t NvmeController::barRead(uint8_t bar, uint64_t offset, uint8_t size) {
  if (bar != 0 || (size != 1 && size != 2 && size != 4 && size != 8) || offset >= BAR0_SIZE ||
      size > BAR0_SIZE - offset) {
    return ~0ull;
  }
  if (offset >= MSIX_PBA) return msix_->pbaRead(offset - MSIX_PBA, size);
  if (offset >= MSIX_TABLE) return msix_->tableRead(offset - MSIX_TABLE, size);
  if (offset >= DOORBELLS) return 0;  // Doorbells read as zero.
  // Registers are read as whole dwords (or the 64-bit CAP/ASQ/ACQ).
  uint64_t aligned = offset & ~3ull;
  uint64_t value = registerRead(aligned) | (registerRead(aligned + 4) << 32);
  return (value >> (8 * (offset - aligned))) & accessMask(size);
}

uint64_t NvmeController::registerRead(uint64_t offset) const {
  switch (offset) {
    case REG_CAP: {
      // MQES (0-based), CQR (contiguous queues required), AMS none, TO in
      // 500 ms units, DSTRD 0, CSS NVM, MPSMIN = MPSMAX = 4 KiB.
      uint64_t cap = (options_.queueSize - 1u) | (1u << 16) | (uint64_t{20} << 24) | (uint64_t{1} << 37);
      return cap & 0xffffffff;
    }
    case REG_CAP + 4:
      return ((options_.queueSize - 1u) | (1u << 16) | (uint64_t{20} << 24) | (uint64_t{1} << 37)) >> 32;
    case REG_VS:
      return VERSION_1_4;
    case REG_INTMS:
    case REG_INTMC:
      return state_.intms;
    case REG_CC:
      return state_.cc;
    case REG_CSTS:
      return state_.csts;
    case REG_AQA:
      return state_.aqa;
    case REG_ASQ:
      return state_.asq & 0xffffffff;
    case REG_ASQ + 4:
      return state_.asq >> 32;
    case REG_ACQ:
      return state_.acq & 0xffffffff;
    case REG_ACQ + 4:
      return state_.acq >> 32;
    default:
      return 0;
  }
}

std::vector<MsixUpdate> NvmeController::barWrite(uint8_t bar, uint64_t offset, uint8_t size, uint64_t value) {
  std::vector<MsixUpdate> effects;
  if (bar != 0 || (size != 1 && size != 2 && size != 4 && size != 8) || offset >= BAR0_SIZE ||
      size > BAR0_SIZE - offset) {
    return effects;
  }
  if (offset >= MSIX_PBA) return effects;  // Read-only.
  if (offset >= MSIX_TABLE) {
    if (auto update = msix_->tableWrite(offset - MSIX_TABLE, size, value)) effects.push_back(*update);
    return effects;
  }
  if (offset >= DOORBELLS) {
    if (size == 4 && offset % 4 == 0)
      doorbellWrite(static_cast<uint32_t>((offset - DOORBELLS) / 4), static_cast<uint32_t>(value));
    return effects;
  }
  registerWrite(offset, size, value);
  return effects;
}

void NvmeController::registerWrite(uint64_t offset, uint8_t size, uint64_t value) {
  // 64-bit registers may be written as two dwords.
  auto merge = [&](uint64_t& target, uint64_t base) {
    uint64_t shift = 8 * (offset - base);
    uint64_t mask = accessMask(size) << shift;
    target = (target & ~mask) | ((value << shift) & mask);
  };
  switch (offset & ~3ull) {
    case REG_INTMS:
      state_.intms |= static_cast<uint32_t>(value);  // Only for pin and MSI interrupts.
      return;
    case REG_INTMC:
      state_.intms &= ~static_cast<uint32_t>(value);
      return;
    case REG_CC:
      if (offset == REG_CC && size >= 4) controllerConfiguration(static_cast<uint32_t>(value));
      return;
    case REG_AQA:
      if (!ready()) state_.aqa = static_cast<uint32_t>(value) & 0x0fff0fff;
      return;
    case REG_ASQ:
    case REG_ASQ + 4:
      if (!ready()) merge(state_.asq, REG_ASQ);
      state_.asq &= ~uint64_t{PAGE - 1};
      return;
    case REG_ACQ:
    case REG_ACQ + 4:
      if (!ready()) merge(state_.acq, REG_ACQ);
      state_.acq &= ~uint64_t{PAGE - 1};
      return;
    default:
      return;  // NSSR and the rest: subsystem reset is not offered (CAP.NSSRS 0).
  }
}

void NvmeController::controllerConfiguration(uint32_t value) {
  // The transition is decided by what the controller is (CSTS), not by
  // the CC last written: a write the core re-sends to a successor, because
  // the instance before died carrying it out, finishes the job.
  uint32_t shutdownBefore = (state_.cc >> CC_SHN_SHIFT) & 3;
  state_.cc = value;
  if ((value & CC_EN) && !ready() && !(state_.csts & CSTS_CFS)) {
    enable();
  } else if (!(value & CC_EN) && (ready() || (state_.csts & CSTS_CFS))) {
    disable();
  }
  uint32_t shutdown = (value >> CC_SHN_SHIFT) & 3;
  if (shutdown != 0 && shutdownBefore == 0) {
    // Normal or abrupt shutdown: finish what runs and make it durable.
    drain();
    BlockBackend::Op flush = BlockBackend::Op::FLUSH;
    if (!backend_.readOnly()) {
      backend_.submit(flush, ~0ull, {}, 0);
      backend_.flushSubmissions();
      drain();
    }
    state_.csts = (state_.csts & ~(3u << 2)) | CSTS_SHST_COMPLETE;
  } else if (shutdown == 0) {
    state_.csts &= ~(3u << 2);
  }
}

bool NvmeController::queueFits(uint64_t base, uint32_t entries, uint32_t entrySize) const {
  return base % PAGE == 0 && memory_.contains(base, uint64_t{entries} * entrySize);
}

void NvmeController::enable() {
  uint32_t sqEntries = (state_.aqa & 0xfff) + 1;
  uint32_t cqEntries = ((state_.aqa >> 16) & 0xfff) + 1;
  uint32_t css = (state_.cc >> CC_CSS_SHIFT) & 7;
  uint32_t mps = (state_.cc >> CC_MPS_SHIFT) & 0xf;
  if (sqEntries < 2 || cqEntries < 2 || css != 0 || mps != 0 || !queueFits(state_.asq, sqEntries, 64) ||
      !queueFits(state_.acq, cqEntries, 16)) {
    state_.csts |= CSTS_CFS;  // A configuration no controller can run.
    return;
  }
  state_.sq[0] = {state_.asq, static_cast<uint16_t>(sqEntries), 0, 0, 0};
  state_.cq[0] = {state_.acq, static_cast<uint16_t>(cqEntries), 0, 0, 0, 1, 1, 0};
  state_.csts = CSTS_RDY;
}

void NvmeController::disable() {
  // A controller reset: nothing taken survives it, and once CSTS.RDY reads
  // 0 the driver may reuse every buffer. Drop what never reached the
  // kernel, wait for what did (its results belong to the old generation).
  ++generation_;
  backend_.dropWaiting();
  while (backend_.outstanding() > 0) {
    backend_.waitForCompletion();
    backend_.reap([](uint64_t, int32_t) {});
  }
  for (uint32_t slot = 0; slot < MAX_SLOTS; ++slot) {
    state_.slots[slot].state = Slot::FREE;
    work_[slot] = SlotWork{};
    parked_[slot] = false;
  }
  std::memset(state_.sq, 0, sizeof(state_.sq));
  std::memset(state_.cq, 0, sizeof(state_.cq));
  state_.asyncEventCount = 0;
  // The shadow buffers were the old driver's memory: never touched again.
  if (state_.shadowDoorbells != 0) switchShadowDoorbells(false);
  state_.shadowDoorbells = state_.eventIndexes = 0;
  state_.queuesGranted = NO_QUEUES_SET;
  state_.completing.active = 0;
  state_.csts &= ~(CSTS_RDY | CSTS_CFS);
}

std::vector<MsixUpdate> NvmeController::reset() {
  // A function-level reset: the controller reset, and the registers with it.
  disable();
  state_.cc = state_.aqa = state_.intms = 0;
  state_.asq = state_.acq = 0;
  state_.csts = 0;
  return {};
}

void NvmeController::doorbellWrite(uint32_t index, uint32_t value) {
  if (!ready()) return;
  uint16_t qid = static_cast<uint16_t>(index / 2);
  if (qid >= MAX_QUEUES) return;
  if (index % 2 == 0) {
    SubmissionQueue& sq = state_.sq[qid];
    if (sq.size == 0 || value >= sq.size) return;  // An invalid doorbell write: ignored.
    sq.tail = static_cast<uint16_t>(value);
    // With shadows on, an I/O queue's tail is read from its shadow: keep the
    // two the same, as a driver writes both.
    if (state_.shadowDoorbells != 0 && qid != 0) {
      if (uint32_t* slot = shadowSlot(state_.shadowDoorbells, 2u * qid)) *slot = value;
    }
    processQueue(qid);
  } else {
    CompletionQueue& cq = state_.cq[qid];
    if (cq.size == 0 || value >= cq.size) return;
    cq.head = static_cast<uint16_t>(value);
    if (state_.shadowDoorbells != 0 && qid != 0) {
      if (uint32_t* slot = shadowSlot(state_.shadowDoorbells, 2u * qid + 1)) *slot = value;
    }
    postWaiting();  // Room for completions that waited for it.
    processAllQueues();
  }
  backend_.flushSubmissions();
}

std::optional<uint32_t> NvmeController::freeSlot(uint16_t sqid) const {
  // An I/O queue has at most `ioslots` commands running; the admin queue
  // its own few (parked Asynchronous Event Requests count).
  uint32_t limit = sqid == 0 ? MAX_ASYNC_EVENTS + 2 : options_.ioSlots;
  uint32_t running = 0;
  std::optional<uint32_t> free;
  for (uint32_t slot = 0; slot < slotCount_; ++slot) {
    const Slot& entry = state_.slots[slot];
    if (entry.state == Slot::FREE) {
      if (!free) free = slot;
    } else if (entry.sqid == sqid) {
      ++running;
    }
  }
  if (running >= limit) return std::nullopt;
  return free;
}

void NvmeController::processAllQueues() {
  for (uint16_t qid = 0; qid < MAX_QUEUES; ++qid) {
    if (state_.sq[qid].size != 0) processQueue(qid);
  }
}

void NvmeController::processQueue(uint16_t sqid) {
  if (paused_ || !ready()) return;
  // An admin command that waits for I/O (deleting a queue, a shutdown)
  // drains the backend from inside this loop: commands are not taken from
  // there, out of order, but once the loop is back out.
  if (processing_) {
    deferred_ = true;
    return;
  }
  processing_ = true;
  takeCommands(sqid);
  processing_ = false;
  while (deferred_) {
    deferred_ = false;
    processing_ = true;
    for (uint16_t qid = 0; qid < MAX_QUEUES; ++qid) {
      if (state_.sq[qid].size != 0) takeCommands(qid);
    }
    processing_ = false;
  }
}

void NvmeController::takeCommands(uint16_t sqid) {
  if (paused_ || !ready()) return;
  SubmissionQueue& sq = state_.sq[sqid];
  if (sq.size == 0) return;
  bool shadow = state_.shadowDoorbells != 0 && sqid != 0;
  for (;;) {
    if (shadow) {
      // EventIdx = what we consumed, then the shadow tail: a tail written
      // after our read is rung (and reaches us as the eventfd).
      uint32_t* event = shadowSlot(state_.eventIndexes, 2u * sqid);
      uint32_t* tail = shadowSlot(state_.shadowDoorbells, 2u * sqid);
      if (event == nullptr || tail == nullptr) return;
      std::atomic_ref<uint32_t>(*event).store(sq.head, std::memory_order_seq_cst);
      uint32_t value = std::atomic_ref<uint32_t>(*tail).load(std::memory_order_seq_cst);
      if (value < sq.size) sq.tail = static_cast<uint16_t>(value);
    }
    uint16_t before = sq.head;
    takeFrom(sqid);
    if (!shadow || sq.head == before || sq.head != sq.tail) return;
  }
}

void NvmeController::takeFrom(uint16_t sqid) {
  SubmissionQueue& sq = state_.sq[sqid];
  while (sq.head != sq.tail) {
    auto free = freeSlot(sqid);
    if (!free) break;  // Back-pressure: the command stays in the queue.
    Slot& slot = state_.slots[*free];
    const uint8_t* entry = memory_.translate(sq.base + uint64_t{sq.head} * 64, 64);
    if (entry == nullptr) {
      state_.csts |= CSTS_CFS;  // The queue left RAM (it was checked at creation).
      return;
    }
    std::memcpy(&slot.command, entry, sizeof(Command));  // Copied once, then checked.
    slot.sqid = sqid;
    slot.sequence = ++state_.nextSequence;
    slot.sqHead = static_cast<uint16_t>((sq.head + 1) % sq.size);
    slot.status = SUCCESS;
    slot.result = 0;
    // Recorded before the head moves: a successor that finds the slot
    // running and the head not yet past it moves the head (recover()).
    publish(slot.state, uint8_t{Slot::RUNNING});
    publish(sq.head, slot.sqHead);
    ++stats_->requests;
    execute(*free);
  }
}

void NvmeController::execute(uint32_t slot) {
  work_[slot] = SlotWork{};
  if (state_.slots[slot].sqid == 0) {
    executeAdmin(slot);
  } else {
    executeIo(slot);
  }
}

void NvmeController::complete(uint32_t slot, uint16_t status, uint32_t result) {
  Slot& entry = state_.slots[slot];
  entry.status = status;
  entry.result = result;
  entry.state = Slot::DONE;
  if (status != SUCCESS) {
    ++state_.errorCount;
    ++stats_->errors;
  }
  postWaiting();
}

void NvmeController::postWaiting() {
  // Completions go out in the order their commands were taken, each when
  // its queue has room.
  for (;;) {
    std::optional<uint32_t> next;
    for (uint32_t slot = 0; slot < slotCount_; ++slot) {
      const Slot& entry = state_.slots[slot];
      if (entry.state != Slot::DONE) continue;
      uint16_t cqid = cqidOf(entry, state_);
      const CompletionQueue& cq = state_.cq[cqid];
      if (cq.size == 0) continue;
      // The head the driver last rang is enough until the queue looks full;
      // only then is the shadow head worth reading (and EventIdx asking for
      // a ring when it moves).
      if ((cq.tail + 1) % cq.size == cq.head && state_.shadowDoorbells != 0 && cqid != 0)
        readShadowHead(cqid);
      if ((cq.tail + 1) % cq.size == cq.head) continue;
      if (!next || entry.sequence < state_.slots[*next].sequence) next = slot;
    }
    if (!next || !post(*next)) break;
  }
  finishPendingDeletion();
}

void NvmeController::finishPendingDeletion() {
  // Every Delete I/O SQ parked until its queue's completions were out.
  for (uint32_t slot = 0; slot < slotCount_; ++slot) {
    const Slot& admin = state_.slots[slot];
    if (admin.state != Slot::RUNNING || admin.sqid != 0 || admin.command.opcode != DELETE_IO_SQ ||
        !parked_[slot]) {
      continue;
    }
    uint16_t qid = admin.command.cdw10 & 0xffff;
    if (qid == 0 || qid >= MAX_QUEUES) continue;
    bool waiting = false;
    for (uint32_t other = 0; other < slotCount_ && !waiting; ++other) {
      const Slot& entry = state_.slots[other];
      waiting = entry.state != Slot::FREE && entry.sqid == qid;
    }
    if (waiting) continue;
    parked_[slot] = false;
    state_.sq[qid] = {};
    complete(slot, SUCCESS);
  }
}

bool NvmeController::post(uint32_t slot) {
  Slot& entry = state_.slots[slot];
  uint16_t cqid = cqidOf(entry, state_);
  CompletionQueue& cq = state_.cq[cqid];
  uint8_t* at = memory_.translate(cq.base + uint64_t{cq.tail} * 16, 16);
  if (at == nullptr) {
    state_.csts |= CSTS_CFS;
    return false;
  }
  Completion completion{};
  completion.dw0 = entry.result;
  completion.sqHead = state_.sq[entry.sqid].head;
  completion.sqId = entry.sqid;
  completion.cid = entry.command.cid;
  uint16_t statusField = entry.status == SUCCESS ? 0 : static_cast<uint16_t>(entry.status | DO_NOT_RETRY);
  completion.status = static_cast<uint16_t>((statusField << 1) | cq.phase);
  // The record first: a successor finishing a torn completion writes these
  // same bytes at this same place, and runs nothing again.
  state_.completing.entry = completion;
  state_.completing.slot = slot;
  state_.completing.cqid = cqid;
  state_.completing.cqTail = cq.tail;
  publish(state_.completing.active, uint32_t{1});
  // The phase tag is in the last dword: write it last, so the driver never
  // sees a new phase with old contents.
  std::memcpy(at, &completion, 12);
  std::atomic_thread_fence(std::memory_order_release);
  std::memcpy(at + 12, reinterpret_cast<const uint8_t*>(&completion) + 12, 4);
  cq.tail = static_cast<uint16_t>((cq.tail + 1) % cq.size);
  if (cq.tail == 0) cq.phase ^= 1;
  entry.state = Slot::FREE;
  publish(state_.completing.active, uint32_t{0});
  if (cq.interruptsEnabled) msix_->raise(cq.vector);
  return true;
}

void NvmeController::recover() {
  // A completion cut short: write the recorded entry again (the same bytes
  // in the same place) and finish the bookkeeping.
  auto& record = state_.completing;
  if (record.active) {
    CompletionQueue& cq = state_.cq[record.cqid];
    if (cq.size != 0 && record.slot < MAX_SLOTS) {
      if (uint8_t* at = memory_.translate(cq.base + uint64_t{record.cqTail} * 16, 16)) {
        std::memcpy(at, &record.entry, sizeof(record.entry));
      }
      if (cq.tail == record.cqTail) {
        cq.tail = static_cast<uint16_t>((cq.tail + 1) % cq.size);
        if (cq.tail == 0) cq.phase ^= 1;
      } else if (cq.tail == 0 && record.cqTail == cq.size - 1) {
        // Died between moving the tail past the wrap and flipping the
        // phase: the next lap's entries carry the other phase.
        cq.phase = static_cast<uint8_t>((record.entry.status & 1) ^ 1);
      }
      state_.slots[record.slot].state = Slot::FREE;
      if (cq.interruptsEnabled) msix_->raise(cq.vector);
    }
    record.active = 0;
  }
  // A predecessor may have died after posting an entry and before its
  // message: every queue holding entries the driver has not rung past is
  // announced again (a spare message finds nothing new and is harmless).
  for (const CompletionQueue& cq : state_.cq) {
    if (cq.size != 0 && cq.interruptsEnabled && cq.tail != cq.head) msix_->raise(cq.vector);
  }
  // A command taken whose queue head had not moved yet; then every command
  // still running, in the order taken (the I/O ones are idempotent; admin
  // ones ran to completion inline, except the parked ones, run again).
  std::vector<uint32_t> running;
  for (uint32_t slot = 0; slot < slotCount_; ++slot) {
    Slot& entry = state_.slots[slot];
    if (entry.state == Slot::FREE) continue;
    if (entry.sqid >= MAX_QUEUES || state_.sq[entry.sqid].size == 0) {
      entry.state = Slot::FREE;
      continue;
    }
    SubmissionQueue& sq = state_.sq[entry.sqid];
    // Only the command taken last can be one whose queue head did not move
    // yet: an older one whose index the head has come round to again is
    // just old.
    if (entry.sequence == state_.nextSequence && (entry.sqHead + sq.size - 1) % sq.size == sq.head) {
      sq.head = entry.sqHead;
    }
    if (entry.state == Slot::RUNNING) running.push_back(slot);
  }
  std::sort(running.begin(), running.end(),
            [this](uint32_t a, uint32_t b) { return state_.slots[a].sequence < state_.slots[b].sequence; });
  // An admin command the predecessor may have carried out before it died:
  // finding its effect already there is its success, not an error.
  // New commands are not taken meanwhile (a replayed Delete drains the
  // backend): they get no replay's leniency.
  replaying_ = true;
  processing_ = true;
  for (uint32_t slot : running) {
    if (state_.slots[slot].sqid == 0 && state_.slots[slot].command.opcode == ASYNC_EVENT_REQUEST) continue;
    execute(slot);
  }
  processing_ = false;
  deferred_ = false;
  replaying_ = false;
  postWaiting();
  processAllQueues();
  backend_.flushSubmissions();
}

void NvmeController::onCompletions() {
  backend_.reap([this](uint64_t tag, int32_t result) {
    if (tag >> 32 != generation_) return;  // From before a reset: the slot is someone else's now.
    auto slot = static_cast<uint32_t>(tag);
    if (slot >= MAX_SLOTS || state_.slots[slot].state != Slot::RUNNING) return;
    SlotWork& work = work_[slot];
    if (result < 0 && work.status == SUCCESS) {
      const Command& command = state_.slots[slot].command;
      work.status = command.opcode == READ ? UNRECOVERED_READ_ERROR : WRITE_FAULT;
    }
    if (--work.operations > 0) return;
    if (work.flushAfter && work.status == SUCCESS) {
      work.flushAfter = false;
      work.operations = 1;
      backend_.submit(BlockBackend::Op::FLUSH, tagFor(slot), {}, 0);
      return;
    }
    complete(slot, work.status);
  });
  backend_.flushSubmissions();
  // Slots freed up: commands that waited for one can start.
  processAllQueues();
  backend_.flushSubmissions();
}

bool NvmeController::poll() {
  size_t before = backend_.outstanding();
  if (before == 0) return false;
  onCompletions();
  return backend_.outstanding() != before;
}

void NvmeController::drain() {
  while (backend_.outstanding() > 0) {
    backend_.waitForCompletion();
    onCompletions();
  }
}

void NvmeController::pause() {
  paused_ = true;
  drain();
}

void NvmeController::resume() {
  paused_ = false;
  postWaiting();
  processAllQueues();
  backend_.flushSubmissions();
}

// ---- NVM commands ----

void NvmeController::executeIo(uint32_t slot) {
  Slot& entry = state_.slots[slot];
  const Command& command = entry.command;
  SlotWork& work = work_[slot];
  if (command.opcode == FLUSH) {
    if (command.nsid != NAMESPACE_ID && command.nsid != ALL_NAMESPACES)
      return complete(slot, INVALID_NAMESPACE);
    if (backend_.readOnly() || !state_.volatileWriteCache) return complete(slot, SUCCESS);
    work.operations = 1;
    backend_.submit(BlockBackend::Op::FLUSH, tagFor(slot), {}, 0);
    return;
  }
  if (command.nsid != NAMESPACE_ID) return complete(slot, INVALID_NAMESPACE);
  switch (command.opcode) {
    case READ:
    case WRITE: {
      bool isRead = command.opcode == READ;
      uint64_t lba = command.cdw10 | (uint64_t{command.cdw11} << 32);
      uint64_t count = (command.cdw12 & 0xffff) + 1u;
      if (lba > blocks_ || count > blocks_ - lba) return complete(slot, LBA_OUT_OF_RANGE);
      uint64_t bytes = count * blockSize_;
      if (bytes > (uint64_t{PAGE} << MDTS)) return complete(slot, INVALID_FIELD);
      if (!isRead && backend_.readOnly())
        return complete(slot, status(2, 0x82));  // Write to a read-only range.
      uint16_t mapped = mapDataPointer(memory_, command, bytes, isRead, bitBucket_, work.iov);
      if (mapped != SUCCESS) return complete(slot, mapped);
      if (isRead) {
        ++state_.hostReads;
        state_.bytesReadRemainder += bytes;
        stats_->readBytes += bytes;
      } else {
        ++state_.hostWrites;
        state_.bytesWrittenRemainder += bytes;
        stats_->writtenBytes += bytes;
        work.flushAfter = (command.cdw12 & (1u << 30)) != 0 && state_.volatileWriteCache;  // FUA.
      }
      work.operations = 1;
      backend_.submit(isRead ? BlockBackend::Op::READ : BlockBackend::Op::WRITE, tagFor(slot), work.iov,
                      lba * blockSize_);
      return;
    }
    case WRITE_ZEROES: {
      uint64_t lba = command.cdw10 | (uint64_t{command.cdw11} << 32);
      uint64_t count = (command.cdw12 & 0xffff) + 1u;
      if (lba > blocks_ || count > blocks_ - lba) return complete(slot, LBA_OUT_OF_RANGE);
      if (backend_.readOnly()) return complete(slot, status(2, 0x82));
      bool deallocate = (command.cdw12 & (1u << 25)) != 0;
      work.operations = 1;
      backend_.submit(BlockBackend::Op::WRITE_ZEROES, tagFor(slot), {}, lba * blockSize_, count * blockSize_,
                      deallocate);
      return;
    }
    case DATASET_MANAGEMENT: {
      if (!dsmEnabled()) return complete(slot, INVALID_OPCODE);
      uint32_t ranges = (command.cdw10 & 0xff) + 1u;
      work.buffer.assign(ranges * 16u, 0);
      uint16_t copied = copyFromGuest(memory_, command, work.buffer);
      if (copied != SUCCESS) return complete(slot, copied);
      bool deallocate = (command.cdw11 & (1u << 2)) != 0;
      if (!deallocate) return complete(slot, SUCCESS);  // Attributes only: hints.
      for (uint32_t i = 0; i < ranges; ++i) {
        uint64_t count = loadLittleEndian(work.buffer.data() + 16 * i + 4, 4);
        uint64_t lba = loadLittleEndian(work.buffer.data() + 16 * i + 8, 8);
        if (lba > blocks_ || count > blocks_ - lba) return complete(slot, LBA_OUT_OF_RANGE);
      }
      for (uint32_t i = 0; i < ranges; ++i) {
        uint64_t count = loadLittleEndian(work.buffer.data() + 16 * i + 4, 4);
        uint64_t lba = loadLittleEndian(work.buffer.data() + 16 * i + 8, 8);
        if (count == 0) continue;
        ++work.operations;
        backend_.submit(BlockBackend::Op::DISCARD, tagFor(slot), {}, lba * blockSize_, count * blockSize_);
      }
      if (work.operations == 0) complete(slot, SUCCESS);
      return;
    }
    default:
      return complete(slot, INVALID_OPCODE);
  }
}

bool NvmeController::dsmEnabled() const {
  return options_.dsm != NvmeOptions::Dsm::DISABLE && !backend_.readOnly();
}

// ---- Admin commands ----

void NvmeController::executeAdmin(uint32_t slot) {
  Slot& entry = state_.slots[slot];
  const Command& command = entry.command;
  uint32_t result = 0;
  uint16_t outcome = SUCCESS;
  switch (command.opcode) {
    case IDENTIFY:
      outcome = identify(command);
      break;
    case GET_LOG_PAGE:
      outcome = getLogPage(command);
      break;
    case CREATE_IO_CQ:
      outcome = createCompletionQueue(command);
      break;
    case CREATE_IO_SQ:
      outcome = createSubmissionQueue(command);
      break;
    case DELETE_IO_SQ:
      outcome = deleteSubmissionQueue(command);
      // Parked: completions of the queue wait for room in their completion
      // queue; postWaiting() finishes the deletion when they are out.
      if (outcome == WAIT_FOR_COMPLETIONS) {
        parked_[slot] = true;
        return;
      }
      break;
    case DELETE_IO_CQ:
      outcome = deleteCompletionQueue(command);
      break;
    case SET_FEATURES:
      outcome = setFeatures(command, result);
      break;
    case GET_FEATURES:
      outcome = getFeatures(command, result);
      break;
    case ABORT:
      result = 1;  // Not aborted: every command here finishes on its own.
      break;
    case KEEP_ALIVE:
      break;
    case DOORBELL_BUFFER_CONFIG:
      outcome = doorbellBufferConfig(command);
      break;
    case ASYNC_EVENT_REQUEST:
      // Parked until an event: there are none to report yet, so the driver's
      // requests wait (up to AERL + 1 of them).
      if (state_.asyncEventCount >= MAX_ASYNC_EVENTS) {
        outcome = ASYNC_EVENT_LIMIT_EXCEEDED;
        break;
      }
      state_.asyncEventCids[state_.asyncEventCount++] = command.cid;
      return;
    case FORMAT_NVM: {
      uint32_t format = command.cdw10 & 0xf;
      uint32_t secureErase = (command.cdw10 >> 9) & 7;
      if (command.nsid != NAMESPACE_ID && command.nsid != ALL_NAMESPACES) {
        outcome = INVALID_NAMESPACE;
      } else if (format != 0 || ((command.cdw10 >> 4) & 1) != 0 || secureErase > 1) {
        outcome = INVALID_FORMAT;
      } else if (backend_.readOnly()) {
        outcome = status(2, 0x82);
      } else {
        // User data erase: the whole namespace reads zeros afterwards.
        work_[slot].operations = 1;
        backend_.submit(BlockBackend::Op::WRITE_ZEROES, tagFor(slot), {}, 0, blocks_ * blockSize_, true);
        return;
      }
      break;
    }
    default:
      outcome = INVALID_OPCODE;
      break;
  }
  complete(slot, outcome, result);
}

uint16_t NvmeController::identify(const Command& command) {
  uint32_t cns = command.cdw10 & 0xff;
  std::vector<uint8_t> data(4096, 0);
  switch (cns) {
    case 0x00:
      if (command.nsid != NAMESPACE_ID) return INVALID_NAMESPACE;
      data = identifyNamespace();
      break;
    case 0x01:
      data = identifyController();
      break;
    case 0x02:  // Active namespace IDs above NSID.
      if (command.nsid >= 0xfffffffe) return INVALID_NAMESPACE;
      if (command.nsid < NAMESPACE_ID) put(data, 0, 4, NAMESPACE_ID);
      break;
    case 0x03: {  // Namespace identification descriptors: the EUI-64.
      if (command.nsid != NAMESPACE_ID) return INVALID_NAMESPACE;
      put(data, 0, 1, 1);  // NIDT: IEEE EUI-64.
      put(data, 1, 1, 8);
      uint64_t eui = eui64();
      for (int i = 0; i < 8; ++i) data[4 + i] = static_cast<uint8_t>(eui >> (56 - 8 * i));
      break;
    }
    default:
      return INVALID_FIELD;
  }
  return copyToGuest(memory_, command, data);
}

uint64_t NvmeController::eui64() const {
  if (options_.eui64 != 0) return options_.eui64;
  // Stable for the device name, as bhyve derives one from the VM and slot.
  uint64_t hash = 0xcbf29ce484222325ull;
  for (unsigned char c : deviceName_) hash = (hash ^ c) * 0x100000001b3ull;
  return (uint64_t{0x589cfc} << 40) | (hash & 0xffffffffff);
}

std::string NvmeController::serial() const {
  if (!options_.serial.empty()) return options_.serial;
  std::string serial = "CV" + deviceName_;
  serial.erase(std::remove_if(serial.begin(), serial.end(), [](char c) { return c < 0x21 || c > 0x7e; }),
               serial.end());
  return serial.substr(0, 20);
}

std::vector<uint8_t> NvmeController::identifyController() const {
  std::vector<uint8_t> data(4096, 0);
  put(data, 0, 2, VENDOR);
  put(data, 2, 2, VENDOR);
  putText(data, 4, 20, serial());
  putText(data, 24, 40, "cellvisor NVMe");
  putText(data, 64, 8, "1.0");
  put(data, 72, 1, 4);     // RAB
  put(data, 77, 1, MDTS);  // 2^MDTS pages per command.
  put(data, 78, 2, 0);     // CNTLID
  put(data, 80, 4, VERSION_1_4);
  put(data, 111, 1, 1);  // CNTRLTYPE: I/O controller.
  uint16_t oacs = OACS_FORMAT | OACS_DOORBELL_BUFFER;
  put(data, 256, 2, oacs);
  put(data, 258, 1, 3);                     // ACL: 4 Aborts.
  put(data, 259, 1, MAX_ASYNC_EVENTS - 1);  // AERL
  put(data, 260, 1, 0x03);                  // FRMW: one slot, read-only.
  put(data, 261, 1, 0x04);                  // LPA: extended data for Get Log Page.
  put(data, 262, 1, 0);                     // ELPE: one error log entry.
  put(data, 263, 1, 0);                     // NPSS: one power state.
  put(data, 266, 2, 0x0157);                // WCTEMP
  put(data, 268, 2, 0x0175);                // CCTEMP
  put(data, 512, 1, 0x66);                  // SQES: 64 bytes.
  put(data, 513, 1, 0x44);                  // CQES: 16 bytes.
  put(data, 516, 4, 1);                     // NN
  uint16_t oncs = ONCS_WRITE_ZEROES;
  if (dsmEnabled()) oncs |= ONCS_DSM;
  put(data, 520, 2, oncs);
  put(data, 525, 1, 0x07);        // VWC: a volatile write cache; Flush of NSID FFFFFFFFh too.
  put(data, 530, 1, 1);           // NVSCC
  put(data, 536, 4, 0x00010001);  // SGLS: SGLs without alignment, bit buckets.
  // SUBNQN, NUL-padded: unique per device, so two controllers never merge.
  std::string nqn = "nqn.2014-08.org.nvmexpress:" + fmtHex(VENDOR) + fmtHex(VENDOR) + serial();
  std::copy(nqn.begin(), nqn.end(), data.begin() + 768);
  put(data, 2048, 2, 2500);  // Power state 0: 25 W.
  return data;
}

std::vector<uint8_t> NvmeController::identifyNamespace() const {
  std::vector<uint8_t> data(4096, 0);
  put(data, 0, 8, blocks_);                      // NSZE
  put(data, 8, 8, blocks_);                      // NCAP
  put(data, 16, 8, blocks_);                     // NUSE
  put(data, 25, 1, 0);                           // NLBAF: one format ...
  put(data, 26, 1, 0);                           // FLBAS: ... in use.
  if (backend_.readOnly()) put(data, 99, 1, 1);  // NSATTR: write protected.
  // DLFEAT: deallocated blocks read zeros, and Write Zeroes may deallocate.
  if (dsmEnabled()) put(data, 33, 1, 0x09);
  uint64_t eui = eui64();
  for (int i = 0; i < 8; ++i) data[120 + i] = static_cast<uint8_t>(eui >> (56 - 8 * i));
  put(data, 128, 4, uint32_t{static_cast<uint8_t>(std::countr_zero(blockSize_))} << 16);  // LBAF0: LBADS.
  return data;
}

uint16_t NvmeController::getLogPage(const Command& command) {
  uint8_t page = command.cdw10 & 0xff;
  uint64_t dwords = ((command.cdw10 >> 16) | (uint64_t{command.cdw11 & 0xffff} << 16)) + 1;
  uint64_t offset = command.cdw12 | (uint64_t{command.cdw13} << 32);
  if (dwords * 4 > (uint64_t{PAGE} << MDTS) || offset % 4 != 0) return INVALID_FIELD;
  std::vector<uint8_t> log;
  switch (page) {
    case 0x01:  // Error information: no entries kept.
      log.assign(64, 0);
      break;
    case 0x02: {  // SMART / health information.
      log.assign(512, 0);
      put(log, 1, 2, 0x0141);  // Composite temperature: 321 K.
      put(log, 3, 1, 100);     // Available spare.
      put(log, 4, 1, 10);      // Spare threshold.
      put128(log, 32, (state_.bytesReadRemainder + 512 * 1000 - 1) / (512 * 1000));
      put128(log, 48, (state_.bytesWrittenRemainder + 512 * 1000 - 1) / (512 * 1000));
      put128(log, 64, state_.hostReads);
      put128(log, 80, state_.hostWrites);
      put128(log, 112, 1);  // Power cycles.
      put128(log, 176, state_.errorCount);
      break;
    }
    case 0x03:  // Firmware slots: slot 1 active.
      log.assign(512, 0);
      put(log, 0, 1, 1);
      putText(log, 8, 8, "1.0");
      break;
    case 0x04:  // Changed namespaces: none.
      log.assign(4096, 0);
      break;
    default:
      return INVALID_LOG_PAGE;
  }
  std::vector<uint8_t> out(dwords * 4, 0);
  if (offset < log.size()) {
    std::copy(log.begin() + static_cast<long>(offset),
              log.begin() + static_cast<long>(std::min<uint64_t>(log.size(), offset + out.size())),
              out.begin());
  }
  return copyToGuest(memory_, command, out);
}

uint16_t NvmeController::createCompletionQueue(const Command& command) {
  uint16_t qid = command.cdw10 & 0xffff;
  uint32_t entries = (command.cdw10 >> 16) + 1;
  bool contiguous = command.cdw11 & 1;
  bool interrupts = command.cdw11 & 2;
  uint16_t vector = static_cast<uint16_t>(command.cdw11 >> 16);
  if (replaying_ && qid <= options_.maxQueues && qid != 0) {
    const CompletionQueue& cq = state_.cq[qid];
    if (cq.size == entries && cq.base == command.dptr[0] && cq.vector == vector &&
        cq.interruptsEnabled == (interrupts ? 1 : 0)) {
      return SUCCESS;
    }
  }
  if (qid == 0 || qid > options_.maxQueues || state_.cq[qid].size != 0) return INVALID_QUEUE_IDENTIFIER;
  if (entries < 2 || entries > options_.queueSize) return INVALID_QUEUE_SIZE;
  if (!contiguous) return INVALID_FIELD;  // CAP.CQR: contiguous queues only.
  if (interrupts && vector >= vectorCount_) return INVALID_INTERRUPT_VECTOR;
  if (command.dptr[0] % PAGE != 0) return PRP_OFFSET_INVALID;
  if (!queueFits(command.dptr[0], entries, 16)) return INVALID_FIELD;
  // Every field before the size: a queue with a size is a whole queue.
  CompletionQueue& cq = state_.cq[qid];
  cq = {command.dptr[0], 0, 0, 0, vector, 1, static_cast<uint8_t>(interrupts ? 1 : 0), 0};
  publish(cq.size, static_cast<uint16_t>(entries));
  return SUCCESS;
}

uint16_t NvmeController::createSubmissionQueue(const Command& command) {
  uint16_t qid = command.cdw10 & 0xffff;
  uint32_t entries = (command.cdw10 >> 16) + 1;
  bool contiguous = command.cdw11 & 1;
  uint16_t cqid = static_cast<uint16_t>(command.cdw11 >> 16);
  if (replaying_ && qid <= options_.maxQueues && qid != 0) {
    const SubmissionQueue& sq = state_.sq[qid];
    if (sq.size == entries && sq.base == command.dptr[0] && sq.cqid == cqid) return SUCCESS;
  }
  if (qid == 0 || qid > options_.maxQueues || state_.sq[qid].size != 0) return INVALID_QUEUE_IDENTIFIER;
  if (cqid == 0 || cqid > options_.maxQueues || state_.cq[cqid].size == 0) return COMPLETION_QUEUE_INVALID;
  if (entries < 2 || entries > options_.queueSize) return INVALID_QUEUE_SIZE;
  if (!contiguous) return INVALID_FIELD;
  if (command.dptr[0] % PAGE != 0) return PRP_OFFSET_INVALID;
  if (!queueFits(command.dptr[0], entries, 64)) return INVALID_FIELD;
  SubmissionQueue& sq = state_.sq[qid];
  sq = {command.dptr[0], 0, 0, 0, cqid};
  publish(sq.size, static_cast<uint16_t>(entries));
  return SUCCESS;
}

uint16_t NvmeController::deleteSubmissionQueue(const Command& command) {
  uint16_t qid = command.cdw10 & 0xffff;
  if (replaying_ && qid != 0 && qid < MAX_QUEUES && state_.sq[qid].size == 0) return SUCCESS;
  if (qid == 0 || qid >= MAX_QUEUES || state_.sq[qid].size == 0) return INVALID_QUEUE_IDENTIFIER;
  // Its commands finish first (none is abandoned mid-write) and their
  // completions are posted, when their queue has room; then it goes.
  drain();
  postWaiting();
  for (uint32_t slot = 0; slot < slotCount_; ++slot) {
    const Slot& entry = state_.slots[slot];
    if (entry.state != Slot::FREE && entry.sqid == qid) return WAIT_FOR_COMPLETIONS;
  }
  state_.sq[qid] = {};
  return SUCCESS;
}

uint16_t NvmeController::deleteCompletionQueue(const Command& command) {
  uint16_t qid = command.cdw10 & 0xffff;
  if (replaying_ && qid != 0 && qid < MAX_QUEUES && state_.cq[qid].size == 0) return SUCCESS;
  if (qid == 0 || qid >= MAX_QUEUES || state_.cq[qid].size == 0) return INVALID_QUEUE_IDENTIFIER;
  for (uint16_t sq = 1; sq < MAX_QUEUES; ++sq) {
    if (state_.sq[sq].size != 0 && state_.sq[sq].cqid == qid) return INVALID_QUEUE_DELETION;
  }
  state_.cq[qid] = {};
  return SUCCESS;
}

uint16_t NvmeController::setFeatures(const Command& command, uint32_t& result) {
  uint8_t feature = command.cdw10 & 0xff;
  bool save = (command.cdw10 >> 31) & 1;
  if (save) return FEATURE_NOT_SAVEABLE;
  uint32_t value = command.cdw11;
  switch (feature) {
    case ARBITRATION:
      state_.arbitration = value;
      break;
    case POWER_MANAGEMENT:
      if ((value & 0x1f) != 0) return INVALID_FIELD;  // One power state.
      state_.powerManagement = value;
      break;
    case TEMPERATURE_THRESHOLD:
      state_.temperatureThreshold = value & 0xffff;
      break;
    case ERROR_RECOVERY:
      state_.errorRecovery = value;
      break;
    case VOLATILE_WRITE_CACHE:
      state_.volatileWriteCache = value & 1;
      result = value & 1;
      break;
    case NUMBER_OF_QUEUES: {
      uint32_t submission = value & 0xffff;
      uint32_t completion = value >> 16;
      if (submission == 0xffff || completion == 0xffff) return INVALID_FIELD;
      uint32_t most = options_.maxQueues - 1u;  // 0-based.
      if (state_.queuesGranted == NO_QUEUES_SET) {
        state_.queuesGranted = (std::min(completion, most) << 16) | std::min(submission, most);
      }
      result = state_.queuesGranted;
      break;
    }
    case INTERRUPT_COALESCING:
      state_.interruptCoalescing = value & 0xffff;
      break;
    case INTERRUPT_VECTOR_CONFIG: {
      uint16_t vector = value & 0xffff;
      if (vector >= vectorCount_) return INVALID_FIELD;
      state_.interruptVectorConfig[vector] = value;
      break;
    }
    case WRITE_ATOMICITY:
      state_.writeAtomicity = value & 1;
      break;
    case ASYNC_EVENT_CONFIG:
      state_.asyncEventConfig = value;
      break;
    default:
      return INVALID_FIELD;
  }
  return SUCCESS;
}

uint16_t NvmeController::getFeatures(const Command& command, uint32_t& result) {
  uint8_t feature = command.cdw10 & 0xff;
  uint32_t select = (command.cdw10 >> 8) & 7;
  if (select == 3) {  // Capabilities: every feature changeable, none saveable.
    result = 1u << 2;
    return SUCCESS;
  }
  bool defaults = select == 1;
  switch (feature) {
    case ARBITRATION:
      result = defaults ? 0 : state_.arbitration;
      break;
    case POWER_MANAGEMENT:
      result = defaults ? 0 : state_.powerManagement;
      break;
    case TEMPERATURE_THRESHOLD:
      result = defaults ? 0x0157 : state_.temperatureThreshold;
      break;
    case ERROR_RECOVERY:
      result = defaults ? 0 : state_.errorRecovery;
      break;
    case VOLATILE_WRITE_CACHE:
      result = defaults ? 1 : state_.volatileWriteCache;
      break;
    case NUMBER_OF_QUEUES: {
      uint32_t most = options_.maxQueues - 1u;
      result = defaults || state_.queuesGranted == NO_QUEUES_SET ? (most << 16) | most : state_.queuesGranted;
      break;
    }
    case INTERRUPT_COALESCING:
      result = defaults ? 0 : state_.interruptCoalescing;
      break;
    case INTERRUPT_VECTOR_CONFIG: {
      uint16_t vector = command.cdw11 & 0xffff;
      if (vector >= vectorCount_) return INVALID_FIELD;
      result = defaults ? vector : (state_.interruptVectorConfig[vector] & ~0xffffu) | vector;
      break;
    }
    case WRITE_ATOMICITY:
      result = defaults ? 0 : state_.writeAtomicity;
      break;
    case ASYNC_EVENT_CONFIG:
      result = defaults ? 0 : state_.asyncEventConfig;
      break;
    default:
      return INVALID_FIELD;
  }
  return SUCCESS;
}

uint16_t NvmeController::doorbellBufferConfig(const Command& command) {
  uint64_t shadow = command.dptr[0];
  uint64_t events = command.dptr[1];
  uint64_t bytes = 8ull * MAX_QUEUES;
  if (shadow % PAGE != 0 || events % PAGE != 0 || !memory_.contains(shadow, bytes) ||
      !memory_.contains(events, bytes)) {
    return INVALID_FIELD;
  }
  bool wasOn = state_.shadowDoorbells != 0;
  state_.shadowDoorbells = shadow;
  state_.eventIndexes = events;
  // The queues that exist already start from what we know of them.
  for (uint16_t qid = 1; qid < MAX_QUEUES; ++qid) {
    if (state_.sq[qid].size != 0) *shadowSlot(shadow, 2u * qid) = state_.sq[qid].tail;
    if (state_.cq[qid].size != 0) *shadowSlot(shadow, 2u * qid + 1) = state_.cq[qid].head;
  }
  if (!wasOn) switchShadowDoorbells(true);
  return SUCCESS;
}

}  // namespace cellvisor
