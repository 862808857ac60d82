#include "servers/ahci/ahci-controller.h"

#include <fmt/format.h>

#include <cstddef>
#include <cstring>
#include <stdexcept>

#include "base/guest-memory.h"
#include "proto/state-segment.h"

namespace cellvisor {
namespace {

using namespace ahci;

constexpr uint16_t INTEL = 0x8086;
constexpr uint16_t ICH9_AHCI = 0x2922;  // The AHCI function every AHCI driver knows.
constexpr uint16_t QEMU_SUBSYSTEM_VENDOR = 0x1af4;
constexpr uint16_t QEMU_SUBSYSTEM = 0x1100;

// A port's serial number unless the options give one: from the device's
// name, unique among the controller's ports.
std::string defaultSerial(const std::string& deviceName, size_t port) {
  std::string serial = "CV" + deviceName.substr(0, 18);
  if (port == 0) return serial;
  std::string suffix = fmt::format("-{}", port);
  return serial.substr(0, 20 - suffix.size()) + suffix;
}

}  // namespace

AhciController::AhciController(const AhciOptions& options, const std::string& deviceName, GuestMemory& memory,
                               std::span<BlockBackend* const> backends, StateHeader& header, AhciState& state)
    : header_(header), state_(state) {
  if (options.ports.empty() || options.ports.size() > MAX_PORTS || backends.size() != options.ports.size()) {
    throw std::invalid_argument(
        fmt::format("ahci: {} ports but {} backends", options.ports.size(), backends.size()));
  }
  auto portCount = static_cast<uint32_t>(options.ports.size());
  bool restored = claimState(header_, STATE_MAGIC, STATE_LAYOUT_VERSION) == StateOrigin::RESTORED;
  if (!restored) std::memset(&state_, 0, sizeof(state_));
  if (restored && state_.portCount != portCount) {
    throw std::invalid_argument(
        fmt::format("ahci: the saved state has {} ports, the options {}", state_.portCount, portCount));
  }
  state_.portCount = portCount;
  for (uint32_t i = 0; i < portCount; ++i) {
    AhciPortOptions port = options.ports[i];
    if (port.serial.empty()) port.serial = defaultSerial(deviceName, i);
    ports_.emplace_back(port, memory, *backends[i], state_.ports[i], [this] { updateInterrupt(); });
  }
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
  msi_.emplace(*config_);
  msi_->addCapability();
  msix_.emplace(*config_, std::span<pci::MsixEntry>(state_.msix, VECTORS),
                std::span<uint64_t>(state_.msixPending));
  msix_->addCapability(ABAR, MSIX_TABLE, MSIX_PBA);
  if (restored) return;
  msix_->reset();
  hbaReset();
  publishState(header_, STATE_MAGIC, STATE_LAYOUT_VERSION);
}

void AhciController::attach(DeviceStats& stats) {
  for (auto& port : ports_) port.attach(stats);
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
  for (auto& port : ports_) port.resumeTaken();
  // A predecessor may have died between noting an event and sending its
  // message: whatever is pending is announced again (a spare one is
  // harmless; the driver finds nothing new).
  updateInterrupt();
}

FailureNotice AhciController::failureNotice() const {
  // A host bus fatal error and a task file error on every port: the AHCI
  // driver's cue to reset the port, and with no server left, to give up on it.
  FailureNotice notice{};
  auto ports = static_cast<uint16_t>(ports_.size());
  auto stride = static_cast<uint32_t>(sizeof(PortState));
  notice.count = 2;
  notice.ops[0] = {static_cast<uint32_t>(offsetof(AhciState, ports) + offsetof(PortState, is) + 3),
                   FailureNotice::OR_BYTE, static_cast<uint8_t>((PXIS_HBFS | PXIS_TFES) >> 24), ports,
                   stride};
  notice.ops[1] = {static_cast<uint32_t>(offsetof(AhciState, ports) + offsetof(PortState, tfd)),
                   FailureNotice::OR_BYTE, ATA_ERR, ports, stride};
  notice.vectorOffset = FailureNotice::NO_VECTOR;
  notice.readCount = 2;
  notice.reads[0] = {ABAR,
                     4,
                     ports,
                     static_cast<uint32_t>(PORT_BASE + PX_IS),
                     static_cast<uint32_t>(PORT_STRIDE),
                     0,
                     PXIS_HBFS | PXIS_TFES};
  notice.reads[1] = {ABAR,
                     4,
                     ports,
                     static_cast<uint32_t>(PORT_BASE + PX_TFD),
                     static_cast<uint32_t>(PORT_STRIDE),
                     0,
                     (ATA_ABRT << 8) | ATA_DRDY | ATA_ERR};
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

uint32_t AhciController::registerRead(uint64_t offset) const {
  if (offset < PORT_BASE) return hbaRead(offset);
  uint64_t index = (offset - PORT_BASE) / PORT_STRIDE;
  if (index >= ports_.size()) return 0;
  return ports_[index].read((offset - PORT_BASE) % PORT_STRIDE);
}

uint64_t AhciController::barRead(uint8_t bar, uint64_t offset, uint8_t size) {
  if (bar != ABAR || offset + size > ABAR_SIZE) return 0;
  if (offset >= MSIX_PBA) return msix_->pbaRead(offset - MSIX_PBA, size);
  if (offset >= MSIX_TABLE) return msix_->tableRead(offset - MSIX_TABLE, size);
  // Registers are dwords; narrower reads take their part of one.
  uint64_t aligned = offset & ~3ull;
  uint64_t wide = registerRead(aligned);
  if (size == 8) wide |= uint64_t{registerRead(aligned + 4)} << 32;
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
      continue;
    }
    uint64_t index = (at - PORT_BASE) / PORT_STRIDE;
    if (index >= ports_.size()) continue;
    ports_[index].write((at - PORT_BASE) % PORT_STRIDE, dword);
    ports_[index].backend().flushSubmissions();
  }
  return effects;
}

