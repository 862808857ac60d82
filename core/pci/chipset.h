// The chipset's own PCI functions: the host bridge at 00:00.0 and the LPC
// bridge. Firmware picks its platform code by their ids and programs their
// registers, so with firmware they are Q35's (the MCH 8086:29c0 with QEMU's
// subsystem id, the ICH9 LPC 8086:2918), which SeaBIOS and OVMF both drive.
// A direct-kernel boot keeps bhyve's identities (1275:1275, PIIX3 8086:7000);
// the registers are the same either way.
//
// What the registers do here: PCIEXBAR places (or removes) the ECAM window;
// PMBASE moves the ACPI PM block; PAM and SMRAM are kept for the firmware to
// read back (the BIOS area is plain RAM and there is no SMM); PIRQ routing
// and RCBA are scratch.
#pragma once

#include <functional>
#include <optional>

#include "core/pci/pci-config-space.h"

namespace cellvisor {

enum class Chipset { BHYVE, Q35 };

class HostBridge : public PciConfigSpace {
 public:
  static constexpr uint16_t PCIEXBAR = 0x60;
  static constexpr uint64_t PCIEXBAR_ENABLE = 1;
  // The ECAM window moved to `base`, or was switched off (nullopt).
  using EcamCallback = std::function<void(std::optional<uint64_t> base)>;

  // `ecam` is where the window starts out, nullopt for off (firmware maps it).
  HostBridge(Chipset chipset, bool amd, std::optional<uint64_t> ecam);
  void setEcamCallback(EcamCallback callback) { ecamCallback_ = std::move(callback); }
  void writeConfig(uint16_t offset, uint8_t size, uint32_t value) override;

 private:
  std::optional<uint64_t> ecamWindow();
  EcamCallback ecamCallback_;
};

class LpcBridge : public PciConfigSpace {
 public:
  static constexpr uint16_t PMBASE = 0x40;
  using PmBaseCallback = std::function<void(uint16_t port)>;

  LpcBridge(Chipset chipset, uint16_t pmBase);
  void setPmBaseCallback(PmBaseCallback callback) { pmBaseCallback_ = std::move(callback); }
  void writeConfig(uint16_t offset, uint8_t size, uint32_t value) override;

 private:
  PmBaseCallback pmBaseCallback_;
};

}  // namespace cellvisor
