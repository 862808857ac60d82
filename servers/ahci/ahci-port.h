// One SATA port of the AHCI HBA with the device behind it: an ATA disk
// (READ/WRITE DMA, NCQ with 32 tags, FLUSH, TRIM) or an ATAPI CD-ROM (the
// MMC commands firmware and drivers boot and mount with), on its own block
// backend. Its registers and the slots taken but not completed live in its
// part of the state segment; the controller routes register accesses here
// and gathers the ports' interrupts.
#pragma once

#include <sys/uio.h>

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "servers/ahci/ahci-options.h"
#include "servers/ahci/ahci-spec.h"
#include "servers/ahci/ahci-state.h"
#include "servers/runtime/block-backend.h"
#include "servers/runtime/device-stats.h"

namespace cellvisor {

class GuestMemory;

class AhciPort {
 public:
  static constexpr uint32_t CD_SECTOR = 2048;

  // `interruptChanged` is called whenever PxIS or PxIE changed.
  AhciPort(const AhciPortOptions& options, GuestMemory& memory, BlockBackend& backend, ahci::PortState& state,
           std::function<void()> interruptChanged);

  void attach(DeviceStats& stats) { stats_ = &stats; }
  BlockBackend& backend() { return backend_; }
  bool interruptPending() const { return (state_.is & state_.ie) != 0; }
  bool started() const { return (state_.cmd & ahci::PXCMD_ST) != 0; }

  uint32_t read(uint64_t offset) const;
  void write(uint64_t offset, uint32_t value);
  // The port's part of an HBA reset (GHC.HR): registers to their reset
  // values, the device's signature posted again.
  void hbaReset();
  // A new instance's first step: what its predecessor took and did not
  // complete runs again (every command here is idempotent, and its
  // completion is posted once), then whatever is newly issued.
  void resumeTaken();
  void onCompletions();
  // Holds new commands and waits out those in the backend.
  void pause();
  void resume();
  // Drops every command (a function reset): completions of operations still
  // in the backend are waited out and ignored.
  void abandon();

 private:
  // What an instance keeps beside a slot; rebuilt when a successor
  // re-executes the command.
  struct SlotWork {
    uint32_t operations = 0;  // Backend operations outstanding.
    bool failed = false;
    uint32_t bytes = 0;  // What the command moves, for PRDBC.
    std::vector<iovec> iov;
    std::vector<uint8_t> buffer;  // TRIM ranges.
  };
  // A command's outcome for the task file.
  struct Outcome {
    uint8_t status = ahci::ATA_DRDY | ahci::ATA_DSC;
    uint8_t error = 0;
    uint32_t bytes = 0;
    bool pio = false;  // Data-in by PIO (IDENTIFY, ATAPI): a PIO setup FIS first.
  };

  void linkReset();
  void updateCommandStatus();
  void raise(uint32_t bits);

  void issue();
  void execute(uint32_t slot);
  bool readCommand(uint32_t slot, std::array<uint8_t, ahci::CFIS_SIZE>& fis, ahci::CommandHeader& header,
                   uint64_t& table);
  // The command's PRD table as guest buffers; false if any lies outside RAM
  // or the table is malformed.
  bool scatterList(const ahci::CommandHeader& header, uint64_t table, std::vector<iovec>& iov,
                   uint64_t& total) const;
  // Copies `data` into the PRD buffers (data-in by PIO); returns bytes copied.
  uint32_t copyOut(const ahci::CommandHeader& header, uint64_t table, const std::vector<uint8_t>& data) const;

  std::optional<Outcome> executeAta(uint32_t slot, const std::array<uint8_t, ahci::CFIS_SIZE>& fis,
                                    const ahci::CommandHeader& header, uint64_t table);
  std::optional<Outcome> trim(uint32_t slot, uint32_t blocks, const ahci::CommandHeader& header,
                              uint64_t table);
  Outcome readLog(uint8_t page, const ahci::CommandHeader& header, uint64_t table);
  std::optional<Outcome> executePacket(uint32_t slot, const uint8_t* cdb, const ahci::CommandHeader& header,
                                       uint64_t table);
  bool submitTransfer(uint32_t slot, bool write, uint64_t lba, uint64_t sectors, uint32_t sectorSize,
                      const ahci::CommandHeader& header, uint64_t table);
  Outcome atapiError(uint8_t senseKey, uint8_t asc, uint8_t ascq = 0);
  Outcome atapiData(const ahci::CommandHeader& header, uint64_t table, std::vector<uint8_t> data,
                    uint32_t allocation);

  void complete(uint32_t slot, const Outcome& outcome);
  void writeReceivedFis(uint32_t offset, const uint8_t* fis, size_t length);
  uint64_t tagFor(uint32_t slot) const { return (uint64_t{generation_} << 32) | slot; }

  AhciPortOptions options_;
  GuestMemory& memory_;
  BlockBackend& backend_;
  ahci::PortState& state_;
  std::function<void()> interruptChanged_;
  DeviceStats ownStats_;
  DeviceStats* stats_ = &ownStats_;
  uint32_t sectorSize_;
  uint64_t sectors_;
  uint32_t generation_ = 1;
  bool paused_ = false;
  std::array<SlotWork, ahci::SLOTS> work_;
};

}  // namespace cellvisor