uint32_t AhciController::hbaRead(uint64_t offset) const {
  switch (offset) {
    case CAP:
      return CAP_S64A | CAP_SNCQ | CAP_SCLO | CAP_ISS_GEN3 | CAP_SAM | ((SLOTS - 1) << CAP_NCS_SHIFT) |
             static_cast<uint32_t>(ports_.size() - 1);  // NP: ports - 1.
    case GHC:
      return state_.ghc;
    case IS:
      return state_.is;
    case PI:
      return ports_.size() == 32 ? ~0u : (1u << ports_.size()) - 1;
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

void AhciController::hbaReset() {
  state_.ghc = GHC_AE;
  state_.is = 0;
  for (auto& port : ports_) port.hbaReset();
}

void AhciController::updateInterrupt() {
  uint32_t pending = 0;
  for (size_t i = 0; i < ports_.size(); ++i) {
    if (ports_[i].interruptPending()) pending |= 1u << i;
  }
  state_.is |= pending;
  // A message for anything still pending, also right after the driver
  // acknowledged part of it: an event between its two writes is not lost.
  if ((state_.ghc & GHC_IE) == 0 || (state_.is & pending) == 0) return;
  if (msi_->enabled()) {
    if (signal_) signal_(0);
  } else {
    msix_->raise(0);
  }
}

bool AhciController::live() const {
  for (const auto& port : ports_) {
    if (port.started()) return true;
  }
  return false;
}

void AhciController::pause() {
  for (auto& port : ports_) port.pause();
}

void AhciController::resume() {
  for (auto& port : ports_) port.resume();
}

std::vector<MsixUpdate> AhciController::reset() {
  for (auto& port : ports_) port.abandon();
  msix_->reset();
  hbaReset();
  return msix_->vectors();
}

}  // namespace cellvisor
