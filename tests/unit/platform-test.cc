// Small platform devices: RTC, ACPI PM, reset, debug-exit, the I/O bus.
#include <gtest/gtest.h>

#include "core/acpi/acpi-pm.h"
#include "core/platform/cmos-rtc.h"
#include "core/platform/debug-exit.h"
#include "core/platform/i8042.h"
#include "core/platform/io-bus.h"
#include "core/platform/reset-control.h"
#include "tests/unit/fakes.h"

namespace cellvisor {
namespace {

using testing::readByte;
using testing::writeByte;

std::time_t fixedClock() {
  return 1'700'000'000;
}  // 2023-11-14 22:13:20 UTC, a Tuesday.

uint8_t rtcRead(CmosRtc& rtc, uint8_t index) {
  writeByte(rtc, 0, index);
  return readByte(rtc, 1);
}

TEST(CmosRtc, ReportsUtcInBcd) {
  CmosRtc rtc(true, 256 << 20, 0, &fixedClock);
  EXPECT_EQ(rtcRead(rtc, 0x00), 0x20);
  EXPECT_EQ(rtcRead(rtc, 0x02), 0x13);
  EXPECT_EQ(rtcRead(rtc, 0x04), 0x22);
  EXPECT_EQ(rtcRead(rtc, 0x06), 0x03) << "weekday, Sunday = 1";
  EXPECT_EQ(rtcRead(rtc, 0x07), 0x14);
  EXPECT_EQ(rtcRead(rtc, 0x08), 0x11);
  EXPECT_EQ(rtcRead(rtc, 0x09), 0x23);
  EXPECT_EQ(rtcRead(rtc, 0x32), 0x20);
  EXPECT_EQ(rtcRead(rtc, 0x0d), 0x80);
}

TEST(CmosRtc, BinaryAnd12HourModes) {
  CmosRtc rtc(true, 256 << 20, 0, &fixedClock);
  writeByte(rtc, 0, 0x0b);
  writeByte(rtc, 1, 0x04);  // Binary, 12-hour.
  EXPECT_EQ(rtcRead(rtc, 0x04), 0x80 | 10) << "10 PM";
  EXPECT_EQ(rtcRead(rtc, 0x09), 23);
}

TEST(CmosRtc, GuestCanSetTheClock) {
  CmosRtc rtc(true, 256 << 20, 0, &fixedClock);
  writeByte(rtc, 0, 0x0b);
  writeByte(rtc, 1, 0x82);  // SET, 24-hour, BCD.
  writeByte(rtc, 0, 0x09);
  writeByte(rtc, 1, 0x30);  // Year 2030.
  writeByte(rtc, 0, 0x0b);
  writeByte(rtc, 1, 0x02);
  EXPECT_EQ(rtcRead(rtc, 0x09), 0x30);
  EXPECT_EQ(rtcRead(rtc, 0x04), 0x22) << "other fields keep running from the host clock";
}

TEST(CmosRtc, ReportsMemorySize) {
  CmosRtc rtc(true, 3ull << 30, 1ull << 30, &fixedClock);
  uint16_t above16 = static_cast<uint16_t>(rtcRead(rtc, 0x34) | rtcRead(rtc, 0x35) << 8);
  EXPECT_EQ(above16, ((3ull << 30) - (16 << 20)) >> 16);
  uint32_t above4g = rtcRead(rtc, 0x5b) | rtcRead(rtc, 0x5c) << 8 | rtcRead(rtc, 0x5d) << 16;
  EXPECT_EQ(above4g, (1ull << 30) >> 16);
}

TEST(AcpiPm, S5PowersOff) {
  testing::RecordingIrq sci;
  testing::RecordingControl control;
  AcpiPm pm(sci, control);
  uint16_t sleep = (5 << 10) | (1 << 13);
  pm.write(4, {reinterpret_cast<uint8_t*>(&sleep), 2});
  ASSERT_EQ(control.statuses.size(), 1u);
  EXPECT_EQ(control.statuses[0], static_cast<int>(ExitStatus::POWEROFF));
}

// OVMF's ResetSystem on Q35 writes sleep type 0 (QEMU's \_S5 there).
TEST(AcpiPm, FirmwareShutdownWithTypeZeroPowersOff) {
  testing::RecordingIrq sci;
  testing::RecordingControl control;
  AcpiPm pm(sci, control);
  uint16_t sleep = 1 << 13;
  pm.write(4, {reinterpret_cast<uint8_t*>(&sleep), 2});
  ASSERT_EQ(control.statuses.size(), 1u);
  EXPECT_EQ(control.statuses[0], static_cast<int>(ExitStatus::POWEROFF));
}

TEST(AcpiPm, OtherSleepStatesDoNotPowerOff) {
  testing::RecordingIrq sci;
  testing::RecordingControl control;
  AcpiPm pm(sci, control);
  uint16_t sleep = (3 << 10) | (1 << 13);
  pm.write(4, {reinterpret_cast<uint8_t*>(&sleep), 2});
  EXPECT_TRUE(control.statuses.empty());
}

TEST(AcpiPm, PowerButtonRaisesSciOnlyWhenEnabled) {
  testing::RecordingIrq sci;
  testing::RecordingControl control;
  AcpiPm pm(sci, control);
  EXPECT_FALSE(pm.pressPowerButton());
  EXPECT_FALSE(sci.level);
  uint16_t enable = AcpiPm::PWRBTN;
  pm.write(2, {reinterpret_cast<uint8_t*>(&enable), 2});
  EXPECT_TRUE(sci.level) << "a pending press fires once enabled";
  pm.write(0, {reinterpret_cast<uint8_t*>(&enable), 2});  // Write-one-to-clear.
  EXPECT_FALSE(sci.level);
  EXPECT_TRUE(pm.pressPowerButton());
  EXPECT_TRUE(sci.level);
}

TEST(AcpiPm, TimerAdvances) {
  testing::RecordingIrq sci;
  testing::RecordingControl control;
  AcpiPm pm(sci, control);
  uint8_t first[4];
  uint8_t second[4];
  pm.read(8, first);
  usleep(2000);
  pm.read(8, second);
  uint32_t a = static_cast<uint32_t>(loadLittleEndian(first));
  uint32_t b = static_cast<uint32_t>(loadLittleEndian(second));
  EXPECT_GE((b - a) & 0xffffff, 7000u) << "3.58 MHz over 2 ms";
}

// Each 32-bit read is one sample of the clock: a read whose bytes came from
// different instants could go backwards (low byte before a carry, high byte
// after it), and a guest's delay loop would take that for a full wrap.
TEST(AcpiPm, TimerReadsNeverGoBackwards) {
  testing::RecordingIrq sci;
  testing::RecordingControl control;
  AcpiPm pm(sci, control);
  uint8_t bytes[4];
  pm.read(8, bytes);
  uint32_t previous = static_cast<uint32_t>(loadLittleEndian(bytes));
  int backwards = 0;
  for (int i = 0; i < 300000; ++i) {
    pm.read(8, bytes);
    uint32_t now = static_cast<uint32_t>(loadLittleEndian(bytes));
    if (((now - previous) & 0xffffff) > 0x800000) ++backwards;
    previous = now;
  }
  EXPECT_EQ(backwards, 0);
}

TEST(ResetAndDebugExit, ReportExitStatuses) {
  testing::RecordingControl control;
  ResetControlRegister cf9(control);
  writeByte(cf9, 0, 0x02);
  EXPECT_TRUE(control.statuses.empty()) << "without RST_CPU nothing happens";
  writeByte(cf9, 0, 0x06);
  testing::RecordingIrq keyboardIrq, mouseIrq;
  I8042 i8042(control, keyboardIrq, mouseIrq);
  writeByte(i8042.commandPort(), 0, 0xfe);
  DebugExit debug(control);
  writeByte(debug, 0, 0x10);
  EXPECT_EQ(control.statuses, (std::vector<int>{0, 0, 33}));
}

TEST(IoBus, RoutesAndRefusesOverlaps) {
  testing::RecordingControl control;
  DebugExit a(control);
  DebugExit b(control);
  IoBus bus("test");
  bus.add(0x100, 0x10, a, "a");
  EXPECT_THROW(bus.add(0x10f, 2, b, "b"), std::invalid_argument);
  EXPECT_THROW(bus.add(0xff, 2, b, "b"), std::invalid_argument);
  bus.add(0x110, 2, b, "b");
  uint8_t value = 1;
  EXPECT_TRUE(bus.write(0x10f, {&value, 1}));
  uint8_t wide[4] = {};
  EXPECT_FALSE(bus.read(0x10e, wide)) << "an access that straddles two ranges is unclaimed";
  EXPECT_EQ(wide[0], 0xff);
  bus.remove(0x100);
  EXPECT_FALSE(bus.write(0x100, {&value, 1}));
}

}  // namespace
}  // namespace cellvisor
