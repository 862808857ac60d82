// libFuzzer target: arbitrary admin and I/O submission queue entries, PRP
// lists, SGL segments and register and doorbell writes, fed to the real NVMe
// controller with a real (memfd) backend, under ASan and UBSan. Every guest
// address the controller follows must pass GuestMemory's bounds check; the
// fuzzer looks for inputs that get past it or break an invariant (a crash,
// undefined behaviour, a completion written outside its queue, a hang).
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <memory>

#include "base/guest-memory.h"
#include "proto/state-segment.h"
#include "servers/nvme/nvme-controller.h"

namespace {

using namespace cellvisor;

constexpr uint64_t RAM = 2 << 20;
constexpr uint16_t ENTRIES = 16;
constexpr uint64_t ADMIN_SQ = 0x1000, ADMIN_CQ = 0x2000, IO_SQ = 0x3000, IO_CQ = 0x4000;
constexpr uint64_t DATA = 0x10000;

struct Rig {
  GuestMemory memory{RAM};
  StateHeader header{};
  std::unique_ptr<nvme::NvmeState> state = std::make_unique<nvme::NvmeState>();
  NvmeOptions options = parseNvmeOptions("fuzz,maxq=2,qsz=16,ioslots=4");
  std::unique_ptr<BlockBackend> backend;
  std::unique_ptr<NvmeController> controller;
  uint16_t tails[2] = {0, 0};

  Rig() {
    int disk = memfd_create("fuzz-nvme", MFD_CLOEXEC);
    if (ftruncate(disk, 1 << 20) != 0) abort();
    backend = std::make_unique<BlockBackend>(UniqueFd(disk), 64, false);
    std::memset(state.get(), 0, sizeof(*state));
    controller = std::make_unique<NvmeController>(options, "fuzz", memory, *backend, header, *state);
    controller->start([](uint16_t) {});
    enable();
  }

  void reg(uint64_t offset, uint64_t value, uint8_t size) { controller->barWrite(0, offset, size, value); }
  void admin(const nvme::Command& command) {
    std::memcpy(memory.translate(ADMIN_SQ + 64ull * tails[0], 64), &command, 64);
    tails[0] = (tails[0] + 1) % ENTRIES;
    reg(nvme::DOORBELLS, tails[0], 4);
    consume();
  }
  // The driver takes every completion at once: the queues always have room.
  void consume() {
    controller->pause();
    controller->resume();
    reg(nvme::DOORBELLS + 4, state->cq[0].tail, 4);
    if (state->cq[1].size != 0) reg(nvme::DOORBELLS + 12, state->cq[1].tail, 4);
  }
  void enable() {
    reg(nvme::REG_CC, 0, 4);
    tails[0] = tails[1] = 0;
    reg(nvme::REG_AQA, (ENTRIES - 1) | ((ENTRIES - 1) << 16), 4);
    reg(nvme::REG_ASQ, ADMIN_SQ, 8);
    reg(nvme::REG_ACQ, ADMIN_CQ, 8);
    reg(nvme::REG_CC, nvme::CC_EN | (6u << nvme::CC_IOSQES_SHIFT) | (4u << nvme::CC_IOCQES_SHIFT), 4);
    nvme::Command command{};
    command.opcode = nvme::CREATE_IO_CQ;
    command.dptr[0] = IO_CQ;
    command.cdw10 = 1 | ((ENTRIES - 1u) << 16);
    command.cdw11 = 1 | 2 | (1u << 16);
    admin(command);
    command = {};
    command.opcode = nvme::CREATE_IO_SQ;
    command.dptr[0] = IO_SQ;
    command.cdw10 = 1 | ((ENTRIES - 1u) << 16);
    command.cdw11 = 1 | (1u << 16);
    admin(command);
    // A driver's bring-up must work, or the fuzzer explores nothing.
    if (!(state->csts & nvme::CSTS_RDY) || state->sq[1].size != ENTRIES || state->cq[1].size != ENTRIES)
      abort();
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Rig rig;
  if (!(rig.state->csts & nvme::CSTS_RDY) || (rig.state->csts & nvme::CSTS_CFS) ||
      rig.state->sq[1].size == 0) {
    rig.enable();  // A previous input reset or broke the controller: bring it up as a driver would.
  }
  // An input: a control byte (which queue, how many entries, and whether a
  // stray register write comes first), the entries, then bytes for the data
  // area (PRP lists, SGL segments, DSM ranges).
  if (size < 1) return 0;
  uint8_t control = data[0];
  ++data;
  --size;
  uint16_t queue = control & 1;
  uint8_t count = static_cast<uint8_t>(1 + ((control >> 1) & 7));
  if ((control & 0x80) && size >= 9) {
    uint64_t value;
    std::memcpy(&value, data + 1, 8);
    rig.reg(uint64_t{data[0]} * 4 % 0x1100, value, 4);  // Registers or doorbells, any value.
    data += 9;
    size -= 9;
  }
  uint64_t base = queue == 0 ? ADMIN_SQ : IO_SQ;
  for (uint8_t i = 0; i < count && size >= 64; ++i) {
    nvme::Command command;
    std::memcpy(&command, data, 64);
    // Fold the data pointers so most land in RAM (deep paths), some just out.
    for (uint64_t& pointer : command.dptr) {
      if (!(pointer >> 63)) pointer %= RAM + 8192;
    }
    if (queue == 1) command.nsid = command.nsid % 3;
    std::memcpy(rig.memory.translate(base + 64ull * rig.tails[queue], 64), &command, 64);
    rig.tails[queue] = (rig.tails[queue] + 1) % ENTRIES;
    data += 64;
    size -= 64;
  }
  size_t payload = std::min<size_t>(size, RAM - DATA);
  if (payload > 0) std::memcpy(rig.memory.translate(DATA, payload), data, payload);
  rig.reg(nvme::DOORBELLS + 8ull * queue, rig.tails[queue], 4);
  rig.consume();
  return 0;
}
