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
constexpr uint64_t LIST = 0x1000, FIS_AREA = 0x1400, TABLES = 0x2000, DATA = 0x10000;

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

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 4) return 0;
  Rig& r = rig(data[0] & 1);
  uint32_t slots = data[1] | uint32_t{data[2]} << 8;
  bool queued = (data[3] & 1) != 0;
  data += 4;
  size -= 4;
  // The rest fills the command list, then the tables and buffers: headers,
  // FISes, PRD entries and packets exactly as the input says.
  size_t listBytes = std::min<size_t>(size, SLOTS * COMMAND_HEADER_SIZE);
  std::memcpy(r.memory.translate(LIST, listBytes), data, listBytes);
  if (size > listBytes) {
    size_t rest = std::min<size_t>(size - listBytes, DATA - TABLES);
    std::memcpy(r.memory.translate(TABLES, rest), data + listBytes, rest);
  }
  // Point every header's table into the table area unless the input's own
  // address is kept (odd slots), so most commands reach the decoder.
  for (uint32_t slot = 0; slot < SLOTS; slot += 2) {
    auto* header =
        reinterpret_cast<CommandHeader*>(r.memory.translate(LIST + slot * COMMAND_HEADER_SIZE, 32));
    header->ctba = static_cast<uint32_t>(TABLES + (slot / 2) * 0x400);
    header->ctbau = 0;
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
