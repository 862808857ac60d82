// MC146818-compatible CMOS real-time clock at ports 0x70/0x71: the time (UTC
// or local, as bhyve's -u chooses) in BCD or binary, 12- or 24-hour format,
// guest-settable (kept as an offset from the host clock), and the CMOS bytes
// firmware uses to report memory size. No periodic/alarm interrupts: guests
// that need a tick use the LAPIC timer or the PIT.
#pragma once

#include <array>
#include <ctime>
#include <mutex>

#include "core/platform/io-device.h"

namespace cellvisor {

class CmosRtc : public IoDevice {
 public:
  static constexpr uint16_t PORT = 0x70;  // Index; data at 0x71.

  // `clock` is injectable for tests; `memoryBytes` fills CMOS size fields.
  CmosRtc(bool utc, uint64_t lowMemoryBytes, uint64_t highMemoryBytes,
          std::time_t (*clock)() = &CmosRtc::hostClock);

  void read(uint64_t offset, std::span<uint8_t> data) override;
  void write(uint64_t offset, std::span<const uint8_t> data) override;

  static std::time_t hostClock() { return std::time(nullptr); }

 private:
  uint8_t readRegister(uint8_t index);
  void writeRegister(uint8_t index, uint8_t value);
  std::tm guestTime() const;
  uint8_t encode(int value) const;
  int decode(uint8_t value) const;

  std::mutex mutex_;
  bool utc_;
  std::time_t (*clock_)();
  std::time_t offset_ = 0;  // Guest time minus host time.
  uint8_t index_ = 0;
  std::array<uint8_t, 128> cmos_{};
  std::tm setting_{};  // Time being written while SET is held.
};

}  // namespace cellvisor
