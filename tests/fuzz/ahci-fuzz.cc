// libFuzzer target: arbitrary command FISes, command headers, PRD tables,
// ATAPI packets and register writes fed to the real AHCI controller (a disk
// and a CD, in turn) with a real (memfd) backend, under ASan and UBSan.
// Every guest address the controller follows must pass GuestMemory's bounds
// check; the fuzzer looks for inputs that get past it or break an invariant
// (a crash, undefined behaviour, a hang, a slot completed twice).
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <memory>

#include "base/guest-memory.h"
#include "proto/state-segment.h"
#include "servers/ahci/ahci-controller.h"

namespace {

using namespace cellvisor;
using namespace cellvisor::ahci;

constexpr uint64_t RAM = 2 << 20;
constexpr uint64_t LIST = 0x1000, FIS_AREA = 0x1400, TABLES = 0x2000, DATA = 0x10000;  // 32 tables of 0x200.

struct Rig {
  GuestMemory memory{RAM};
  StateHeader header{};
  std::unique_ptr<AhciState> state = std::make_unique<AhciState>();
  std::unique_ptr<BlockBackend> backend;
  std::unique_ptr<AhciController> controller;

  explicit Rig(bool cd) {
    int disk = memfd_create("fuzz-ahci", MFD_CLOEXEC);
    if (ftruncate(disk, 1 << 20) != 0) abort();
    AhciOptions options = parseAhciOptions(cd ? "ahci-cd" : "ahci-hd", "fuzz");
    backend = std::make_unique<BlockBackend>(UniqueFd(disk), 64, options.readOnly);
    std::memset(state.get(), 0, sizeof(*state));
    controller = std::make_unique<AhciController>(options, "fuzz", memory, *backend, header, *state);
    controller->start([](uint16_t) {});
    reg(PORT_BASE + PX_CLB, LIST);
    reg(PORT_BASE + PX_FB, FIS_AREA);
    reg(PORT_BASE + PX_CMD, PXCMD_FRE | PXCMD_ST);
  }
  void reg(uint64_t offset, uint32_t value) { controller->barWrite(AhciController::ABAR, offset, 4, value); }
  // Waits out what the backend has, as the event loop would.
  void settle() {
    controller->pause();
    controller->resume();
  }
};

Rig& rig(bool cd) {
  static Rig disk(false);
  static Rig cdrom(true);
  return cd ? cdrom : disk;
}

}  // namespace

// Reads the input front to back; runs dry as zeros.
struct Input {
  const uint8_t* data;
  size_t size;
  uint8_t byte() {
    if (size == 0) return 0;
    --size;
    return *data++;
  }
  uint32_t dword() {
    return byte() | uint32_t{byte()} << 8 | uint32_t{byte()} << 16 | uint32_t{byte()} << 24;
  }
};

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  Input in{data, size};
  Rig& r = rig(in.byte() & 1);
  bool queued = (in.byte() & 1) != 0;
  uint32_t slots = 0;
  // Up to four commands, each: slot and flags, PRD count, the command FIS,
  // the ATAPI packet, the PRD entries. Mostly well-formed (so the decoders
  // are reached), with the input's own values where it says so.
  for (int command = 0; command < 4 && in.size > 0; ++command) {
    uint8_t head = in.byte();
    uint32_t slot = head & 31;
    bool raw = (head & 0x80) != 0;
    uint32_t prds = in.byte() % 9;
    uint64_t table = TABLES + slot * 0x200;
    CommandHeader header{};
    header.flags = 5 | (uint32_t{in.byte()} & 0xe0) | (prds << 16);
    header.ctba = raw ? in.dword() : static_cast<uint32_t>(table);
    std::memcpy(r.memory.translate(LIST + slot * COMMAND_HEADER_SIZE, 32), &header, sizeof(header));
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
  if (queued) r.reg(PORT_BASE + PX_SACT, slots);
  r.reg(PORT_BASE + PX_CI, slots);
  r.settle();
  // Whatever failed, the driver's recovery: stop, clear, start.
  r.reg(PORT_BASE + PX_CMD, PXCMD_FRE);
  r.reg(PORT_BASE + PX_IS, ~0u);
  r.reg(PORT_BASE + PX_CMD, PXCMD_FRE | PXCMD_ST);
  if (r.state->port.ci != 0 || r.state->port.sact != 0 || r.state->port.taken != 0) abort();
  return 0;
}
