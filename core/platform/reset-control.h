// Guest-initiated reset through the PCI reset control register at 0xCF9
// (the i8042's pulse-reset command is in i8042.h).
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

}  // namespace cellvisor
