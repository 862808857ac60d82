// ACPI fixed hardware: the PM1a event and control blocks and the PM timer.
// The power button is a fixed-feature event (no AML needed): pressing it sets
// PWRBTN_STS and raises the SCI if the guest enabled it. Writing SLP_EN with
// the S5 type from our DSDT's \_S5 powers the VM off.
#pragma once

#include <chrono>
#include <mutex>

#include "core/platform/io-device.h"
#include "core/platform/machine-control.h"

namespace cellvisor {

class AcpiPm : public IoDevice {
 public:
  static constexpr uint16_t PORT = 0x600;
  static constexpr uint16_t SIZE = 0x80;               // ICH9's PM block: 128 ports.
  static constexpr uint16_t EVENT_BLOCK = PORT;        // STS (2) + EN (2).
  static constexpr uint16_t CONTROL_BLOCK = PORT + 4;  // PM1a_CNT (2).
  static constexpr uint16_t TIMER_BLOCK = PORT + 8;    // PM_TMR (4).
  // SMI_EN reads with APMC_EN set: firmware takes SMM as set up and leaves
  // it alone (there is no SMM here; SeaBIOS would wait for an SMI forever).
  static constexpr uint16_t SMI_EN = 0x30;
  static constexpr uint8_t SMI_EN_APMC = 1u << 5;
  static constexpr uint32_t SCI_IRQ = 9;
  static constexpr uint8_t S5_SLEEP_TYPE = 5;
  // What OVMF's ResetSystem writes on a Q35 machine (QEMU's \_S5 there is 0):
  // also off.
  static constexpr uint8_t Q35_FIRMWARE_S5_SLEEP_TYPE = 0;
  static constexpr uint16_t PWRBTN = 1u << 8;
  static constexpr uint16_t SLP_EN = 1u << 13;
  static constexpr uint16_t SCI_EN = 1u << 0;

  AcpiPm(IrqLine& sci, MachineControl& control);

  void read(uint64_t offset, std::span<uint8_t> data) override;
  void write(uint64_t offset, std::span<const uint8_t> data) override;

  // The host's shutdown request (SIGTERM, vmctl stop). Returns false if the
  // guest has not enabled the power-button event, so the caller can decide
  // how long to wait before forcing the VM off.
  bool pressPowerButton();

 private:
  uint32_t readRegister(uint64_t offset, size_t size);
  void updateSci();

  std::mutex mutex_;
  IrqLine& sci_;
  MachineControl& control_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  uint16_t status_ = 0;
  uint16_t enable_ = 0;
  uint16_t control_register_ = SCI_EN;  // No SMI_CMD: ACPI mode from reset.
  bool sciLevel_ = false;
};

}  // namespace cellvisor
