#include "servers/display/bochs-display.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include "base/system-error.h"
#include "servers/display/display-options.h"

namespace cellvisor {
namespace {

constexpr uint32_t MAGIC = 0x43564650;  // "CVFP"
constexpr uint32_t LAYOUT = 2;          // 2: keysDown.
constexpr uint32_t LAYOUT_BEFORE_KEYS = 1;
// QEMU's extended registers: the region's size, then its byte order
// (little-endian framebuffer: 0x1e1e1e1e).
constexpr uint32_t QEXT_SIZE = 8;
constexpr uint64_t EDID_WINDOW = 0x400;  // QEMU's: the EDID blob at the BAR's start.
constexpr uint32_t QEXT_LITTLE_ENDIAN = 0x1e1e1e1e;

}  // namespace

BochsDisplay::BochsDisplay(ServerResources& resources, uint64_t vramBytes, UniqueFd rom,
                           std::optional<Edid> edid)
    : state_(resources.state->body<BochsDisplayState>()), vramBytes_(vramBytes), edid_(edid) {
  if (!resources.barMemory) throw std::runtime_error("no VRAM (BAR memory) handed over");
  struct stat st {};
  checkSyscall(::fstat(resources.barMemory.get(), &st), "fstat VRAM");
  auto memoryBytes = static_cast<uint64_t>(st.st_size);
  if (rom) {
    struct stat romStat {};
    checkSyscall(::fstat(rom.get(), &romStat), "fstat option ROM");
    romBytes_ = romWindowBytes(static_cast<uint64_t>(romStat.st_size));
    // Every instance puts the ROM's bytes back (the guest could write over
    // its memory slot); VRAM it leaves alone.
    std::vector<uint8_t> bytes(romBytes_, 0);
    if (::pread(rom.get(), bytes.data(), static_cast<size_t>(romStat.st_size), 0) != romStat.st_size)
      throw std::runtime_error("cannot read the option ROM");
    if (::pwrite(resources.barMemory.get(), bytes.data(), bytes.size(), static_cast<off_t>(vramBytes_)) !=
        static_cast<ssize_t>(bytes.size())) {
      throw std::runtime_error("cannot copy the option ROM into BAR memory");
    }
  }
  if (memoryBytes != vramBytes_ + romBytes_) {
    throw std::runtime_error("BAR memory is " + std::to_string(memoryBytes) + " bytes, not VRAM and ROM (" +
                             std::to_string(vramBytes_ + romBytes_) + ")");
  }
  // Read-only: the guest draws, the server only looks.
  vram_ = Mapping::map(resources.barMemory.get(), static_cast<size_t>(memoryBytes), PROT_READ, MAP_SHARED);
  StateHeader& header = resources.state->header();
  bool restored;
  try {
    restored = claimState(header, MAGIC, LAYOUT) == StateOrigin::RESTORED;
  } catch (const std::runtime_error&) {
    // A live upgrade from a server before keysDown (appended, so zero in
    // its segment): taken over as it is, and published as ours.
    restored = claimState(header, MAGIC, LAYOUT_BEFORE_KEYS) == StateOrigin::RESTORED;
    std::fill(std::begin(state_.keysDown), std::end(state_.keysDown), 0);
    publishState(header, MAGIC, LAYOUT);
  }
  config_.emplace(std::span<uint8_t>(state_.pciConfig),
                  restored ? pci::ConfigSpace::Contents::RESTORED : pci::ConfigSpace::Contents::FRESH);
  // QEMU's identity for it: display controller, "other" (no VGA class, so
  // no legacy ranges), QEMU's subsystem.
  config_->setIdentity({.vendor = 0x1234,
                        .device = 0x1111,
                        .revision = 2,
                        .subclass = 0x80,
                        .classCode = 0x03,
                        .subsystemVendor = 0x1af4,
                        .subsystem = 0x1100});
  config_->setBar(0, {pci::BarKind::MEMORY32, vramBytes_, true}, 0);
  config_->setBar(2, {pci::BarKind::MEMORY32, MMIO_BYTES, false}, 0);
  if (romBytes_ != 0) config_->setExpansionRom(romBytes_);
  if (restored) return;
  std::fill(std::begin(state_.dispi), std::end(state_.dispi), 0);
  std::fill(std::begin(state_.keysDown), std::end(state_.keysDown), 0);
  publishState(header, MAGIC, LAYOUT);
}

FunctionLayout BochsDisplay::layout() const {
  FunctionLayout layout;
  layout.bars.push_back({0, vramBytes_, pci::BarKind::MEMORY32, true, true, 0});
  layout.bars.push_back({2, MMIO_BYTES, pci::BarKind::MEMORY32});
  if (romBytes_ != 0)
    layout.bars.push_back({pci::ROM_BAR_INDEX, romBytes_, pci::BarKind::MEMORY32, false, true, vramBytes_});
  return layout;
}

FailureNotice BochsDisplay::failureNotice() const {
  // A display whose server is gone for good reads as "no adapter": the ID
  // register all ones (drivers check it) and the mode off.
  return FailureNotice{};
}

std::vector<MsixUpdate> BochsDisplay::configWrite(uint16_t offset, uint8_t size, uint32_t value) {
  config_->write(offset, size, value);
  return {};
}

std::vector<MsixUpdate> BochsDisplay::reset() {
  std::fill(std::begin(state_.dispi), std::end(state_.dispi), 0);
  if (modeChanged_) modeChanged_();
  return {};
}

uint16_t BochsDisplay::readRegister(uint16_t index) const {
  switch (index) {
    case dispi::ID:
      return dispi::ID5;
    case dispi::VIDEO_MEMORY_64K:
      return static_cast<uint16_t>(std::min<uint64_t>(vramBytes_ >> 16, 0xffff));
    case dispi::XRES:
    case dispi::YRES:
    case dispi::BPP:
      // GETCAPS: the largest values the adapter takes instead.
      if (state_.dispi[dispi::ENABLE] & dispi::GETCAPS) {
        return index == dispi::XRES   ? dispi::MAX_XRES
               : index == dispi::YRES ? dispi::MAX_YRES
                                      : dispi::MAX_BPP;
      }
      return state_.dispi[index];
    default:
      return index < dispi::COUNT ? state_.dispi[index] : 0;
  }
}

void BochsDisplay::writeRegister(uint16_t index, uint16_t value) {
  switch (index) {
    case dispi::ID:
    case dispi::VIDEO_MEMORY_64K:
      return;  // Read-only here: the interface version is ours to say.
    case dispi::XRES:
      state_.dispi[index] = std::min(value, dispi::MAX_XRES);
      break;
    case dispi::YRES:
      state_.dispi[index] = std::min(value, dispi::MAX_YRES);
      break;
    case dispi::BPP:
      state_.dispi[index] = value;
      break;
    case dispi::ENABLE:
      state_.dispi[index] = value;
      // Enabling without a virtual width: the visible one, as VBE does.
      if ((value & dispi::ENABLED) && state_.dispi[dispi::VIRT_WIDTH] < state_.dispi[dispi::XRES])
        state_.dispi[dispi::VIRT_WIDTH] = state_.dispi[dispi::XRES];
      break;
    default:
      if (index >= dispi::COUNT) return;
      state_.dispi[index] = value;
  }
  if (modeChanged_) modeChanged_();
}

std::optional<Scanout> BochsDisplay::scanout() const {
  const uint16_t* r = state_.dispi;
  if (!(r[dispi::ENABLE] & dispi::ENABLED)) return std::nullopt;
  uint32_t bpp = r[dispi::BPP];
  if (bpp != 16 && bpp != 32) return std::nullopt;
  Scanout mode;
  mode.width = r[dispi::XRES];
  mode.height = r[dispi::YRES];
  mode.bitsPerPixel = bpp;
  uint32_t virtualWidth = std::max<uint32_t>(r[dispi::VIRT_WIDTH], mode.width);
  mode.stride = virtualWidth * bpp / 8;
  mode.offset = uint64_t{r[dispi::Y_OFFSET]} * mode.stride + uint64_t{r[dispi::X_OFFSET]} * bpp / 8;
  if (mode.width == 0 || mode.height == 0) return std::nullopt;
  // The whole window inside VRAM, or nothing is shown.
  uint64_t end = mode.offset + uint64_t{mode.height - 1} * mode.stride + uint64_t{mode.width} * bpp / 8;
  if (end > vramBytes_) return std::nullopt;
  return mode;
}

uint64_t BochsDisplay::barRead(uint8_t bar, uint64_t offset, uint8_t size) {
  if (bar != 2) return ~0ull;
  if (offset >= DISPI_OFFSET && offset + size <= DISPI_OFFSET + 2 * dispi::COUNT + 2) {
    // 16-bit registers; a 32-bit read takes two.
    uint64_t value = 0;
    for (uint8_t byte = 0; byte < size; ++byte) {
      uint64_t at = offset + byte - DISPI_OFFSET;
      uint16_t reg = readRegister(static_cast<uint16_t>(at / 2));
      value |= uint64_t{static_cast<uint8_t>(reg >> (8 * (at % 2)))} << (8 * byte);
    }
    return value;
  }
  if (offset == QEXT_OFFSET && size == 4) return QEXT_SIZE;
  if (offset == QEXT_OFFSET + 4 && size == 4) return QEXT_LITTLE_ENDIAN;
  if (edid_ && offset < EDID_WINDOW) {
    // Zeros past the block (no extensions); drivers read it a byte at a time.
    uint64_t value = 0;
    for (uint8_t byte = 0; byte < size && offset + byte < edid_->size(); ++byte)
      value |= uint64_t{(*edid_)[offset + byte]} << (8 * byte);
    return value;
  }
  return 0;  // Without an EDID (edid=off) drivers fall back to their defaults.
}

std::vector<MsixUpdate> BochsDisplay::barWrite(uint8_t bar, uint64_t offset, uint8_t size, uint64_t value) {
  if (bar != 2 || offset < DISPI_OFFSET || offset >= DISPI_OFFSET + 2 * dispi::COUNT) return {};
  // Registers take whole 16-bit writes (a 32-bit write sets two).
  if (offset % 2 != 0 || (size != 2 && size != 4)) return {};
  for (uint8_t at = 0; at < size; at += 2) {
    uint16_t index = static_cast<uint16_t>((offset + at - DISPI_OFFSET) / 2);
    writeRegister(index, static_cast<uint16_t>(value >> (8 * at)));
  }
  return {};
}

}  // namespace cellvisor
