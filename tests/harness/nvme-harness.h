// A user-space NVMe driver that drives the real nvme-server process through
// its real fds, as a guest's driver would: registers and doorbells are BAR0
// writes through the core's PciServerProxy, queues and data buffers live in
// guest RAM the server maps, and interrupts are read straight from the
// vectors' interrupt eventfds (what KVM's irqfds would be).
#pragma once

#include <fcntl.h>
#include <uv.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "servers/nvme/nvme-spec.h"
#include "tests/harness/server-under-test.h"
#include "tests/harness/virtio-harness.h"

namespace cellvisor::testing {

// A disk image in /var/tmp, removed when the test ends.
class TempImage {
 public:
  explicit TempImage(uint64_t bytes = 16 << 20);
  ~TempImage();
  TempImage(const TempImage&) = delete;
  TempImage& operator=(const TempImage&) = delete;
  UniqueFd open(int flags = O_RDWR) const;
  const std::string& path() const { return path_; }
  uint64_t bytes() const { return bytes_; }

 private:
  std::string path_;
  uint64_t bytes_;
};

// One completion as the driver took it off a completion queue; `completed`
// false when it never came.
struct NvmeResult {
  bool completed = false;
  nvme::Completion entry{};
  // (SCT << 8) | SC, as nvme-spec.h's status(); 0xffff when it never came.
  uint16_t status() const { return completed ? static_cast<uint16_t>((entry.status >> 1) & 0x7ff) : 0xffff; }
  bool dnr() const { return (entry.status >> 15) & 1; }
  uint32_t dw0() const { return entry.dw0; }
};

// One SGL descriptor (NVMe 1.4, 4.4).
struct SglEntry {
  static constexpr uint8_t DATA_BLOCK = 0x0, BIT_BUCKET = 0x1, SEGMENT = 0x2, LAST_SEGMENT = 0x3;
  uint64_t address;
  uint32_t length;
  uint8_t type = DATA_BLOCK;
  uint8_t subtype = 0;
};

class NvmeHarness {
 public:
  static constexpr uint64_t BAR_ADDRESS = 0xc000'0000;
  static constexpr uint16_t ADMIN_ENTRIES = 32;
  static constexpr uint32_t PAGE = nvme::PAGE;

  // Starts nvme-server on the slot options `options` ("PATH[,...]" or
  // "ram=MiB[,...]", as after `-s N,nvme,`) the way the core does, through
  // the kind's launch descriptor; places BAR0, enables decoding and MSI-X
  // with every vector routed and unmasked.
  explicit NvmeHarness(const std::string& options, uint64_t memoryBytes = 64ull << 20);
  ~NvmeHarness();
  NvmeHarness(const NvmeHarness&) = delete;
  NvmeHarness& operator=(const NvmeHarness&) = delete;

  PciServerProxy& proxy() { return *proxy_; }
  DeviceServerProcess& process() { return *process_; }
  DeviceResources& resources() { return *resources_; }
  HarnessWiring& wiring() { return wiring_; }
  GuestMemory& memory() { return memory_; }
  uint16_t vectors() const { return vectors_; }
  uint64_t msixTable() const { return msixTable_; }

  // Registers (BAR0).
  uint32_t read32(uint64_t offset) { return static_cast<uint32_t>(proxy_->readBar(0, offset, 4)); }
  uint64_t read64(uint64_t offset) { return proxy_->readBar(0, offset, 8); }
  void write32(uint64_t offset, uint32_t value) { proxy_->writeBar(0, offset, 4, value); }
  void write64(uint64_t offset, uint64_t value) { proxy_->writeBar(0, offset, 8, value); }
  uint32_t csts() { return read32(nvme::REG_CSTS); }

  // CC.EN 0 -> 1 with the admin queues (32 entries each, same memory every
  // time): true once CSTS.RDY reads 1, false on CFS or timeout.
  bool enable(std::chrono::milliseconds timeout = std::chrono::seconds(5));
  // CC.EN 1 -> 0, a controller reset: true once CSTS.RDY reads 0. Every
  // command the driver had outstanding is forgotten, with every I/O queue.
  bool disable(std::chrono::milliseconds timeout = std::chrono::seconds(5));

  // Guest memory (bump allocator, zeroed).
  uint64_t allocate(uint64_t bytes, uint64_t alignment = PAGE);
  uint8_t* host(uint64_t address, uint64_t length = 1) { return memory_.translate(address, length); }

