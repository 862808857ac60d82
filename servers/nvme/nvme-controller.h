// An NVMe 1.4 controller with one namespace, served as a PCI function: the
// registers and doorbells in BAR0 (with the MSI-X table and PBA), the admin
// queue and up to `maxq` I/O queue pairs, admin and NVM commands executed
// on the shared block backend. Every queue, register and command in flight
// lives in the state segment; a restarted server re-executes the commands
// its predecessor had taken (all of the I/O ones are idempotent) and posts
// each completion exactly once.
#pragma once

#include <sys/uio.h>

#include <array>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "pci/config-space.h"
#include "pci/msix.h"
#include "servers/nvme/nvme-options.h"
#include "servers/nvme/nvme-state.h"
#include "servers/runtime/block-backend.h"
#include "servers/runtime/device-stats.h"
#include "servers/runtime/pci-function.h"

namespace cellvisor {

class GuestMemory;

class NvmeController : public PciFunction {
 public:
  static constexpr uint64_t BAR0_SIZE = 0x4000;
  static constexpr uint64_t MSIX_TABLE = 0x2000;
  static constexpr uint64_t MSIX_PBA = 0x3000;
  static constexpr uint8_t MDTS = 9;  // 2^9 pages: 2 MiB per command.

  // Takes over `state` (fresh, or left by a previous instance).
  NvmeController(const NvmeOptions& options, std::string deviceName, GuestMemory& memory,
                 BlockBackend& backend, StateHeader& header, nvme::NvmeState& state);

  void attach(DeviceStats& stats) { stats_ = &stats; }
  // Readable when backend operations completed; then call onCompletions().
  int completionFd() const { return backend_.completionFd(); }
  void onCompletions();

  // PciFunction.
  FunctionLayout layout() const override;
  void start(std::function<void(uint16_t)> signal) override;
  FailureNotice failureNotice() const override;
  uint32_t configRead(uint16_t offset, uint8_t size) override;
  std::vector<MsixUpdate> configWrite(uint16_t offset, uint8_t size, uint32_t value) override;
  uint64_t barRead(uint8_t bar, uint64_t offset, uint8_t size) override;
  std::vector<MsixUpdate> barWrite(uint8_t bar, uint64_t offset, uint8_t size, uint64_t value) override;
  void doorbell(uint16_t index) override;
  bool live() const override { return ready(); }
  std::vector<MsixUpdate> reset() override;
  void pause() override;
  void resume() override;
  bool poll() override;
  std::vector<MsixUpdate> msixVectors() const override { return msix_->vectors(); }
  std::vector<DoorbellSwitch> takeDoorbellSwitches() override { return std::exchange(switches_, {}); }

  uint64_t blocks() const { return blocks_; }
  uint32_t blockSize() const { return blockSize_; }

 private:
  // What an instance keeps beside a slot (not in the state segment: it is
  // rebuilt when a successor re-executes the command).
  struct SlotWork {
    uint32_t operations = 0;  // Backend operations outstanding.
    uint16_t status = 0;      // First failure, if any.
    bool flushAfter = false;  // FUA: a flush follows the write.
    std::vector<iovec> iov;
    std::vector<uint8_t> buffer;  // DSM ranges.
  };

  bool ready() const { return (state_.csts & nvme::CSTS_RDY) != 0; }
  uint64_t registerRead(uint64_t offset) const;
  void registerWrite(uint64_t offset, uint8_t size, uint64_t value);
  void controllerConfiguration(uint32_t value);
  void enable();
  void disable();
  void doorbellWrite(uint32_t index, uint32_t value);

  void processQueue(uint16_t sqid);
  void takeCommands(uint16_t sqid);
  void takeFrom(uint16_t sqid);
  void processAllQueues();
  std::optional<uint32_t> freeSlot(uint16_t sqid) const;
  void execute(uint32_t slot);
  void executeAdmin(uint32_t slot);
  void executeIo(uint32_t slot);
  void complete(uint32_t slot, uint16_t status, uint32_t result = 0);
  bool post(uint32_t slot);
  void postWaiting();
  void recover();
  void finishPendingDeletion();
  void drain();
  uint64_t tagFor(uint32_t slot) const { return (uint64_t{generation_} << 32) | slot; }

  // Admin commands; each returns the status (or sets `parked` for one that
  // completes later: an Asynchronous Event Request, a Format).
  uint16_t identify(const nvme::Command& command);
  uint16_t getLogPage(const nvme::Command& command);
  uint16_t createCompletionQueue(const nvme::Command& command);
  uint16_t createSubmissionQueue(const nvme::Command& command);
  uint16_t deleteSubmissionQueue(const nvme::Command& command);
  uint16_t deleteCompletionQueue(const nvme::Command& command);
  uint16_t setFeatures(const nvme::Command& command, uint32_t& result);
  uint16_t getFeatures(const nvme::Command& command, uint32_t& result);
  uint16_t doorbellBufferConfig(const nvme::Command& command);

  bool dsmEnabled() const;
  uint64_t eui64() const;
  std::string serial() const;
  std::vector<uint8_t> identifyController() const;
  std::vector<uint8_t> identifyNamespace() const;
  bool queueFits(uint64_t base, uint32_t entries, uint32_t entrySize) const;
  // Shadow doorbells: slot 2y is SQ y's tail, 2y + 1 CQ y's head.
  uint32_t* shadowSlot(uint64_t buffer, uint32_t index) const;
  void readShadowHead(uint16_t cqid);
  void switchShadowDoorbells(bool on);

  NvmeOptions options_;
  std::string deviceName_;
  GuestMemory& memory_;
  BlockBackend& backend_;
  StateHeader& header_;
  nvme::NvmeState& state_;
  DeviceStats ownStats_;
  DeviceStats* stats_ = &ownStats_;
  std::optional<pci::ConfigSpace> config_;
  std::optional<pci::Msix> msix_;
  uint64_t blocks_;
  uint32_t blockSize_;
  uint16_t vectorCount_;
  uint32_t slotCount_;
  uint32_t generation_ = 1;
  bool paused_ = false;
  bool processing_ = false;  // Inside processQueue().
  bool replaying_ = false;   // Re-running what a predecessor had taken (recover()).
  bool deferred_ = false;    // A queue asked to be looked at meanwhile.
  std::vector<SlotWork> work_;
  std::vector<DoorbellSwitch> switches_;
  std::vector<bool> parked_ = std::vector<bool>(nvme::MAX_SLOTS);  // Deletes waiting for their completions.
  std::array<uint8_t, 4096> bitBucket_{};
};

}  // namespace cellvisor
