#include "tests/harness/nvme-harness.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cstring>
#include <stdexcept>

namespace cellvisor::testing {

using namespace std::chrono_literals;

TempImage::TempImage(uint64_t bytes) : path_("/var/tmp/cellvisor-nvme-XXXXXX"), bytes_(bytes) {
  int fd = ::mkstemp(path_.data());
  if (fd < 0) throw std::runtime_error("cannot make " + path_);
  int truncated = ::ftruncate(fd, static_cast<off_t>(bytes));
  ::close(fd);
  if (truncated != 0) {
    ::unlink(path_.c_str());
    throw std::runtime_error("cannot size " + path_);
  }
}

TempImage::~TempImage() {
  ::unlink(path_.c_str());
}

UniqueFd TempImage::open(int flags) const {
  return UniqueFd(::open(path_.c_str(), flags | O_CLOEXEC));
}

NvmeHarness::NvmeHarness(const std::string& options, uint64_t memoryBytes) : memory_(memoryBytes) {
  server_ = std::make_unique<ServerUnderTest>("nvme", options, memory_, wiring_, 0, BAR_ADDRESS);
  vectors_ = server_->vectors();
  msixTable_ = server_->msixTable();
  proxy_ = &server_->proxy();
  process_ = &server_->process();
  resources_ = &server_->resources();
  interruptCounts_.assign(vectors_, 0);
}

NvmeHarness::~NvmeHarness() = default;

bool NvmeHarness::waitFor(uint32_t mask, uint32_t value, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while ((csts() & mask) != value) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

uint64_t NvmeHarness::queueMemory(uint16_t qid, bool submission) {
  auto& base = queueMemory_[{qid, submission}];
  if (base == 0) base = allocate(1024ull * (submission ? 64 : 16));
  return base;
}

bool NvmeHarness::enable(std::chrono::milliseconds timeout) {
  write32(nvme::REG_CC, 0);
  if (!waitFor(nvme::CSTS_RDY, 0, timeout)) return false;
  disable(0ms);  // Forget every queue.
  uint64_t asq = queueMemory(0, true);
  uint64_t acq = queueMemory(0, false);
  std::memset(host(asq, ADMIN_ENTRIES * 64), 0, ADMIN_ENTRIES * 64);
  std::memset(host(acq, ADMIN_ENTRIES * 16), 0, ADMIN_ENTRIES * 16);
  write32(nvme::REG_AQA, ((ADMIN_ENTRIES - 1u) << 16) | (ADMIN_ENTRIES - 1u));
  write32(nvme::REG_ASQ, static_cast<uint32_t>(asq));  // As Linux does: low half, then high.
  write32(nvme::REG_ASQ + 4, static_cast<uint32_t>(asq >> 32));
  write64(nvme::REG_ACQ, acq);
  uint32_t cc = (6u << nvme::CC_IOSQES_SHIFT) | (4u << nvme::CC_IOCQES_SHIFT);  // CSS NVM, MPS 4 KiB.
  write32(nvme::REG_CC, cc);
  write32(nvme::REG_CC, cc | nvme::CC_EN);
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    uint32_t status = csts();
    if (status & nvme::CSTS_CFS) return false;
    if (status & nvme::CSTS_RDY) break;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  sqs_[0] = {asq, ADMIN_ENTRIES, 0, 0, {}};
  cqs_[0] = {acq, ADMIN_ENTRIES, 0, 1, 0, true};
  return true;
}

bool NvmeHarness::disable(std::chrono::milliseconds timeout) {
  bool stopped = true;
  if (timeout.count() > 0) {
    write32(nvme::REG_CC, read32(nvme::REG_CC) & ~nvme::CC_EN);
    stopped = waitFor(nvme::CSTS_RDY, 0, timeout);
  }
  for (auto& [qid, sq] : sqs_) {
    for (auto& [cid, command] : sq.outstanding) {
      freeListPages_.insert(freeListPages_.end(), command.listPages.begin(), command.listPages.end());
    }
  }
  sqs_.clear();
  cqs_.clear();
  done_.clear();
  return stopped;
}

uint64_t NvmeHarness::allocate(uint64_t bytes, uint64_t alignment) {
  nextFree_ = (nextFree_ + alignment - 1) & ~(alignment - 1);
  uint64_t address = nextFree_;
  nextFree_ += bytes;
  if (nextFree_ > memory_.size()) throw std::length_error("harness guest memory exhausted");
  std::memset(host(address, bytes), 0, bytes);
  return address;
}

uint64_t NvmeHarness::listPage() {
  uint64_t page;
  if (freeListPages_.empty()) {
    page = allocate(PAGE);
  } else {
    page = freeListPages_.back();
    freeListPages_.pop_back();
    std::memset(host(page, PAGE), 0, PAGE);
  }
  pendingListPages_.push_back(page);
  return page;
}

nvme::Command NvmeHarness::command(uint8_t opcode, uint32_t nsid) {
  nvme::Command command{};
  command.opcode = opcode;
  command.nsid = nsid;
  return command;
}

uint16_t NvmeHarness::submit(uint16_t sqid, nvme::Command command) {
  SubmissionQueue& sq = sqs_.at(sqid);
  // Counted by completions, not by the SQ head the controller reports:
  // never more outstanding than the queue holds.
  if (sq.outstanding.size() + 1 >= sq.size) throw std::runtime_error("submission queue full");
  while (sq.outstanding.count(nextCid_) != 0) ++nextCid_;
  command.cid = nextCid_++;
  std::memcpy(host(sq.base + 64ull * sq.tail, 64), &command, 64);
  sq.tail = static_cast<uint16_t>((sq.tail + 1) % sq.size);
  sq.outstanding[command.cid] = {std::move(pendingListPages_)};
  pendingListPages_.clear();
  return command.cid;
}

void NvmeHarness::doorbell(uint64_t offset, uint32_t value) {
  uint32_t index = static_cast<uint32_t>((offset - nvme::DOORBELLS) / 4);
  if (shadow_ != 0 && index >= 2) {
    // Linux's rule (nvme_dbbuf_update_and_check_event): the new value to
    // the shadow slot, a full barrier, then ring only if the controller's
    // EventIdx lies between the old value and the new.
    auto* slot = reinterpret_cast<uint32_t*>(host(shadow_ + 4ull * index, 4));
    auto* event = reinterpret_cast<uint32_t*>(host(eventIndex_ + 4ull * index, 4));
    uint16_t old = static_cast<uint16_t>(__atomic_load_n(slot, __ATOMIC_RELAXED));
    __atomic_store_n(slot, value, __ATOMIC_RELEASE);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    uint16_t eventIndex = static_cast<uint16_t>(__atomic_load_n(event, __ATOMIC_ACQUIRE));
    auto fresh = static_cast<uint16_t>(value);
    if (static_cast<uint16_t>(fresh - eventIndex - 1) >= static_cast<uint16_t>(fresh - old)) return;
  }
  ++rung_;
  // A doorbell the server switched to an ioeventfd is KVM's to signal; any
  // other reaches the server as a register write.
  auto wired = wiring_.doorbells.find(BAR_ADDRESS + offset);
  if (wired != wiring_.doorbells.end()) {
    eventfd_write(wired->second, 1);
  } else {
    write32(offset, value);
  }
}

void NvmeHarness::ring(uint16_t sqid) {
  std::atomic_thread_fence(std::memory_order_release);
  doorbell(nvme::DOORBELLS + 8ull * sqid, sqs_.at(sqid).tail);
}

NvmeResult NvmeHarness::useShadowDoorbells() {
  uint64_t shadow = allocate(PAGE);
  uint64_t events = allocate(PAGE);
  nvme::Command config = command(nvme::DOORBELL_BUFFER_CONFIG);
  config.dptr[0] = shadow;
  config.dptr[1] = events;
  NvmeResult result = run(0, config);
  if (result.status() == 0) {
    shadow_ = shadow;
    eventIndex_ = events;
  }
  return result;
}

size_t NvmeHarness::reap(uint16_t cqid) {
  CompletionQueue& cq = cqs_.at(cqid);
  size_t taken = 0;
  for (;;) {
    uint8_t* at = host(cq.base + 16ull * cq.head, 16);
    // The status dword (with the phase tag) first, then the rest.
    uint16_t status = __atomic_load_n(reinterpret_cast<uint16_t*>(at + 14), __ATOMIC_ACQUIRE);
    if ((status & 1) != cq.phase) break;
    nvme::Completion entry;
    std::memcpy(&entry, at, sizeof(entry));
    if (++cq.head == cq.size) {
      cq.head = 0;
      cq.phase ^= 1;
    }
    take(cqid, entry);
    ++taken;
  }
  if (taken > 0) doorbell(nvme::DOORBELLS + 8ull * cqid + 4, cq.head);
  return taken;
}

void NvmeHarness::take(uint16_t cqid, const nvme::Completion& entry) {
  auto describe = [&] {
    return "CQ " + std::to_string(cqid) + " entry: SQ " + std::to_string(entry.sqId) + " CID " +
           std::to_string(entry.cid) + " SQHD " + std::to_string(entry.sqHead) + " status " +
           std::to_string(entry.status >> 1);
  };
  auto sq = sqs_.find(entry.sqId);
  if (sq == sqs_.end() || sq->second.cqid != cqid) {
    problems_.push_back(describe() + ": no such SQ completes on this CQ");
    return;
  }
  if (entry.sqHead >= sq->second.size) problems_.push_back(describe() + ": SQ head out of range");
  auto command = sq->second.outstanding.find(entry.cid);
  if (command == sq->second.outstanding.end()) {
    problems_.push_back(describe() + ": not outstanding (a duplicate or a stray)");
    return;
  }
  freeListPages_.insert(freeListPages_.end(), command->second.listPages.begin(),
                        command->second.listPages.end());
  sq->second.outstanding.erase(command);
  done_[{entry.sqId, entry.cid}] = entry;
}

bool NvmeHarness::interruptPending(uint16_t vector, std::chrono::milliseconds timeout) {
  pollfd fd{resources_->interrupt(vector), POLLIN, 0};
  if (::poll(&fd, 1, static_cast<int>(timeout.count())) <= 0) return false;
  eventfd_t value;
  if (eventfd_read(fd.fd, &value) != 0) return false;
  interruptCounts_[vector] += value;
  return true;
}

void NvmeHarness::waitForInterrupt(std::chrono::milliseconds timeout) {
  std::vector<pollfd> fds;
  std::vector<uint16_t> vectors;
  for (const auto& [qid, cq] : cqs_) {
    if (!cq.interrupts || cq.vector >= vectors_) continue;
    bool seen = false;
    for (uint16_t vector : vectors) seen |= vector == cq.vector;
    if (seen) continue;
    vectors.push_back(cq.vector);
    fds.push_back({resources_->interrupt(cq.vector), POLLIN, 0});
  }
  if (::poll(fds.data(), fds.size(), static_cast<int>(std::max<int64_t>(timeout.count(), 1))) <= 0) return;
  for (size_t i = 0; i < fds.size(); ++i) {
    eventfd_t value;
    if ((fds[i].revents & POLLIN) && eventfd_read(fds[i].fd, &value) == 0)
      interruptCounts_[vectors[i]] += value;
  }
}

NvmeResult NvmeHarness::wait(uint16_t sqid, uint16_t cid, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  uint16_t cqid = sqs_.at(sqid).cqid;
  for (;;) {
    auto found = done_.find({sqid, cid});
    if (found != done_.end()) {
      NvmeResult result{true, found->second};
      done_.erase(found);
      return result;
    }
    if (reap(cqid) > 0) continue;
    auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return {};
    // Interrupts are what it waits for; the short bound also catches an
    // entry posted with none.
    waitForInterrupt(std::min(left, std::chrono::milliseconds(20)));
  }
}

NvmeResult NvmeHarness::run(uint16_t sqid, const nvme::Command& command, std::chrono::milliseconds timeout) {
  uint16_t cid = submit(sqid, command);
  ring(sqid);
  return wait(sqid, cid, timeout);
}

std::vector<std::pair<uint16_t, nvme::Completion>> NvmeHarness::collect(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    for (const auto& [qid, cq] : cqs_) reap(qid);
    if (!done_.empty()) break;
    auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    waitForInterrupt(std::min(left, std::chrono::milliseconds(20)));
  }
  std::vector<std::pair<uint16_t, nvme::Completion>> taken;
  for (const auto& [key, entry] : done_) taken.emplace_back(key.first, entry);
  done_.clear();
  return taken;
}

void NvmeHarness::setPrps(nvme::Command& command, uint64_t buffer, uint64_t bytes) {
  command.flags &= 0x3f;  // PSDT 00: PRPs.
  command.dptr[0] = buffer;
  command.dptr[1] = 0;
  uint64_t first = PAGE - buffer % PAGE;
  if (bytes <= first) return;
  uint64_t next = buffer + first;
  if (bytes - first <= PAGE) {
    command.dptr[1] = next;
    return;
  }
  std::vector<uint64_t> pages;
  for (uint64_t page = next; page < buffer + bytes; page += PAGE) pages.push_back(page);
  command.dptr[1] = prpList(pages);
}

uint64_t NvmeHarness::prpList(const std::vector<uint64_t>& entries, uint32_t offset) {
  constexpr uint32_t SLOTS = PAGE / 8;
  uint64_t first = listPage();
  uint64_t page = first;
  uint32_t slot = offset / 8;
  for (size_t i = 0; i < entries.size(); ++i) {
    // The last slot of a list page points to the next page while more
    // than one entry remains.
    if (slot == SLOTS - 1 && entries.size() - i > 1) {
      uint64_t next = listPage();
      std::memcpy(host(page + 8ull * slot, 8), &next, 8);
      page = next;
      slot = 0;
    }
    std::memcpy(host(page + 8ull * slot++, 8), &entries[i], 8);
  }
  return first + offset;
}

void NvmeHarness::setDescriptor(nvme::Command& command, const SglEntry& descriptor) {
  command.flags = static_cast<uint8_t>((command.flags & 0x3f) | (1u << 6));  // PSDT 01: SGLs.
  command.dptr[0] = descriptor.address;
  command.dptr[1] =
      descriptor.length | (uint64_t{static_cast<uint8_t>(descriptor.type << 4 | descriptor.subtype)} << 56);
}

void NvmeHarness::setSgls(nvme::Command& command, const std::vector<SglEntry>& descriptors,
                          size_t perSegment) {
  if (descriptors.size() == 1) return setDescriptor(command, descriptors[0]);
  perSegment = std::min<size_t>(perSegment, PAGE / 16 - 1);
  size_t segments = (descriptors.size() + perSegment - 1) / perSegment;
  SglEntry next{};
  // Back to front: each segment ends with the descriptor of the next.
  for (size_t s = segments; s-- > 0;) {
    std::vector<SglEntry> list(
        descriptors.begin() + static_cast<long>(s * perSegment),
        descriptors.begin() + static_cast<long>(std::min(descriptors.size(), (s + 1) * perSegment)));
    if (s + 1 < segments) list.push_back(next);
    uint64_t page = listPage();
    for (size_t i = 0; i < list.size(); ++i) {
      nvme::Command scratch{};
      setDescriptor(scratch, list[i]);
      std::memcpy(host(page + 16 * i, 16), scratch.dptr, 16);
    }
    next = {page, static_cast<uint32_t>(16 * list.size()),
            s + 1 == segments ? SglEntry::LAST_SEGMENT : SglEntry::SEGMENT};
  }
  setDescriptor(command, next);
}

nvme::Command NvmeHarness::readWrite(uint8_t opcode, uint64_t lba, uint32_t blocks) {
  nvme::Command command = NvmeHarness::command(opcode, 1);
  command.cdw10 = static_cast<uint32_t>(lba);
  command.cdw11 = static_cast<uint32_t>(lba >> 32);
  command.cdw12 = blocks - 1;  // NLB, 0-based.
  return command;
}

NvmeResult NvmeHarness::io(uint16_t sqid, uint8_t opcode, uint64_t lba, uint32_t blocks, uint64_t buffer,
                           uint32_t blockSize) {
  nvme::Command command = readWrite(opcode, lba, blocks);
  setPrps(command, buffer, uint64_t{blocks} * blockSize);
  return run(sqid, command);
}

NvmeResult NvmeHarness::identify(uint8_t cns, uint32_t nsid, uint64_t buffer) {
  nvme::Command command = NvmeHarness::command(nvme::IDENTIFY, nsid);
  command.cdw10 = cns;
  setPrps(command, buffer, 4096);
  return run(0, command);
}

NvmeResult NvmeHarness::getLogPage(uint8_t page, uint32_t nsid, uint64_t buffer, uint32_t bytes,
                                   uint64_t offset) {
  nvme::Command command = NvmeHarness::command(nvme::GET_LOG_PAGE, nsid);
  uint32_t dwords = bytes / 4 - 1;  // NUMD, 0-based.
  command.cdw10 = page | (dwords << 16);
  command.cdw11 = dwords >> 16;
  command.cdw12 = static_cast<uint32_t>(offset);
  command.cdw13 = static_cast<uint32_t>(offset >> 32);
  setPrps(command, buffer, bytes);
  return run(0, command);
}

NvmeResult NvmeHarness::setFeatures(uint8_t feature, uint32_t value) {
  nvme::Command command = NvmeHarness::command(nvme::SET_FEATURES);
  command.cdw10 = feature;
  command.cdw11 = value;
  return run(0, command);
}

NvmeResult NvmeHarness::getFeatures(uint8_t feature, uint32_t select, uint32_t cdw11) {
  nvme::Command command = NvmeHarness::command(nvme::GET_FEATURES);
  command.cdw10 = feature | (select << 8);
  command.cdw11 = cdw11;
  return run(0, command);
}

NvmeResult NvmeHarness::createCompletionQueue(uint16_t qid, uint16_t entries, uint16_t vector,
                                              bool interrupts) {
  uint64_t base = queueMemory(qid, false);
  // The driver zeroes a CQ before use (not one in use: a test may try to
  // create a queue that exists).
  if (cqs_.count(qid) == 0) std::memset(host(base, 16 * 1024), 0, 16 * 1024);
  nvme::Command command = NvmeHarness::command(nvme::CREATE_IO_CQ);
  command.dptr[0] = base;
  command.cdw10 = (uint32_t{static_cast<uint16_t>(entries - 1)} << 16) | qid;
  command.cdw11 = (uint32_t{vector} << 16) | (interrupts ? 2u : 0u) | 1u;  // PC
  NvmeResult result = run(0, command);
  if (result.status() == nvme::SUCCESS) cqs_[qid] = {base, entries, 0, 1, vector, interrupts};
  return result;
}

NvmeResult NvmeHarness::createSubmissionQueue(uint16_t qid, uint16_t entries, uint16_t cqid) {
  uint64_t base = queueMemory(qid, true);
  if (sqs_.count(qid) == 0) std::memset(host(base, 64 * 1024), 0, 64 * 1024);
  nvme::Command command = NvmeHarness::command(nvme::CREATE_IO_SQ);
  command.dptr[0] = base;
  command.cdw10 = (uint32_t{static_cast<uint16_t>(entries - 1)} << 16) | qid;
  command.cdw11 = (uint32_t{cqid} << 16) | 1u;  // PC
  NvmeResult result = run(0, command);
  if (result.status() == nvme::SUCCESS) sqs_[qid] = {base, entries, 0, cqid, {}};
  return result;
}

NvmeResult NvmeHarness::deleteSubmissionQueue(uint16_t qid) {
  nvme::Command command = NvmeHarness::command(nvme::DELETE_IO_SQ);
  command.cdw10 = qid;
  NvmeResult result = run(0, command);
  if (result.status() == nvme::SUCCESS && sqs_.count(qid) != 0) {
    // Its commands were completed before the deletion was.
    reap(sqs_[qid].cqid);
    sqs_.erase(qid);
  }
  return result;
}

NvmeResult NvmeHarness::deleteCompletionQueue(uint16_t qid) {
  nvme::Command command = NvmeHarness::command(nvme::DELETE_IO_CQ);
  command.cdw10 = qid;
  NvmeResult result = run(0, command);
  if (result.status() == nvme::SUCCESS) cqs_.erase(qid);
  return result;
}

bool NvmeHarness::createIoQueues(uint16_t count, uint16_t entries) {
  NvmeResult granted = setFeatures(nvme::NUMBER_OF_QUEUES, ((count - 1u) << 16) | (count - 1u));
  if (granted.status() != nvme::SUCCESS || (granted.dw0() & 0xffff) + 1u < count ||
      (granted.dw0() >> 16) + 1u < count) {
    return false;
  }
  for (uint16_t qid = 1; qid <= count; ++qid) {
    if (createCompletionQueue(qid, entries, qid).status() != nvme::SUCCESS) return false;
    if (createSubmissionQueue(qid, entries, qid).status() != nvme::SUCCESS) return false;
  }
  return true;
}

}  // namespace cellvisor::testing
