// libFuzzer target: the xHCI controller and its tablet under a hostile
// driver: arbitrary register writes, command, control and interrupt TRBs
// (links, chains, contexts and pointers anywhere), pointer events, and
// restarts of the controller on its state segment (as after kill -9, with
// junk in the copy that was never committed). Under ASan and UBSan; every
// guest address the controller follows must pass GuestMemory's bounds
// check, every ring walk must end.
#include <cstring>
#include <memory>
#include <optional>

#include "base/guest-memory.h"
#include "proto/state-segment.h"
#include "servers/xhci/xhci-controller.h"
#include "tests/fuzz/fuzz-input.h"

namespace {

using namespace cellvisor;
using namespace cellvisor::xhci;
using fuzzing::FuzzInput;

constexpr uint64_t RAM = 2 << 20;
constexpr uint64_t DCBAA = 0x10000, COMMANDS = 0x11000, ERST = 0x12000, EVENTS = 0x13000;
constexpr uint64_t OUTPUT = 0x14000, INPUT = 0x15000, EP0_RING = 0x16000, EP1_RING = 0x17000;
constexpr uint32_t EVENT_TRBS = 16, RING_TRBS = 16;

struct Rig {
  GuestMemory memory{RAM};
  std::unique_ptr<StateHeader> header = std::make_unique<StateHeader>();
  std::unique_ptr<XhciState> state = std::make_unique<XhciState>();
  std::unique_ptr<XhciController> controller;

