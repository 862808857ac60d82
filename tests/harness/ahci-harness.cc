#include "tests/harness/ahci-harness.h"

#include <poll.h>
#include <unistd.h>

#include <cstring>
#include <stdexcept>
#include <thread>

namespace cellvisor::testing {

using namespace std::chrono_literals;
using namespace ahci;

AhciHarness::AhciHarness(const std::string& emulation, const std::string& options, uint64_t memoryBytes)
    : memory_(memoryBytes) {
  server_ = std::make_unique<ServerUnderTest>(emulation, options, memory_, wiring_, ABAR, ABAR_ADDRESS);
  uint32_t implemented = read32(PI);
  for (uint32_t index = 0; index < 32 && (implemented & (1u << index)) != 0; ++index) {
    PortMemory& port = ports_.emplace_back();
    port.commandList = allocate(SLOTS * COMMAND_HEADER_SIZE, CLB_ALIGN);
    port.fisArea = allocate(RECEIVED_FIS_SIZE, FB_ALIGN);
    for (auto& table : port.tables) table = allocate(TABLE_BYTES, 128);
  }
  if (ports_.empty()) throw std::runtime_error("the controller implements no ports");
}

void AhciHarness::selectPort(uint32_t index) {
  if (index >= ports_.size()) throw std::out_of_range("no such AHCI port");
  selected_ = index;
}

uint64_t AhciHarness::allocate(uint64_t bytes, uint64_t alignment) {
  nextFree_ = (nextFree_ + alignment - 1) & ~(alignment - 1);
  uint64_t address = nextFree_;
  nextFree_ += bytes;
  if (host(address, bytes) == nullptr) throw std::runtime_error("harness guest memory exhausted");
  std::memset(host(address, bytes), 0, bytes);
  return address;
}

bool AhciHarness::start() {
  write32(GHC, GHC_AE);
  write32(GHC, GHC_AE | GHC_HR);
  if ((read32(GHC) & GHC_HR) != 0) return false;  // Reset is immediate here.
  write32(GHC, GHC_AE | GHC_IE);
  bool up = true;
  for (uint32_t index = 0; index < ports_.size(); ++index) {
    selectPort(index);
    setPort(PX_CLB, static_cast<uint32_t>(current().commandList));
    setPort(PX_CLBU, static_cast<uint32_t>(current().commandList >> 32));
    setPort(PX_FB, static_cast<uint32_t>(current().fisArea));
    setPort(PX_FBU, static_cast<uint32_t>(current().fisArea >> 32));
    setPort(PX_SERR, ~0u);
    setPort(PX_IS, ~0u);
    setPort(PX_CMD, port(PX_CMD) | PXCMD_FRE);
    setPort(PX_CMD, port(PX_CMD) | PXCMD_ST);
    setPort(PX_IE, 0x78c0007f);  // Linux's DEF_PORT_IRQ.
    uint32_t cmd = port(PX_CMD);
    up = up && (cmd & PXCMD_CR) != 0 && (cmd & PXCMD_FR) != 0 && (status() & (ATA_BSY | ATA_DRQ)) == 0 &&
         (port(PX_SSTS) & 0xf) == 3;
  }
  selectPort(0);
  return up;
}

std::array<uint8_t, 20> AhciHarness::fis(uint8_t command, uint64_t lba, uint16_t count, uint16_t features,
                                         uint8_t device) {
  std::array<uint8_t, 20> f{};
  f[0] = FIS_H2D_REGISTER;
  f[1] = H2D_COMMAND;
  f[2] = command;
  f[3] = static_cast<uint8_t>(features);
  f[4] = static_cast<uint8_t>(lba);
  f[5] = static_cast<uint8_t>(lba >> 8);
  f[6] = static_cast<uint8_t>(lba >> 16);
  f[7] = device;
  f[8] = static_cast<uint8_t>(lba >> 24);
  f[9] = static_cast<uint8_t>(lba >> 32);
  f[10] = static_cast<uint8_t>(lba >> 40);
  f[11] = static_cast<uint8_t>(features >> 8);
  f[12] = static_cast<uint8_t>(count);
  f[13] = static_cast<uint8_t>(count >> 8);
  return f;
}

void AhciHarness::prepare(uint32_t slot, const std::array<uint8_t, 20>& fis, const std::vector<Prd>& prds,
                          bool write, const std::vector<uint8_t>& cdb) {
  uint64_t table = current().tables.at(slot);
  std::memset(host(table, TABLE_BYTES), 0, TABLE_BYTES);
  std::memcpy(host(table + TABLE_CFIS, fis.size()), fis.data(), fis.size());
  if (!cdb.empty()) std::memcpy(host(table + TABLE_ACMD, cdb.size()), cdb.data(), cdb.size());
  for (size_t i = 0; i < prds.size(); ++i) {
    PrdEntry entry{static_cast<uint32_t>(prds[i].address), static_cast<uint32_t>(prds[i].address >> 32), 0,
                   (prds[i].bytes - 1) & PRD_BYTE_COUNT_MASK};
    std::memcpy(host(table + TABLE_PRDT + 16 * i, 16), &entry, 16);
  }
  CommandHeader header{};
  header.flags = 5 | (write ? HEADER_WRITE : 0) | (cdb.empty() ? 0 : HEADER_ATAPI) |
                 (static_cast<uint32_t>(prds.size()) << 16);
  header.ctba = static_cast<uint32_t>(table);
  header.ctbau = static_cast<uint32_t>(table >> 32);
  std::memcpy(host(current().commandList + slot * COMMAND_HEADER_SIZE, sizeof(header)), &header,
              sizeof(header));
}

void AhciHarness::setTable(uint32_t slot, uint64_t table) {
  CommandHeader header;
  std::memcpy(&header, host(current().commandList + slot * COMMAND_HEADER_SIZE, sizeof(header)),
              sizeof(header));
  header.ctba = static_cast<uint32_t>(table);
  header.ctbau = static_cast<uint32_t>(table >> 32);
  std::memcpy(host(current().commandList + slot * COMMAND_HEADER_SIZE, sizeof(header)), &header,
              sizeof(header));
}

uint32_t AhciHarness::issue(uint32_t slots, bool queued, std::chrono::milliseconds timeout) {
  if (queued) setPort(PX_SACT, slots);
  setPort(PX_CI, slots);
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while ((port(PX_CI) & slots) != 0 || (queued && (port(PX_SACT) & slots) != 0)) {
    if (std::chrono::steady_clock::now() >= deadline) return ~0u;
    std::this_thread::sleep_for(200us);
  }
  uint32_t is = port(PX_IS);
  setPort(PX_IS, is);
  write32(IS, 1u << selected_);
  return is;
}

uint32_t AhciHarness::prdbc(uint32_t slot) {
  uint32_t value;
  std::memcpy(&value, host(current().commandList + slot * COMMAND_HEADER_SIZE + 4, 4), 4);
  return value;
}

void AhciHarness::restartEngine() {
  setPort(PX_CMD, port(PX_CMD) & ~PXCMD_ST);
  setPort(PX_IS, ~0u);
  setPort(PX_CMD, port(PX_CMD) | PXCMD_ST);
}

bool AhciHarness::interruptPending(std::chrono::milliseconds timeout) {
  pollfd fd{server_->resources().interrupt(0), POLLIN, 0};
  if (::poll(&fd, 1, static_cast<int>(timeout.count())) != 1) return false;
  uint64_t count;
  return ::read(fd.fd, &count, sizeof(count)) == sizeof(count);
}

uint32_t AhciHarness::run(const std::array<uint8_t, 20>& fis, uint64_t buffer, uint32_t bytes, bool write) {
  std::vector<Prd> prds;
  if (bytes != 0) prds.push_back({buffer, bytes});
  prepare(0, fis, prds, write);
  return issue(1);
}

uint32_t AhciHarness::packet(const std::vector<uint8_t>& cdb, uint64_t buffer, uint32_t bytes) {
  std::vector<uint8_t> padded = cdb;
  padded.resize(16, 0);
  std::vector<Prd> prds;
  if (bytes != 0) prds.push_back({buffer, bytes});
  prepare(0, fis(PACKET, 0x0800 << 8, 0, 1), prds, false, padded);
  return issue(1);
}

}  // namespace cellvisor::testing