  // Commands. submit() writes the entry (with a CID unique across queues)
  // and advances the tail without ringing; ring() writes the SQ tail doorbell.
  static nvme::Command command(uint8_t opcode, uint32_t nsid = 0);
  uint16_t submit(uint16_t sqid, nvme::Command command);
  void ring(uint16_t sqid);
  // A doorbell write (BAR0 offset), as a guest's store reaches it.
  void doorbell(uint64_t offset, uint32_t value);
  // Takes every new entry off `cqid` by phase tag and rings its head doorbell.
  size_t reap(uint16_t cqid);
  // Waits for one command's completion (reaping everything else that comes).
  NvmeResult wait(uint16_t sqid, uint16_t cid, std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // Submits, rings and waits.
  NvmeResult run(uint16_t sqid, const nvme::Command& command,
                 std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // Waits until something completes on any queue, then hands over (and
  // forgets) every completion taken so far: (sqid, entry).
  std::vector<std::pair<uint16_t, nvme::Completion>> collect(std::chrono::milliseconds timeout);
  // Where queue `qid`'s SQ or CQ lives (the same across resets).
  uint64_t queueAddress(uint16_t qid, bool submission) { return queueMemory(qid, submission); }
  size_t outstanding(uint16_t sqid) const { return sqs_.at(sqid).outstanding.size(); }
  // Completions that were no command's (a CID not outstanding on its queue:
  // a duplicate or a stray), or malformed. Empty when all is well.
  const std::vector<std::string>& problems() const { return problems_; }
  // Interrupt eventfd signals seen per vector.
  uint64_t interrupts(uint16_t vector) const { return interruptCounts_[vector]; }
  bool interruptPending(uint16_t vector, std::chrono::milliseconds timeout);

  // Data pointers. PRPs for [buffer, buffer + bytes), with a PRP list in
  // the driver's list pages when it takes more than two.
  void setPrps(nvme::Command& command, uint64_t buffer, uint64_t bytes);
  // A PRP list holding `entries` starting `offset` bytes into a list page,
  // chained to further list pages when it does not fit; returns its address.
  uint64_t prpList(const std::vector<uint64_t>& entries, uint32_t offset = 0);
  // SGLs (PSDT 01): one descriptor in DPTR when there is one, else segments
  // of at most `perSegment` descriptors chained by segment descriptors.
  void setSgls(nvme::Command& command, const std::vector<SglEntry>& descriptors, size_t perSegment = 255);
  static void setDescriptor(nvme::Command& command, const SglEntry& descriptor);

  // NVM commands on namespace 1.
  static nvme::Command readWrite(uint8_t opcode, uint64_t lba, uint32_t blocks);
  NvmeResult io(uint16_t sqid, uint8_t opcode, uint64_t lba, uint32_t blocks, uint64_t buffer,
                uint32_t blockSize = 512);

  // Admin commands.
  NvmeResult identify(uint8_t cns, uint32_t nsid, uint64_t buffer);
  NvmeResult getLogPage(uint8_t page, uint32_t nsid, uint64_t buffer, uint32_t bytes, uint64_t offset = 0);
  NvmeResult setFeatures(uint8_t feature, uint32_t value);
  NvmeResult getFeatures(uint8_t feature, uint32_t select = 0, uint32_t cdw11 = 0);
  // Queues live at the same guest address per QID across resets (sized for
  // up to 256 entries), zeroed before each creation.
  NvmeResult createCompletionQueue(uint16_t qid, uint16_t entries, uint16_t vector, bool interrupts = true);
  NvmeResult createSubmissionQueue(uint16_t qid, uint16_t entries, uint16_t cqid);
  NvmeResult deleteSubmissionQueue(uint16_t qid);
  NvmeResult deleteCompletionQueue(uint16_t qid);
  // Number of Queues, then `count` pairs (SQ n on CQ n, vector n): true when
  // all succeeded.
  bool createIoQueues(uint16_t count, uint16_t entries);
  // Doorbell Buffer Config, as Linux does after creating its I/O queues:
  // from then on an I/O queue's doorbell value goes to the shadow buffer,
  // and the doorbell is rung only when the controller's EventIdx asks.
  NvmeResult useShadowDoorbells();
  // Doorbell writes that were rung (not left to the shadow buffer).
  uint64_t rungDoorbells() const { return rung_; }

 private:
  struct Outstanding {
    std::vector<uint64_t> listPages;
  };
  struct SubmissionQueue {
    uint64_t base = 0;
    uint16_t size = 0;
    uint16_t tail = 0;
    uint16_t cqid = 0;
    std::map<uint16_t, Outstanding> outstanding;  // By CID.
  };
  struct CompletionQueue {
    uint64_t base = 0;
    uint16_t size = 0;
    uint16_t head = 0;
    uint8_t phase = 1;
    uint16_t vector = 0;
    bool interrupts = true;
  };
  uint64_t listPage();
  void take(uint16_t cqid, const nvme::Completion& entry);
  // Waits up to `timeout` for an interrupt on any vector in use.
  void waitForInterrupt(std::chrono::milliseconds timeout);
  uint64_t queueMemory(uint16_t qid, bool submission);
  bool waitFor(uint32_t mask, uint32_t value, std::chrono::milliseconds timeout);

  GuestMemory memory_;
  HarnessWiring wiring_;
  uint16_t vectors_ = 0;
  std::unique_ptr<ServerUnderTest> server_;
  DeviceResources* resources_ = nullptr;
  DeviceServerProcess* process_ = nullptr;
  PciServerProxy* proxy_ = nullptr;
  uint64_t msixTable_ = 0;
  uint64_t nextFree_ = 1 << 20;
  uint16_t nextCid_ = 0;
  std::map<uint16_t, SubmissionQueue> sqs_;
  std::map<uint16_t, CompletionQueue> cqs_;
  std::map<std::pair<uint16_t, bool>, uint64_t> queueMemory_;       // (qid, submission) -> base
  std::map<std::pair<uint16_t, uint16_t>, nvme::Completion> done_;  // (sqid, cid)
  std::vector<uint64_t> freeListPages_;
  std::vector<uint64_t> pendingListPages_;  // For the next submit().
  std::vector<std::string> problems_;
  std::vector<uint64_t> interruptCounts_;
  uint64_t shadow_ = 0;      // Shadow doorbell buffer, 0 while off.
  uint64_t eventIndex_ = 0;  // EventIdx buffer.
  uint64_t rung_ = 0;
};

}  // namespace cellvisor::testing
