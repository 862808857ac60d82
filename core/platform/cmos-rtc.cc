#include "core/platform/cmos-rtc.h"

#include <algorithm>

namespace cellvisor {
namespace {

enum : uint8_t {
  SECONDS = 0x00,
  MINUTES = 0x02,
  HOURS = 0x04,
  WEEKDAY = 0x06,
  DAY = 0x07,
  MONTH = 0x08,
  YEAR = 0x09,
  STATUS_A = 0x0a,
  STATUS_B = 0x0b,
  STATUS_C = 0x0c,
  STATUS_D = 0x0d,
  CENTURY = 0x32,
  MEMORY_ABOVE_16M_LOW = 0x34,  // In 64 KiB units, up to 4 GiB.
  MEMORY_ABOVE_16M_HIGH = 0x35,
  MEMORY_ABOVE_4G_0 = 0x5b,  // In 64 KiB units.
  MEMORY_ABOVE_4G_1 = 0x5c,
  MEMORY_ABOVE_4G_2 = 0x5d,
};

constexpr uint8_t B_SET = 0x80;
constexpr uint8_t B_BINARY = 0x04;
constexpr uint8_t B_24_HOUR = 0x02;
constexpr uint8_t D_VALID_RAM = 0x80;
constexpr uint8_t INDEX_MASK = 0x7f;  // Bit 7 is the NMI disable bit.

bool isTimeRegister(uint8_t index) {
  switch (index) {
    case SECONDS:
    case MINUTES:
    case HOURS:
    case WEEKDAY:
    case DAY:
    case MONTH:
    case YEAR:
    case CENTURY:
      return true;
    default:
      return false;
  }
}

}  // namespace

CmosRtc::CmosRtc(bool utc, uint64_t lowMemoryBytes, uint64_t highMemoryBytes, std::time_t (*clock)())
    : utc_(utc), clock_(clock) {
  cmos_[STATUS_A] = 0x26;  // 32.768 kHz base, 1024 Hz rate: the firmware default.
  cmos_[STATUS_B] = B_24_HOUR;
  cmos_[STATUS_D] = D_VALID_RAM;
  constexpr uint64_t SIXTEEN_MIB = 16ull << 20;
  uint64_t above16 = lowMemoryBytes > SIXTEEN_MIB ? (lowMemoryBytes - SIXTEEN_MIB) >> 16 : 0;
  above16 = std::min<uint64_t>(above16, 0xffff);
  cmos_[MEMORY_ABOVE_16M_LOW] = static_cast<uint8_t>(above16);
  cmos_[MEMORY_ABOVE_16M_HIGH] = static_cast<uint8_t>(above16 >> 8);
  uint64_t above4g = highMemoryBytes >> 16;
  cmos_[MEMORY_ABOVE_4G_0] = static_cast<uint8_t>(above4g);
  cmos_[MEMORY_ABOVE_4G_1] = static_cast<uint8_t>(above4g >> 8);
  cmos_[MEMORY_ABOVE_4G_2] = static_cast<uint8_t>(above4g >> 16);
}

void CmosRtc::read(uint64_t offset, std::span<uint8_t> data) {
  std::lock_guard lock(mutex_);
  for (auto& byte : data) byte = offset == 0 ? index_ : readRegister(index_ & INDEX_MASK);
}

void CmosRtc::write(uint64_t offset, std::span<const uint8_t> data) {
  std::lock_guard lock(mutex_);
  for (uint8_t byte : data) {
    if (offset == 0) {
      index_ = byte;
    } else {
      writeRegister(index_ & INDEX_MASK, byte);
    }
  }
}

std::tm CmosRtc::guestTime() const {
  std::time_t now = clock_() + offset_;
  std::tm time{};
  if (utc_) {
    gmtime_r(&now, &time);
  } else {
    localtime_r(&now, &time);
  }
  return time;
}

uint8_t CmosRtc::encode(int value) const {
  if (cmos_[STATUS_B] & B_BINARY) return static_cast<uint8_t>(value);
  return static_cast<uint8_t>(((value / 10) << 4) | (value % 10));
}

int CmosRtc::decode(uint8_t value) const {
  if (cmos_[STATUS_B] & B_BINARY) return value;
  return (value >> 4) * 10 + (value & 0x0f);
}

uint8_t CmosRtc::readRegister(uint8_t index) {
  if (index == STATUS_C) {
    uint8_t flags = cmos_[STATUS_C];
    cmos_[STATUS_C] = 0;  // Reading C acknowledges pending flags.
    return flags;
  }
  if (!isTimeRegister(index) || (cmos_[STATUS_B] & B_SET)) return cmos_[index];
  std::tm time = guestTime();
  switch (index) {
    case SECONDS:
      return encode(std::min(time.tm_sec, 59));
    case MINUTES:
      return encode(time.tm_min);
    case HOURS: {
      if (cmos_[STATUS_B] & B_24_HOUR) return encode(time.tm_hour);
      int hour12 = time.tm_hour % 12 == 0 ? 12 : time.tm_hour % 12;
      return static_cast<uint8_t>(encode(hour12) | (time.tm_hour >= 12 ? 0x80 : 0));
    }
    case WEEKDAY:
      return encode(time.tm_wday + 1);
    case DAY:
      return encode(time.tm_mday);
    case MONTH:
      return encode(time.tm_mon + 1);
    case YEAR:
      return encode(time.tm_year % 100);
    case CENTURY:
      return encode((time.tm_year + 1900) / 100);
    default:
      return cmos_[index];  // Alarm registers.
  }
}

void CmosRtc::writeRegister(uint8_t index, uint8_t value) {
  switch (index) {
    case STATUS_C:
    case STATUS_D:
      return;  // Read-only.
    case STATUS_B: {
      bool wasSetting = cmos_[STATUS_B] & B_SET;
      bool setting = value & B_SET;
      if (setting && !wasSetting) {
        // Freeze the current time into the registers for the guest to edit.
        setting_ = guestTime();
        for (uint8_t reg : {SECONDS, MINUTES, HOURS, DAY, MONTH, YEAR, CENTURY}) {
          cmos_[reg] = readRegister(reg);
        }
      }
      cmos_[STATUS_B] = value;
      if (!setting && wasSetting) {
        std::tm time{};
        time.tm_sec = decode(cmos_[SECONDS]);
        time.tm_min = decode(cmos_[MINUTES]);
        int hour = decode(cmos_[HOURS] & 0x7f);
        if (!(value & B_24_HOUR)) hour = (hour % 12) + ((cmos_[HOURS] & 0x80) ? 12 : 0);
        time.tm_hour = hour;
        time.tm_mday = decode(cmos_[DAY]);
        time.tm_mon = decode(cmos_[MONTH]) - 1;
        time.tm_year = decode(cmos_[CENTURY]) * 100 + decode(cmos_[YEAR]) - 1900;
        time.tm_isdst = -1;
        std::time_t guest = utc_ ? timegm(&time) : mktime(&time);
        if (guest != static_cast<std::time_t>(-1)) offset_ = guest - clock_();
      }
      return;
    }
    default:
      if (isTimeRegister(index) && !(cmos_[STATUS_B] & B_SET)) return;  // Ignored unless SET.
      cmos_[index] = value;
  }
}

}  // namespace cellvisor
