// libFuzzer target: arbitrary command FISes, command headers, PRD tables,
// ATAPI packets and register writes fed to the real AHCI controller (a disk
// and a CD, two ports of one controller) with real (memfd) backends, under
// ASan and UBSan.
// Every guest address the controller follows must pass GuestMemory's bounds
// check; the fuzzer looks for inputs that get past it or break an invariant
// (a crash, undefined behaviour, a hang, a slot completed twice).
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <vector>

#include "base/guest-memory.h"
#include "proto/state-segment.h"
#include "servers/ahci/ahci-controller.h"
#include "tests/fuzz/fuzz-input.h"

namespace {

using namespace cellvisor;
using namespace cellvisor::ahci;

constexpr uint64_t RAM = 2 << 20;
constexpr uint64_t DATA = 0x40000;
constexpr uint32_t PORTS = 2;  // Port 0 a disk, port 1 a CD.
// Each port's command list, received FIS area and 32 tables of 0x200.
constexpr uint64_t portList(uint32_t port) {
  return 0x1000 + port * 0x10000ull;
}
constexpr uint64_t portFis(uint32_t port) {
  return portList(port) + 0x400;
}
constexpr uint64_t portTables(uint32_t port) {
  return portList(port) + 0x1000;
}
constexpr uint64_t portRegister(uint32_t port, uint64_t reg) {
  return PORT_BASE + port * PORT_STRIDE + reg;
}

struct Rig {
  GuestMemory memory{RAM};
  StateHeader header{};
  std::unique_ptr<AhciState> state = std::make_unique<AhciState>();
  std::vector<std::unique_ptr<BlockBackend>> backends;
  std::unique_ptr<AhciController> controller;

  Rig() {
    AhciOptions options = parseAhciOptions("ahci", "hd:fuzz-disk,cd:fuzz-cd");
    std::vector<BlockBackend*> views;
    for (const auto& port : options.ports) {
      int image = memfd_create("fuzz-ahci", MFD_CLOEXEC);
      if (ftruncate(image, 1 << 20) != 0) abort();
      backends.push_back(std::make_unique<BlockBackend>(UniqueFd(image), 64, port.readOnly));
      views.push_back(backends.back().get());
    }
    std::memset(state.get(), 0, sizeof(*state));
    controller = std::make_unique<AhciController>(options, "fuzz", memory, views, header, *state);
    controller->start([](uint16_t) {});
    for (uint32_t port = 0; port < PORTS; ++port) {
      reg(portRegister(port, PX_CLB), static_cast<uint32_t>(portList(port)));
      reg(portRegister(port, PX_FB), static_cast<uint32_t>(portFis(port)));
      reg(portRegister(port, PX_CMD), PXCMD_FRE | PXCMD_ST);
    }
  }
  void reg(uint64_t offset, uint32_t value) { controller->barWrite(AhciController::ABAR, offset, 4, value); }
  // Waits out what the backends have, as the event loop would.
  void settle() {
    controller->pause();
    controller->resume();
  }
};

Rig& rig() {
  static Rig rig;
  return rig;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  fuzzing::FuzzInput in(data, size);
  Rig& r = rig();
  uint32_t port = in.byte() % PORTS;
  bool queued = (in.byte() & 1) != 0;
  uint32_t slots = 0;
  // Up to four commands, each: slot and flags, PRD count, the command FIS,
  // the ATAPI packet, the PRD entries. Mostly well-formed (so the decoders
  // are reached), with the input's own values where it says so.
  for (int command = 0; command < 4 && !in.empty(); ++command) {
    uint8_t head = in.byte();
    uint32_t slot = head & 31;
    bool raw = (head & 0x80) != 0;
    uint32_t prds = in.byte() % 9;
    uint64_t table = portTables(port) + slot * 0x200;
    CommandHeader header{};
    header.flags = 5 | (uint32_t{in.byte()} & 0xe0) | (prds << 16);
    header.ctba = raw ? in.dword() : static_cast<uint32_t>(table);
    std::memcpy(r.memory.translate(portList(port) + slot * COMMAND_HEADER_SIZE, 32), &header, sizeof(header));
    uint8_t* t = r.memory.translate(table, 0x200);
    std::memset(t, 0, 0x200);
    for (uint32_t i = 0; i < 20; ++i) t[i] = in.byte();
    if (!raw) {
      t[0] = FIS_H2D_REGISTER;
      t[1] |= H2D_COMMAND;
    }
    for (uint32_t i = 0; i < 16; ++i) t[TABLE_ACMD + i] = in.byte();
    for (uint32_t i = 0; i < prds; ++i) {
      PrdEntry entry{in.dword(), raw ? in.dword() : 0, 0, in.dword()};
      if (!raw) entry.dba = static_cast<uint32_t>(DATA + entry.dba % (RAM - DATA));
      std::memcpy(t + TABLE_PRDT + 16 * i, &entry, sizeof(entry));
    }
    slots |= 1u << slot;
  }
  if (queued) r.reg(portRegister(port, PX_SACT), slots);
  r.reg(portRegister(port, PX_CI), slots);
  r.settle();
  // Whatever failed, the driver's recovery: stop, clear, start.
  r.reg(portRegister(port, PX_CMD), PXCMD_FRE);
  r.reg(portRegister(port, PX_IS), ~0u);
  r.reg(portRegister(port, PX_CMD), PXCMD_FRE | PXCMD_ST);
  const PortState& state = r.state->ports[port];
  if (state.ci != 0 || state.sact != 0 || state.taken != 0) abort();
  return 0;
}
