// The test/debug-exit port (bhyve's pc-testdev plays this role): a guest
// write of V ends the VM with status (V << 1) | 1 — the same rule as QEMU's
// isa-debug-exit, so one test guest reports the same way under both.
#pragma once

#include <fmt/format.h>

#include "core/platform/io-device.h"
#include "core/platform/machine-control.h"

namespace cellvisor {

class DebugExit : public IoDevice {
 public:
  static constexpr uint16_t PORT = 0x501;
  explicit DebugExit(MachineControl& control) : control_(control) {}

  void read(uint64_t, std::span<uint8_t> data) override { storeLittleEndian(data, 0); }
  void write(uint64_t, std::span<const uint8_t> data) override {
    uint64_t value = loadLittleEndian(data);
    control_.requestExit(static_cast<int>(((value << 1) | 1) & 0xff),
                         fmt::format("guest wrote {:#x} to the debug-exit port", value));
  }

 private:
  MachineControl& control_;
};

}  // namespace cellvisor
