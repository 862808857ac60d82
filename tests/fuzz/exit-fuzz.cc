// libFuzzer target over the core's exit handlers: the guest's port I/O and
// MMIO as KVM hands them to the core, on the very platform a VM has
// (core/machine/platform.h): the UARTs, the RTC, debug-exit, reset control,
// the i8042, the ACPI PM block, fw_cfg with DMA into guest RAM, the PCI
// host's config ports and ECAM, and the chipset's functions whose windows
// move (PCIEXBAR, PMBASE) while the fuzzer writes them. Two platforms in
// turn: bhyve's (direct boot) and Q35's (firmware). Under ASan and UBSan;
// the fuzzer looks for a crash, undefined behaviour or a hang.
#include <cstring>
#include <memory>
#include <string>

#include "base/guest-memory.h"
#include "core/acpi/acpi-pm.h"
#include "core/arch/x86/address-map.h"
#include "core/firmware/debug-console.h"
#include "core/firmware/fw-cfg.h"
#include "core/machine/platform.h"
#include "core/pci/pci-host.h"
#include "core/platform/cmos-rtc.h"
#include "core/platform/debug-exit.h"
#include "core/platform/i8042.h"
#include "core/platform/io-device.h"
#include "core/platform/reset-control.h"
#include "tests/fuzz/fuzz-input.h"

namespace {

using namespace cellvisor;

class NoIrq : public IrqLine {
 public:
  void set(bool) override {}
};

class CountingControl : public MachineControl {
 public:
  void requestExit(int, const std::string&) override { ++exits; }
  using MachineControl::requestExit;
  int exits = 0;
};

struct Rig {
  MachineConfig config;
  GuestMemory memory{8 << 20};
  CountingControl control;
  std::unique_ptr<Platform> platform;

  explicit Rig(bool firmware) {
    config.serial["com1"] = "file=/dev/null";
    config.serial["com2"] = "file=/dev/null";
    if (firmware) config.bootrom = "fuzz";  // Q35's identity; nothing is loaded here.
    platform = std::make_unique<Platform>(config, memory, control, [](uint32_t) -> std::unique_ptr<IrqLine> {
      return std::make_unique<NoIrq>();
    });
    platform->attachChipsetFunctions({});
  }
};

Rig& rig(bool firmware) {
  static Rig direct(false);
  static Rig q35(true);
  return firmware ? q35 : direct;
}

// Ports the platform claims (the UARTs, then its devices'), so most
// accesses reach a device; an offset of up to 7 is added.
constexpr uint16_t PORTS[] = {0x3f8,
                              0x2f8,
                              CmosRtc::PORT,
                              DebugExit::PORT,
                              ResetControlRegister::PORT,
                              I8042::DATA_PORT,
                              I8042::COMMAND_PORT,
                              AcpiPm::PORT,
                              AcpiPm::TIMER_BLOCK,
                              FwCfg::PORT,
                              FwCfg::PORT + 4,
                              DebugConsole::PORT,
                              PciHost::ADDRESS_PORT,
                              PciHost::DATA_PORT};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  fuzzing::FuzzInput in(data, size);
  Rig& r = rig(in.byte() & 1);
  for (int access = 0; access < 64 && !in.empty(); ++access) {
    uint8_t head = in.byte();
    unsigned width = 1u << (head & 3);  // 1, 2, 4 or 8 bytes.
    bool write = (head & 4) != 0;
    uint8_t buffer[8] = {};
    std::span<uint8_t> bytes(buffer, width);
    if ((head & 8) == 0) {
      // Port I/O: a claimed port and offset, or any port.
      uint16_t port = (head & 16) != 0
                          ? static_cast<uint16_t>(in.bytes(2))
                          : static_cast<uint16_t>(PORTS[in.byte() % std::size(PORTS)] + (in.byte() & 7));
      if (width == 8) bytes = bytes.first(4);  // Port I/O is at most 4 bytes.
      if (write) {
        uint64_t value = in.bytes(static_cast<unsigned>(bytes.size()));
        std::memcpy(buffer, &value, bytes.size());
        r.platform->ports().write(port, bytes);
      } else {
        r.platform->ports().read(port, bytes);
      }
    } else {
      // MMIO: ECAM (where bhyve's platform maps it; Q35's moves with
      // PCIEXBAR), or any address.
      uint64_t address =
          (head & 16) != 0 ? in.bytes(8) : layout::ECAM_BASE + (in.bytes(4) % layout::ECAM_SIZE);
      if (write) {
        uint64_t value = in.bytes(width);
        std::memcpy(buffer, &value, width);
        r.platform->mmio().write(address, bytes);
      } else {
        r.platform->mmio().read(address, bytes);
      }
    }
  }
  return 0;
}
