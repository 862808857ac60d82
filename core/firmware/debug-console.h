// The firmware debug console at port 0x402 (QEMU's isa-debugcon): SeaBIOS
// prints its log there once a read of the port answers 0xE9. Lines go to the
// VM's log (the core's stderr, vmm.log under vmmd), prefixed so they read as
// the firmware's.
#pragma once

#include <cstdio>
#include <mutex>
#include <string>

#include "core/platform/io-device.h"

namespace cellvisor {

class DebugConsole : public IoDevice {
 public:
  static constexpr uint16_t PORT = 0x402;
  static constexpr uint8_t READBACK = 0xe9;
  static constexpr size_t MAX_LINE = 512;  // A guest that never ends a line still gets printed.

  explicit DebugConsole(std::FILE* out = stderr) : out_(out) {}
  ~DebugConsole() override {
    if (!line_.empty()) flushLine();
  }

  void read(uint64_t, std::span<uint8_t> data) override {
    for (auto& byte : data) byte = READBACK;
  }
  void write(uint64_t, std::span<const uint8_t> data) override {
    std::lock_guard lock(mutex_);
    for (uint8_t byte : data) {
      if (byte == '\n' || line_.size() >= MAX_LINE) {
        flushLine();
        if (byte == '\n') continue;
      }
      // Control characters other than tabs would reach the log raw.
      if (byte != '\r')
        line_ += (byte >= 0x20 && byte < 0x7f) || byte == '\t' ? static_cast<char>(byte) : '?';
    }
  }

 private:
  void flushLine() {
    std::fprintf(out_, "firmware: %s\n", line_.c_str());
    std::fflush(out_);
    line_.clear();
  }

  std::mutex mutex_;
  std::FILE* out_;
  std::string line_;
};

}  // namespace cellvisor
