// An AHCI 1.3 host bus adapter with one SATA port, served as a PCI function
// (class 01:06:01, the registers in BAR5 "ABAR" with the MSI-X table after
// the ports). The port holds an ATA disk (READ/WRITE DMA, NCQ with 32 tags,
// FLUSH, TRIM) or an ATAPI CD-ROM (the MMC commands firmware and drivers
// boot and mount with). Commands run on the shared block backend; every
// register and every command taken but not completed lives in the state
// segment, so a restarted server re-executes what its predecessor had taken
// and completes each command once.
#pragma once

#include <sys/uio.h>

#include <array>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "pci/config-space.h"
#include "pci/msi.h"
#include "pci/msix.h"
#include "servers/ahci/ahci-options.h"
#include "servers/ahci/ahci-spec.h"
#include "servers/ahci/ahci-state.h"
#include "servers/runtime/block-backend.h"
#include "servers/runtime/device-stats.h"
#include "servers/runtime/pci-function.h"

namespace cellvisor {

class GuestMemory;
struct StateHeader;

class AhciController : public PciFunction {
 public:
  static constexpr uint8_t ABAR = 5;
  static constexpr uint64_t ABAR_SIZE = 0x2000;
  static constexpr uint64_t MSIX_TABLE = 0x1800;
  static constexpr uint64_t MSIX_PBA = 0x1c00;
  static constexpr uint32_t CD_SECTOR = 2048;

  AhciController(const AhciOptions& options, std::string deviceName, GuestMemory& memory,
                 BlockBackend& backend, StateHeader& header, ahci::AhciState& state);

  void attach(DeviceStats& stats) { stats_ = &stats; }
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
  void doorbell(uint16_t) override {}
  bool live() const override { return (state_.port.cmd & ahci::PXCMD_ST) != 0; }
  std::vector<MsixUpdate> reset() override;
  void pause() override;
  void resume() override;
  std::vector<MsixUpdate> msixVectors() const override;

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

  uint32_t hbaRead(uint64_t offset) const;
  void hbaWrite(uint64_t offset, uint32_t value);
  uint32_t portRead(uint64_t offset) const;
  void portWrite(uint64_t offset, uint32_t value);
  void hbaReset();
  void portReset();
  void updateCommandStatus();
  void updateInterrupt();
  void setPortInterrupt(uint32_t bits);

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
  std::optional<Outcome> executePacket(uint32_t slot, const uint8_t* cdb, const ahci::CommandHeader& header,
                                       uint64_t table);
  bool submitTransfer(uint32_t slot, bool write, uint64_t lba, uint64_t sectors, uint32_t sectorSize,
                      const ahci::CommandHeader& header, uint64_t table);
  std::vector<uint8_t> identifyDevice() const;
  std::vector<uint8_t> identifyPacketDevice() const;
  Outcome atapiError(uint8_t senseKey, uint8_t asc, uint8_t ascq = 0);
  Outcome atapiData(const ahci::CommandHeader& header, uint64_t table, std::vector<uint8_t> data,
                    uint32_t allocation);

  void complete(uint32_t slot, const Outcome& outcome);
  void writeReceivedFis(uint32_t offset, const uint8_t* fis, size_t length);
  uint64_t tagFor(uint32_t slot) const { return (uint64_t{generation_} << 32) | slot; }

  AhciOptions options_;
  std::string deviceName_;
  GuestMemory& memory_;
  BlockBackend& backend_;
  StateHeader& header_;
  ahci::AhciState& state_;
  DeviceStats ownStats_;
  DeviceStats* stats_ = &ownStats_;
  std::optional<pci::ConfigSpace> config_;
  std::optional<pci::Msix> msix_;
  std::optional<pci::Msi> msi_;  // What Linux's ahci driver takes (before MSI-X).
  std::function<void(uint16_t)> signal_;
  uint32_t sectorSize_;
  uint64_t sectors_;
  uint32_t generation_ = 1;
  bool paused_ = false;
  std::array<SlotWork, ahci::SLOTS> work_;
};

}  // namespace cellvisor
