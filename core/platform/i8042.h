// The i8042 keyboard controller at ports 0x60 (data) and 0x64 (status and
// command), with no keyboard or mouse attached yet: it passes its own
// self-test and reports both interfaces dead, so firmware and guests learn at
// once that there is nothing to drive instead of waiting out timeouts. Its
// pulse-reset command (0xFE) resets the machine, as on a PC.
#pragma once

#include <deque>
#include <mutex>

#include "core/platform/io-device.h"
#include "core/platform/machine-control.h"

namespace cellvisor {

class I8042 : public IoDevice {
 public:
  static constexpr uint16_t DATA_PORT = 0x60;
  static constexpr uint16_t COMMAND_PORT = 0x64;

  explicit I8042(MachineControl& control) : control_(control), commandPort_(*this) {}

  // This object answers the data port; the command port is its own range.
  IoDevice& commandPort() { return commandPort_; }

  void read(uint64_t, std::span<uint8_t> data) override {
    std::lock_guard lock(mutex_);
    uint8_t value = 0;
    if (!output_.empty()) {
      value = output_.front();
      output_.pop_front();
    }
    storeLittleEndian(data, value);
  }
  void write(uint64_t, std::span<const uint8_t> data) override {
    std::lock_guard lock(mutex_);
    if (pendingCommand_ == WRITE_COMMAND_BYTE) commandByte_ = data[0];
    // Bytes for a keyboard that is not there go nowhere.
    pendingCommand_ = 0;
  }

 private:
  static constexpr uint8_t READ_COMMAND_BYTE = 0x20;
  static constexpr uint8_t WRITE_COMMAND_BYTE = 0x60;
  static constexpr uint8_t AUX_TEST = 0xa9;
  static constexpr uint8_t SELF_TEST = 0xaa;
  static constexpr uint8_t KEYBOARD_TEST = 0xab;
  static constexpr uint8_t PULSE_RESET = 0xfe;
  static constexpr uint8_t SELF_TEST_PASSED = 0x55;
  static constexpr uint8_t CLOCK_STUCK_LOW = 0x01;  // Interface test: no device on that port.
  static constexpr uint8_t STATUS_OUTPUT_FULL = 0x01;
  static constexpr uint8_t STATUS_SYSTEM_FLAG = 0x04;

  class CommandPort : public IoDevice {
   public:
    explicit CommandPort(I8042& controller) : controller_(controller) {}
    void read(uint64_t, std::span<uint8_t> data) override { storeLittleEndian(data, controller_.status()); }
    void write(uint64_t, std::span<const uint8_t> data) override { controller_.command(data[0]); }

   private:
    I8042& controller_;
  };

  uint8_t status() {
    std::lock_guard lock(mutex_);
    return STATUS_SYSTEM_FLAG | (output_.empty() ? 0 : STATUS_OUTPUT_FULL);
  }

  void command(uint8_t command) {
    if (command == PULSE_RESET) {
      control_.requestExit(ExitStatus::REBOOT, "guest reset via the i8042 controller");
      return;
    }
    std::lock_guard lock(mutex_);
    pendingCommand_ = command;
    switch (command) {
      case READ_COMMAND_BYTE:
        output_.push_back(commandByte_);
        break;
      case SELF_TEST:
        output_.push_back(SELF_TEST_PASSED);
        break;
      case KEYBOARD_TEST:
      case AUX_TEST:
        output_.push_back(CLOCK_STUCK_LOW);
        break;
      default:
        break;
    }
  }

  MachineControl& control_;
  CommandPort commandPort_;
  std::mutex mutex_;
  std::deque<uint8_t> output_;
  uint8_t commandByte_ = 0x30;  // Both interfaces disabled, no interrupts.
  uint8_t pendingCommand_ = 0;
};

}  // namespace cellvisor
