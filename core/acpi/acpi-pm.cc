#include "core/acpi/acpi-pm.h"

namespace cellvisor {
namespace {

constexpr uint64_t PM_TIMER_HZ = 3'579'545;
constexpr uint16_t SLP_TYP_SHIFT = 10;
constexpr uint16_t SLP_TYP_MASK = 7u << SLP_TYP_SHIFT;

}  // namespace

AcpiPm::AcpiPm(IrqLine& sci, MachineControl& control) : sci_(sci), control_(control) {}

uint32_t AcpiPm::readRegister(uint64_t offset, size_t size) {
  // One sample of the clock per access: bytes taken at different instants
  // could make the timer run backwards across a carry.
  auto elapsed = std::chrono::steady_clock::now() - start_;
  auto ticks = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(elapsed).count()) *
               PM_TIMER_HZ / 1'000'000'000;
  uint32_t timer = static_cast<uint32_t>(ticks) & 0x00ff'ffff;  // 24-bit timer.
  auto byteOf = [&](uint64_t at) -> uint8_t {
    switch (at) {
      case 0:
        return static_cast<uint8_t>(status_);
      case 1:
        return static_cast<uint8_t>(status_ >> 8);
      case 2:
        return static_cast<uint8_t>(enable_);
      case 3:
        return static_cast<uint8_t>(enable_ >> 8);
      case 4:
        return static_cast<uint8_t>(control_register_);
      case 5:
        return static_cast<uint8_t>(control_register_ >> 8);
      default:
        break;
    }
    if (at >= 8 && at < 12) return static_cast<uint8_t>(timer >> (8 * (at - 8)));
    if (at == SMI_EN) return SMI_EN_APMC;
    if (at > SMI_EN && at < SMI_EN + 4) return 0;
    return 0xff;
  };
  uint32_t value = 0;
  for (size_t i = 0; i < size; ++i) value |= uint32_t{byteOf(offset + i)} << (8 * i);
  return value;
}

void AcpiPm::read(uint64_t offset, std::span<uint8_t> data) {
  std::lock_guard lock(mutex_);
  storeLittleEndian(data, readRegister(offset, data.size()));
}

void AcpiPm::write(uint64_t offset, std::span<const uint8_t> data) {
  bool powerOff = false;
  {
    std::lock_guard lock(mutex_);
    for (size_t i = 0; i < data.size(); ++i) {
      uint64_t at = offset + i;
      uint16_t shifted = static_cast<uint16_t>(data[i] << (8 * (at & 1)));
      switch (at) {
        case 0:
        case 1:
          status_ &= static_cast<uint16_t>(~shifted);  // Write-one-to-clear.
          break;
        case 2:
        case 3:
          enable_ = static_cast<uint16_t>((enable_ & ~(0xffu << (8 * (at & 1)))) | shifted);
          break;
        case 4:
        case 5:
          control_register_ =
              static_cast<uint16_t>((control_register_ & ~(0xffu << (8 * (at & 1)))) | shifted);
          break;
        default:
          break;  // The timer is read-only.
      }
    }
    if (control_register_ & SLP_EN) {
      uint16_t type = (control_register_ & SLP_TYP_MASK) >> SLP_TYP_SHIFT;
      control_register_ &= static_cast<uint16_t>(~SLP_EN);  // SLP_EN always reads 0.
      powerOff = type == S5_SLEEP_TYPE || type == Q35_FIRMWARE_S5_SLEEP_TYPE;
    }
    updateSci();
  }
  if (powerOff) control_.requestExit(ExitStatus::POWEROFF, "guest entered ACPI S5 (power off)");
}

bool AcpiPm::pressPowerButton() {
  std::lock_guard lock(mutex_);
  status_ |= PWRBTN;
  updateSci();
  return (enable_ & PWRBTN) != 0;
}

void AcpiPm::updateSci() {
  bool level = (status_ & enable_ & PWRBTN) != 0 && (control_register_ & SCI_EN);
  if (level != sciLevel_) {
    sciLevel_ = level;
    sci_.set(level);
  }
}

}  // namespace cellvisor
