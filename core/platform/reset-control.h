// Guest-initiated reset: the PCI reset control register at 0xCF9 and the
// i8042 keyboard controller's pulse-reset command (0xFE to port 0x64). The
// i8042 otherwise answers as a controller with no keyboard attached.
#pragma once

#include "core/platform/io-device.h"
#include "core/platform/machine-control.h"

namespace cellvisor {

class ResetControlRegister : public IoDevice {
 public:
  static constexpr uint16_t PORT = 0xcf9;
  explicit ResetControlRegister(MachineControl& control) : control_(control) {}

  void read(uint64_t, std::span<uint8_t> data) override { storeLittleEndian(data, value_); }
  void write(uint64_t, std::span<const uint8_t> data) override {
    constexpr uint8_t RESET_CPU = 0x04;
    value_ = static_cast<uint8_t>(data[0] & 0x0e);
    if (data[0] & RESET_CPU) control_.requestExit(ExitStatus::REBOOT, "guest reset via port 0xCF9");
  }

 private:
  MachineControl& control_;
  uint8_t value_ = 0;
};

class I8042 : public IoDevice {
 public:
  static constexpr uint16_t DATA_PORT = 0x60;
  static constexpr uint16_t COMMAND_PORT = 0x64;
  // Registered as two one-byte ranges; `offset` is always 0, so the instance
  // knows which port it is.
  I8042(MachineControl& control, bool commandPort) : control_(control), commandPort_(commandPort) {}

  void read(uint64_t, std::span<uint8_t> data) override {
    // Status: nothing to read, input buffer empty, self-test passed.
    storeLittleEndian(data, commandPort_ ? 0x04 : 0x00);
  }
  void write(uint64_t, std::span<const uint8_t> data) override {
    constexpr uint8_t PULSE_RESET = 0xfe;
    if (commandPort_ && data[0] == PULSE_RESET) {
      control_.requestExit(ExitStatus::REBOOT, "guest reset via the i8042 controller");
    }
  }

 private:
  MachineControl& control_;
  bool commandPort_;
};

}  // namespace cellvisor
