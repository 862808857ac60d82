#include "core/pci/chipset.h"

namespace cellvisor {
namespace {

constexpr uint16_t QEMU_SUBSYSTEM_VENDOR = 0x1af4;
constexpr uint16_t QEMU_SUBSYSTEM = 0x1100;

// bhyve's identities, so guests' driver tables already know them.
constexpr PciIdentity BHYVE_HOST_BRIDGE{
    .vendor = 0x1275, .device = 0x1275, .subclass = 0x00, .classCode = 0x06};
constexpr PciIdentity AMD_HOST_BRIDGE{
    .vendor = 0x1022, .device = 0x7432, .subclass = 0x00, .classCode = 0x06};
constexpr PciIdentity BHYVE_LPC_BRIDGE{
    .vendor = 0x8086, .device = 0x7000, .subclass = 0x01, .classCode = 0x06};
// Q35's, with the subsystem id by which SeaBIOS recognises a QEMU-like machine.
constexpr PciIdentity Q35_MCH{.vendor = 0x8086,
                              .device = 0x29c0,
                              .subclass = 0x00,
                              .classCode = 0x06,
                              .subsystemVendor = QEMU_SUBSYSTEM_VENDOR,
                              .subsystem = QEMU_SUBSYSTEM};
constexpr PciIdentity ICH9_LPC{.vendor = 0x8086,
                               .device = 0x2918,
                               .revision = 0x02,
                               .subclass = 0x01,
                               .classCode = 0x06,
                               .subsystemVendor = QEMU_SUBSYSTEM_VENDOR,
                               .subsystem = QEMU_SUBSYSTEM,
                               .headerType = 0x80};

// MCH registers (Q35 datasheet numbering).
constexpr uint16_t PAM0 = 0x90;
constexpr int PAM_REGISTERS = 7;
constexpr uint16_t SMRAM = 0x9d;
constexpr uint16_t ESMRAMC = 0x9e;
// PCIEXBAR: bit 0 enable, bits 2:1 length (0: 256 buses), base from bit 28.
constexpr uint32_t PCIEXBAR_LOW_MASK = 0xf000'0001;
constexpr uint32_t PCIEXBAR_HIGH_MASK = 0x0000'000f;  // 36 address bits.

// ICH9 LPC registers.
constexpr uint32_t PMBASE_IO_SPACE = 1;   // Read-only: the base is an I/O address.
constexpr uint32_t PMBASE_MASK = 0xff80;  // 128 ports, 128-aligned.
constexpr uint16_t ACPI_CNTL = 0x44;
constexpr uint16_t PIRQA_ROUT = 0x60;
constexpr uint16_t PIRQE_ROUT = 0x68;
constexpr uint8_t PIRQ_DISABLED = 0x80;
constexpr uint16_t GEN_PMCON_1 = 0xa0;
constexpr uint16_t RCBA = 0xf0;

bool touches(uint16_t offset, uint8_t size, uint16_t reg, uint16_t length) {
  return offset < reg + length && offset + size > reg;
}

}  // namespace

HostBridge::HostBridge(Chipset chipset, bool amd, std::optional<uint64_t> ecam)
    : PciConfigSpace(chipset == Chipset::Q35 ? Q35_MCH : (amd ? AMD_HOST_BRIDGE : BHYVE_HOST_BRIDGE)) {
  uint64_t pciexbar = ecam ? (*ecam | PCIEXBAR_ENABLE) : 0;
  space().set32(PCIEXBAR, static_cast<uint32_t>(pciexbar), PCIEXBAR_LOW_MASK);
  space().set32(PCIEXBAR + 4, static_cast<uint32_t>(pciexbar >> 32), PCIEXBAR_HIGH_MASK);
  // The BIOS area is RAM from the start: PAM reads back what firmware wrote
  // and changes nothing (a BIOS that copies itself down copies onto itself).
  space().setByte(PAM0, 0, 0x30);
  for (uint16_t i = 1; i < PAM_REGISTERS; ++i) space().setByte(static_cast<uint16_t>(PAM0 + i), 0, 0x33);
  space().setByte(SMRAM, 0x02, 0x78);  // SMRAM closed; there is no SMM.
  space().setByte(ESMRAMC, 0x38, 0x00);
}

std::optional<uint64_t> HostBridge::ecamWindow() {
  uint64_t value = readConfig(PCIEXBAR, 4) | (uint64_t{readConfig(PCIEXBAR + 4, 4)} << 32);
  if ((value & PCIEXBAR_ENABLE) == 0) return std::nullopt;
  return value & 0xf'f000'0000ull;
}

void HostBridge::writeConfig(uint16_t offset, uint8_t size, uint32_t value) {
  if (!touches(offset, size, PCIEXBAR, 8)) {
    PciConfigSpace::writeConfig(offset, size, value);
    return;
  }
  auto before = ecamWindow();
  PciConfigSpace::writeConfig(offset, size, value);
  auto after = ecamWindow();
  if (after != before && ecamCallback_) ecamCallback_(after);
}

LpcBridge::LpcBridge(Chipset chipset, uint16_t pmBase)
    : PciConfigSpace(chipset == Chipset::Q35 ? ICH9_LPC : BHYVE_LPC_BRIDGE) {
  space().set32(PMBASE, pmBase | PMBASE_IO_SPACE, PMBASE_MASK);
  space().setByte(ACPI_CNTL, 0x00, 0x87);
  for (uint16_t i = 0; i < 4; ++i) {
    space().setByte(static_cast<uint16_t>(PIRQA_ROUT + i), PIRQ_DISABLED, 0x8f);
    space().setByte(static_cast<uint16_t>(PIRQE_ROUT + i), PIRQ_DISABLED, 0x8f);
  }
  space().set16(GEN_PMCON_1, 0, 0xffff);
  space().set32(RCBA, 0, 0xffff'c001);
}

void LpcBridge::writeConfig(uint16_t offset, uint8_t size, uint32_t value) {
  if (!touches(offset, size, PMBASE, 4)) {
    PciConfigSpace::writeConfig(offset, size, value);
    return;
  }
  uint32_t before = readConfig(PMBASE, 4) & PMBASE_MASK;
  PciConfigSpace::writeConfig(offset, size, value);
  uint32_t after = readConfig(PMBASE, 4) & PMBASE_MASK;
  if (after != before && pmBaseCallback_) pmBaseCallback_(static_cast<uint16_t>(after));
}

}  // namespace cellvisor
