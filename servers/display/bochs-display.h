// The Bochs/QEMU display adapter (PCI 1234:1111, "bochs-display"), which
// Linux's bochs DRM driver, OVMF's QemuVideoDxe and SeaBIOS's
// vgabios-bochs-display.bin drive: no legacy VGA, VRAM in prefetchable
// BAR0 (the supervisor's memfd, a KVM memory slot: pixel writes never
// exit), and in BAR2 the DISPI (VBE) mode registers at 0x500 plus QEMU's
// extended registers at 0x600. The mode registers live in the state
// segment, so a restarted server shows the same mode.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>

#include "base/mapping.h"
#include "base/unique-fd.h"
#include "servers/display/edid.h"
#include "servers/runtime/pci-function.h"
#include "servers/runtime/server-resources.h"

namespace cellvisor {

namespace dispi {
// Register indices (BAR2 offset 0x500 + 2 * index, 16 bits each).
enum : uint16_t {
  ID = 0,
  XRES = 1,
  YRES = 2,
  BPP = 3,
  ENABLE = 4,
  BANK = 5,
  VIRT_WIDTH = 6,
  VIRT_HEIGHT = 7,
  X_OFFSET = 8,
  Y_OFFSET = 9,
  VIDEO_MEMORY_64K = 10,
  COUNT = 11,
};
constexpr uint16_t ID5 = 0xb0c5;  // The newest interface; drivers accept 0xb0c0 to 0xb0c5.
constexpr uint16_t ENABLED = 0x01;
constexpr uint16_t GETCAPS = 0x02;
constexpr uint16_t LFB_ENABLED = 0x40;
constexpr uint16_t NOCLEARMEM = 0x80;
constexpr uint16_t MAX_XRES = 16000, MAX_YRES = 12000, MAX_BPP = 32;
}  // namespace dispi

// What the guest shows: a window of VRAM.
struct Scanout {
  uint32_t width = 0, height = 0;
  uint32_t bitsPerPixel = 0;  // 16 (RGB565) or 32 (XRGB8888)
  uint32_t stride = 0;        // bytes per line
  uint64_t offset = 0;        // of the first pixel in VRAM
  bool operator==(const Scanout&) const = default;
};

struct BochsDisplayState {
  uint8_t pciConfig[256];
  uint16_t dispi[16];
  // The VNC side's: keys its clients hold down (input-sender.h), released
  // by a successor.
  uint8_t keysDown[64];
};

class BochsDisplay : public PciFunction {
 public:
  static constexpr uint64_t MMIO_BYTES = 4096;
  static constexpr uint64_t DISPI_OFFSET = 0x500;
  static constexpr uint64_t QEXT_OFFSET = 0x600;

  // `vramBytes` of the BAR memory are VRAM; `rom`, when open, is the option
  // ROM, copied into the rest and shown through the expansion ROM BAR.
  // `edid`, when given, is read at the start of the register BAR.
  BochsDisplay(ServerResources& resources, uint64_t vramBytes, UniqueFd rom, std::optional<Edid> edid);

  std::span<const uint8_t> vram() const { return {vram_.data(), vramBytes_}; }
  std::span<uint8_t, 64> keysDown() { return state_.keysDown; }
  // The current mode, or nullopt when the guest shows nothing (disabled, a
  // depth we do not scan out, or a window that does not fit VRAM).
  std::optional<Scanout> scanout() const;
  // Called after every mode register write (the VNC side follows).
  void onModeChange(std::function<void()> changed) { modeChanged_ = std::move(changed); }

  FunctionLayout layout() const override;
  void start(std::function<void(uint16_t)>) override {}
  FailureNotice failureNotice() const override;
  uint32_t configRead(uint16_t offset, uint8_t size) override { return config_->read(offset, size); }
  std::vector<MsixUpdate> configWrite(uint16_t offset, uint8_t size, uint32_t value) override;
  uint64_t barRead(uint8_t bar, uint64_t offset, uint8_t size) override;
  std::vector<MsixUpdate> barWrite(uint8_t bar, uint64_t offset, uint8_t size, uint64_t value) override;
  void doorbell(uint16_t) override {}
  bool live() const override { return true; }
  std::vector<MsixUpdate> reset() override;
  void pause() override {}
  void resume() override {}
  std::vector<MsixUpdate> msixVectors() const override { return {}; }

 private:
  uint16_t readRegister(uint16_t index) const;
  void writeRegister(uint16_t index, uint16_t value);

  BochsDisplayState& state_;
  Mapping vram_;  // VRAM, then the ROM's window: read-only here.
  uint64_t vramBytes_;
  uint64_t romBytes_ = 0;
  std::optional<Edid> edid_;
  std::optional<pci::ConfigSpace> config_;
  std::function<void()> modeChanged_;
};

}  // namespace cellvisor