  Rig() {
    std::memset(state.get(), 0, sizeof(*state));
    restart();
    bringUp();
  }
  void restart() {
    controller.reset();
    controller = std::make_unique<XhciController>(memory, *header, *state, true);
    controller->start([](uint16_t) {});
  }
  void reg(uint64_t offset, uint64_t value, uint8_t size = 4) {
    controller->barWrite(0, offset, size, value);
  }
  void put(uint64_t address, const Trb& trb) { std::memcpy(memory.translate(address, 16), &trb, 16); }
  // Every event taken: the driver's dequeue pointer at the enqueue.
  void consume() {
    const ControllerState& c = controller->committed();
    reg(RUNTIME_BASE + INTERRUPTER0 + ERDP, (c.eventSegment + 16ull * c.eventEnqueue) | ERDP_EHB, 8);
  }
  // A ring of RING_TRBS whose last TRB links back, all slots invalid for
  // cycle `cycle`.
  void freshRing(uint64_t base, uint32_t cycle) {
    std::memset(memory.translate(base, 16ull * RING_TRBS), 0, 16ull * RING_TRBS);
    for (uint32_t i = 0; i < RING_TRBS - 1; ++i) put(base + 16ull * i, {0, 0, cycle ^ 1});
    put(base + 16ull * (RING_TRBS - 1), {base, 0, LINK << 10 | TRB_TOGGLE_CYCLE | cycle});
  }
  void command(uint32_t& index, Trb trb) {
    trb.control = (trb.control & ~TRB_CYCLE) | 1;
    put(COMMANDS + 16ull * (index++ % (RING_TRBS - 1)), trb);
    reg(DOORBELL_BASE, 0);
    consume();
  }
  // Reset, rings, run, port reset, a slot, the tablet addressed and its
  // interrupt endpoint configured: what a driver does, so the fuzzer starts
  // deep.
  void bringUp() {
    reg(CAP_LENGTH + USBCMD, CMD_HCRST);
    reg(CAP_LENGTH + CONFIG, MAX_SLOTS);
    reg(CAP_LENGTH + DCBAAP, DCBAA, 8);
    freshRing(COMMANDS, 1);
    freshRing(EP0_RING, 1);
    freshRing(EP1_RING, 1);
    reg(CAP_LENGTH + CRCR, COMMANDS | CRCR_RCS, 8);
    uint64_t entry[2] = {EVENTS, EVENT_TRBS};
    std::memcpy(memory.translate(ERST, 16), entry, 16);
    std::memset(memory.translate(EVENTS, 16 * EVENT_TRBS), 0, 16 * EVENT_TRBS);
    reg(RUNTIME_BASE + INTERRUPTER0 + ERSTSZ, 1);
    reg(RUNTIME_BASE + INTERRUPTER0 + ERDP, EVENTS, 8);
    reg(RUNTIME_BASE + INTERRUPTER0 + ERSTBA, ERST, 8);
    reg(RUNTIME_BASE + INTERRUPTER0 + IMAN, IMAN_IE);
    reg(CAP_LENGTH + USBCMD, CMD_RUN | CMD_INTE);
    consume();
    reg(CAP_LENGTH + PORT_REGISTERS, PORT_PP | PORT_PR | PORT_CSC);
    consume();
    uint32_t index = 0;
    command(index, {0, 0, ENABLE_SLOT << 10});
    std::memcpy(memory.translate(DCBAA + 8, 8), &OUTPUT, 8);
    std::memset(memory.translate(INPUT, 33 * 32), 0, 33 * 32);
    uint32_t words[] = {3, 1u << 27 | SPEED_HIGH << 20, 1u << 16};
    std::memcpy(memory.translate(INPUT + 4, 4), &words[0], 4);
    std::memcpy(memory.translate(INPUT + 32, 4), &words[1], 4);
    std::memcpy(memory.translate(INPUT + 36, 4), &words[2], 4);
    uint32_t ep0 = 64u << 16 | EP_CONTROL << 3;
    uint64_t dequeue0 = EP0_RING | 1;
    std::memcpy(memory.translate(INPUT + 64 + 4, 4), &ep0, 4);
    std::memcpy(memory.translate(INPUT + 64 + 8, 8), &dequeue0, 8);
    command(index, {INPUT, 0, ADDRESS_DEVICE << 10 | 1u << 24});
    uint32_t add = 1 | 1u << UsbTablet::INTERRUPT_DCI, ep1 = 8u << 16 | EP_INTERRUPT_IN << 3;
    uint64_t dequeue1 = EP1_RING | 1;
    std::memcpy(memory.translate(INPUT + 4, 4), &add, 4);
    std::memcpy(memory.translate(INPUT + 32 * 4 + 4, 4), &ep1, 4);
    std::memcpy(memory.translate(INPUT + 32 * 4 + 8, 8), &dequeue1, 8);
    command(index, {INPUT, 0, CONFIGURE_ENDPOINT << 10 | 1u << 24});
    // The command ring starts over for the inputs, at its base.
    freshRing(COMMANDS, 1);
    reg(CAP_LENGTH + USBCMD, 0);
    reg(CAP_LENGTH + CRCR, COMMANDS | CRCR_RCS, 8);
    reg(CAP_LENGTH + USBCMD, CMD_RUN | CMD_INTE);
    if (controller->committed().slots[1].endpoints[UsbTablet::INTERRUPT_DCI].state != EP_RUNNING) abort();
  }
};

// Pointers folded so that most land in RAM, some just past it.
uint64_t fold(uint64_t address) {
  return (address >> 63) ? address : address % (RAM + 8192);
}

Trb trbFrom(FuzzInput& in) {
  Trb trb;
  trb.parameter = in.bytes(8);
  trb.status = in.dword();
  trb.control = in.dword();
  // Pointers (links, buffers, contexts) mostly into RAM; immediate data
  // (Setup Stage) as it came.
  if (trbType(trb) != SETUP_STAGE) trb.parameter = fold(trb.parameter);
  return trb;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Rig rig;
  const ControllerState& c = rig.controller->committed();
  if (!(c.usbcmd & CMD_RUN) || (c.usbsts & STS_HSE) || !c.slots[1].enabled) rig.bringUp();
  FuzzInput in(data, size);
  for (int step = 0; step < 64 && !in.empty(); ++step) {
    switch (in.byte() % 8) {
      case 0: {  // Any register, any value.
        uint64_t offset = (in.dword() % (DOORBELL_BASE + 0x40)) & ~3ull;
        uint8_t width = (in.byte() & 1) ? 8 : 4;
        rig.reg(offset & ~uint64_t(width - 1), in.bytes(8), width);
        break;
      }
      case 1:  // A command TRB anywhere on the command ring.
        rig.put(COMMANDS + 16ull * (in.byte() % RING_TRBS), trbFrom(in));
        rig.reg(DOORBELL_BASE, in.byte() & 1 ? 0 : in.dword());
        break;
      case 2:  // A transfer TRB on the control or interrupt ring, then a doorbell.
      {
        bool control = in.byte() & 1;
        rig.put((control ? EP0_RING : EP1_RING) + 16ull * (in.byte() % RING_TRBS), trbFrom(in));
        rig.reg(DOORBELL_BASE + 4ull * (in.byte() % (MAX_SLOTS + 2)), in.byte() % 32);
        break;
      }
      case 3: {  // The pointer.
        PointerEvent event{in.byte(), static_cast<uint16_t>(in.bytes(2)), static_cast<uint16_t>(in.bytes(2)),
                           static_cast<uint16_t>(in.bytes(2)), static_cast<uint16_t>(in.bytes(2))};
        rig.controller->pointer(std::span(&event, 1));
        break;
      }
      case 4: {  // Scribble on contexts, the ERST, the DCBAA.
        static constexpr uint64_t AREAS[] = {INPUT, OUTPUT, ERST, DCBAA};
        uint64_t at = AREAS[in.byte() % 4] + in.byte() % 0x400;
        uint64_t value = in.bytes(8);
        std::memcpy(rig.memory.translate(at, 8), &value, 8);
        break;
      }
      case 5:
        rig.consume();
        break;
      case 6: {  // kill -9: junk in the uncommitted copy, a new instance.
        ControllerState& scratch = rig.state->copies[rig.state->committed ^ 1];
        auto* bytes = reinterpret_cast<uint8_t*>(&scratch);
        for (int i = 0; i < 16; ++i) bytes[in.bytes(4) % sizeof(scratch)] = in.byte();
        rig.restart();
        break;
      }
      default:  // Pause and resume, as a snapshot does.
        rig.controller->pause();
        rig.controller->resume();
        break;
    }
  }
  return 0;
}
