// Test doubles for the core's small interfaces.
#pragma once

#include <string>
#include <vector>

#include "core/platform/io-device.h"
#include "core/platform/machine-control.h"
#include "core/platform/uart16550.h"

namespace cellvisor::testing {

class RecordingIrq : public IrqLine {
 public:
  void set(bool newLevel) override {
    level = newLevel;
    ++changes;
  }
  bool level = false;
  int changes = 0;
};

class RecordingOutput : public SerialOutput {
 public:
  void writeOutput(std::span<const uint8_t> bytes) override { text.append(bytes.begin(), bytes.end()); }
  std::string text;
};

class RecordingControl : public MachineControl {
 public:
  void requestExit(int status, const std::string& reason) override {
    statuses.push_back(status);
    reasons.push_back(reason);
  }
  using MachineControl::requestExit;
  std::vector<int> statuses;
  std::vector<std::string> reasons;
};

inline uint8_t readByte(IoDevice& device, uint64_t offset) {
  uint8_t value = 0;
  device.read(offset, {&value, 1});
  return value;
}
inline void writeByte(IoDevice& device, uint64_t offset, uint8_t value) {
  device.write(offset, {&value, 1});
}

}  // namespace cellvisor::testing
