// A user-space AHCI driver that drives the real ahci-server process through
// its real fds, as a guest's driver would: registers are ABAR accesses
// through the core's PciServerProxy, the command list, tables, received FIS
// area and buffers live in guest RAM the server maps, and interrupts are
// read from the vector's interrupt eventfd.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "servers/ahci/ahci-spec.h"
#include "tests/harness/server-under-test.h"

namespace cellvisor::testing {

class AhciHarness {
 public:
  static constexpr uint64_t ABAR_ADDRESS = 0xc000'0000;
  static constexpr uint8_t ABAR = 5;
  static constexpr uint32_t TABLE_BYTES = 0x80 + 16 * 64;  // Room for 64 PRDs.

  // Starts the server for `emulation` ("ahci-hd", "ahci-cd", "ahci") with the
  // slot options as after `-s N,EMULATION,`.
  AhciHarness(const std::string& emulation, const std::string& options, uint64_t memoryBytes = 64ull << 20);

  ServerUnderTest& server() { return *server_; }
  GuestMemory& memory() { return memory_; }
  uint32_t read32(uint64_t offset) {
    return static_cast<uint32_t>(server_->proxy().readBar(ABAR, offset, 4));
  }
  void write32(uint64_t offset, uint32_t value) { server_->proxy().writeBar(ABAR, offset, 4, value); }
  // The port the calls below address (0 unless selected).
  void selectPort(uint32_t index);
  uint32_t selectedPort() const { return selected_; }
  uint32_t port(uint64_t reg) { return read32(portOffset(reg)); }
  void setPort(uint64_t reg, uint32_t value) { write32(portOffset(reg), value); }

  // As Linux brings ports up: HBA reset, AE and IE, then for every port in
  // PI the command list and received-FIS area, FRE then ST, every port
  // interrupt enabled. True once each port's CR and FR read 1 and its task
  // file is not busy. Selects port 0.
  bool start();

  // Guest memory (bump allocator, zeroed).
  uint64_t allocate(uint64_t bytes, uint64_t alignment = 4096);
  uint8_t* host(uint64_t address, uint64_t length = 1) { return memory_.translate(address, length); }

  struct Prd {
    uint64_t address;
    uint32_t bytes;
  };
  // A register FIS for `command` (LBA48 fields, count, features, device).
  static std::array<uint8_t, 20> fis(uint8_t command, uint64_t lba = 0, uint16_t count = 0,
                                     uint16_t features = 0, uint8_t device = 0x40);
  // Writes slot `slot`'s header and table. `cdb` (12 bytes) for PACKET.
  void prepare(uint32_t slot, const std::array<uint8_t, 20>& fis, const std::vector<Prd>& prds, bool write,
               const std::vector<uint8_t>& cdb = {});
  // Points slot `slot`'s header at a table anywhere (hostile tests).
  void setTable(uint32_t slot, uint64_t table);
  // Issues `slots` (PxSACT too when `queued`) and waits until they left
  // PxCI (and PxSACT); returns PxIS as it was then (acknowledged), or ~0 on
  // timeout.
  uint32_t issue(uint32_t slots, bool queued = false,
                 std::chrono::milliseconds timeout = std::chrono::seconds(10));
  uint32_t prdbc(uint32_t slot);
  const uint8_t* receivedFis(uint32_t offset) { return host(current().fisArea + offset, 64); }
  uint8_t status() { return static_cast<uint8_t>(port(ahci::PX_TFD)); }
  uint8_t error() { return static_cast<uint8_t>(port(ahci::PX_TFD) >> 8); }
  // Clears ST (which drops everything issued) and sets it again, as a
  // driver recovers from an error.
  void restartEngine();
  bool interruptPending(std::chrono::milliseconds timeout);

  // Conveniences: one command in slot 0 over one buffer.
  uint32_t run(const std::array<uint8_t, 20>& fis, uint64_t buffer, uint32_t bytes, bool write);
  uint32_t packet(const std::vector<uint8_t>& cdb, uint64_t buffer, uint32_t bytes);

 private:
  GuestMemory memory_;
  HarnessWiring wiring_;
  std::unique_ptr<ServerUnderTest> server_;
  // Each port's command list, received-FIS area and command tables.
  struct PortMemory {
    uint64_t commandList = 0;
    uint64_t fisArea = 0;
    std::array<uint64_t, ahci::SLOTS> tables{};
  };
  uint64_t portOffset(uint64_t reg) const { return ahci::PORT_BASE + ahci::PORT_STRIDE * selected_ + reg; }
  PortMemory& current() { return ports_.at(selected_); }

  uint64_t nextFree_ = 1 << 20;
  std::vector<PortMemory> ports_;
  uint32_t selected_ = 0;
};

}  // namespace cellvisor::testing
