// The test/debug-exit port (bhyve's pc-testdev plays this role): a guest
// write of V ends the VM with status (V << 1) | 1 — the same rule as QEMU's
// isa-debug-exit, so one test guest reports the same way under both.
#pragma once

#include <fmt/format.h>

#include <atomic>
#include <chrono>

#include "core/platform/io-device.h"
#include "core/platform/machine-control.h"

namespace cellvisor {

class DebugExit : public IoDevice {
 public:
  static constexpr uint16_t PORT = 0x501;
  explicit DebugExit(MachineControl& control) : control_(control) {}

  void read(uint64_t, std::span<uint8_t> data) override { storeLittleEndian(data, 0); }
  void write(uint64_t, std::span<const uint8_t> data) override {
    int64_t expected = 0;
    firstWriteNs_.compare_exchange_strong(expected, std::chrono::duration_cast<std::chrono::nanoseconds>(
                                                        std::chrono::steady_clock::now().time_since_epoch())
                                                        .count());
    uint64_t value = loadLittleEndian(data);
    control_.requestExit(static_cast<int>(((value << 1) | 1) & 0xff),
                         fmt::format("guest wrote {:#x} to the debug-exit port", value));
  }

  // CLOCK_MONOTONIC time of the guest's first write, 0 if none (boot benchmarks).
  int64_t firstWriteNs() const { return firstWriteNs_.load(); }

 private:
  MachineControl& control_;
  std::atomic<int64_t> firstWriteNs_{0};
};

}  // namespace cellvisor
