// A user-space xHCI driver for tests: the steps Linux's xhci-hcd takes to
// start a controller and enumerate the tablet on port 1, control transfers
// on its default endpoint and interrupt transfers on its EP 1 IN, over any
// register access (a controller in-process, or a server through the core's
// proxy) and the test's guest RAM.
#pragma once

#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <optional>
#include <vector>

#include "base/guest-memory.h"
#include "servers/xhci/usb-tablet.h"
#include "servers/xhci/xhci-spec.h"

namespace cellvisor::testing {

class XhciDriver {
 public:
  static constexpr uint64_t DCBAA = 0x10000;
  static constexpr uint64_t COMMANDS = 0x11000;
  static constexpr uint64_t ERST = 0x12000;
  static constexpr uint64_t EVENTS = 0x13000;
  static constexpr uint32_t EVENT_TRBS = 16;
  static constexpr uint64_t OUTPUT = 0x14000;
  static constexpr uint64_t INPUT = 0x15000;
  static constexpr uint64_t EP0_RING = 0x16000;
  static constexpr uint64_t EP1_RING = 0x17000;
  static constexpr uint64_t BUFFER = 0x18000;
  static constexpr uint64_t REPORT = BUFFER + 0x100;
  static constexpr uint32_t RING_TRBS = 32;  // The last one links back to the first.

  using Read = std::function<uint64_t(uint64_t offset, uint8_t size)>;
  using Write = std::function<void(uint64_t offset, uint8_t size, uint64_t value)>;
  XhciDriver(GuestMemory& memory, Read read, Write write)
      : memory_(memory), read_(std::move(read)), write_(std::move(write)) {}

  struct Producer {
    uint64_t base;
    uint32_t index = 0;
    uint32_t cycle = 1;
  };

  void write32(uint64_t offset, uint32_t value) { write_(offset, 4, value); }
  void write64(uint64_t offset, uint64_t value) { write_(offset, 8, value); }
  uint32_t read32(uint64_t offset) { return static_cast<uint32_t>(read_(offset, 4)); }
  uint32_t portsc(int port) { return read32(xhci::CAP_LENGTH + xhci::PORT_REGISTERS + 16 * (port - 1)); }

  void putTrb(uint64_t address, xhci::Trb trb) { std::memcpy(memory_.translate(address, 16), &trb, 16); }
  void produce(Producer& ring, xhci::Trb trb) {
    using namespace xhci;
    trb.control = (trb.control & ~TRB_CYCLE) | ring.cycle;
    putTrb(ring.base + 16ull * ring.index, trb);
    if (++ring.index == RING_TRBS - 1) {
      putTrb(ring.base + 16ull * ring.index, {ring.base, 0, LINK << 10 | TRB_TOGGLE_CYCLE | ring.cycle});
      ring.index = 0;
      ring.cycle ^= 1;
    }
  }

  // Linux's start: reset, DCBAA, command ring, one event ring segment,
  // interrupts on, run.
  void startController() {
    using namespace xhci;
    write32(CAP_LENGTH + USBCMD, CMD_HCRST);
    ASSERT_EQ(read32(CAP_LENGTH + USBSTS) & STS_CNR, 0u);
    write32(CAP_LENGTH + CONFIG, MAX_SLOTS);
    write64(CAP_LENGTH + DCBAAP, DCBAA);
    write64(CAP_LENGTH + CRCR, COMMANDS | CRCR_RCS);
    uint64_t entry[2] = {EVENTS, EVENT_TRBS};
    std::memcpy(memory_.translate(ERST, 16), entry, 16);
    write32(RUNTIME_BASE + INTERRUPTER0 + ERSTSZ, 1);
    write64(RUNTIME_BASE + INTERRUPTER0 + ERDP, EVENTS);
    write64(RUNTIME_BASE + INTERRUPTER0 + ERSTBA, ERST);
    write32(RUNTIME_BASE + INTERRUPTER0 + IMAN, IMAN_IE);
    write32(CAP_LENGTH + USBCMD, CMD_RUN | CMD_INTE);
  }

  std::optional<xhci::Trb> nextEvent() {
    using namespace xhci;
    xhci::Trb event;
    std::memcpy(&event, memory_.translate(EVENTS + 16ull * eventIndex_, 16), 16);
    if ((event.control & TRB_CYCLE) != eventCycle_) return std::nullopt;
    if (++eventIndex_ == EVENT_TRBS) {
      eventIndex_ = 0;
      eventCycle_ ^= 1;
    }
    write64(RUNTIME_BASE + INTERRUPTER0 + ERDP, (EVENTS + 16ull * eventIndex_) | ERDP_EHB);
    return event;
  }

  xhci::Trb expectEvent(uint32_t type) {
    using namespace xhci;
    std::optional<xhci::Trb> event = nextEvent();
    EXPECT_TRUE(event.has_value()) << "no event of type " << type;
    if (!event) return {};
    EXPECT_EQ(trbType(*event), type);
    return *event;
  }

  // A command and its completion: returns the completion event.
  xhci::Trb command(xhci::Trb trb) {
    using namespace xhci;
    produce(commands_, trb);
    write32(DOORBELL_BASE, 0);
    return expectEvent(COMMAND_COMPLETION);
  }

  uint8_t* context(uint64_t base, int index) { return memory_.translate(base + 32ull * index, 32); }
  static uint32_t completion(const xhci::Trb& event) { return event.status >> 24; }

  // Port reset, Enable Slot, Address Device: the tablet at address 1.
  // With `blockSetAddress` (BSR, Linux's first step) the slot stays in
  // Default at address 0.
  void addressTablet(bool blockSetAddress = false) {
    using namespace xhci;
    startController();
    xhci::Trb change = expectEvent(PORT_STATUS_CHANGE);
    EXPECT_EQ(change.parameter >> 24, 1u);
    write32(CAP_LENGTH + PORT_REGISTERS, PORT_PP | PORT_PR | PORT_CSC);
    expectEvent(PORT_STATUS_CHANGE);
    ASSERT_TRUE(portsc(1) & PORT_PED);
    xhci::Trb enabled = command({0, 0, ENABLE_SLOT << 10});
    ASSERT_EQ(completion(enabled), SUCCESS);
    ASSERT_EQ(trbSlot(enabled), 1u);
    uint64_t output = OUTPUT;
    std::memcpy(memory_.translate(DCBAA + 8, 8), &output, 8);
    std::memset(memory_.translate(INPUT, 33 * 32), 0, 33 * 32);
    uint32_t add = 3;
    std::memcpy(context(INPUT, 0) + 4, &add, 4);
    uint32_t slot0 = 1u << 27 | SPEED_HIGH << 20, slot1 = 1u << 16;
    std::memcpy(context(INPUT, 1), &slot0, 4);
    std::memcpy(context(INPUT, 1) + 4, &slot1, 4);
    uint32_t ep1 = 64u << 16 | EP_CONTROL << 3 | 3 << 1;
    uint64_t dequeue = EP0_RING | 1;
    std::memcpy(context(INPUT, 2) + 4, &ep1, 4);
    std::memcpy(context(INPUT, 2) + 8, &dequeue, 8);
    uint32_t bsr = blockSetAddress ? TRB_BSR : 0;
    ASSERT_EQ(completion(command({INPUT, 0, ADDRESS_DEVICE << 10 | bsr | 1u << 24})), SUCCESS);
    uint32_t state;
    std::memcpy(&state, context(OUTPUT, 0) + 12, 4);
    EXPECT_EQ(state >> 27, uint32_t{blockSetAddress ? SLOT_DEFAULT : SLOT_ADDRESSED});
    EXPECT_EQ(state & 0xff, blockSetAddress ? 0u : 1u);
  }

  // A control transfer on EP0; returns the events it produced.
  std::vector<xhci::Trb> control(uint8_t type, uint8_t request, uint16_t value, uint16_t index,
                                 uint16_t length) {
    using namespace xhci;
    uint64_t setup = uint64_t{type} | uint64_t{request} << 8 | uint64_t{value} << 16 | uint64_t{index} << 32 |
                     uint64_t{length} << 48;
    bool in = type & 0x80;
    produce(ep0_, {setup, 8, SETUP_STAGE << 10 | TRB_IDT | (length ? (in ? 3u : 2u) : 0u) << 16});
    if (length) produce(ep0_, {BUFFER, length, DATA_STAGE << 10 | TRB_ISP | (in ? TRB_DIR_IN : 0)});
    produce(ep0_, {0, 0, STATUS_STAGE << 10 | TRB_IOC | (in && length ? 0 : TRB_DIR_IN)});
    write32(DOORBELL_BASE + 4, 1);
    std::vector<xhci::Trb> events;
    while (auto event = nextEvent()) events.push_back(*event);
    return events;
  }

  void configureTablet() {
    using namespace xhci;
    std::memset(memory_.translate(INPUT, 33 * 32), 0, 33 * 32);
    uint32_t add = 1u | 1u << UsbTablet::INTERRUPT_DCI;
    std::memcpy(context(INPUT, 0) + 4, &add, 4);
    uint32_t slot0 = 3u << 27 | SPEED_HIGH << 20;
    std::memcpy(context(INPUT, 1), &slot0, 4);
    uint32_t ep1 = 8u << 16 | EP_INTERRUPT_IN << 3 | 3 << 1;
    uint64_t dequeue = EP1_RING | 1;
    std::memcpy(context(INPUT, 1 + UsbTablet::INTERRUPT_DCI) + 4, &ep1, 4);
    std::memcpy(context(INPUT, 1 + UsbTablet::INTERRUPT_DCI) + 8, &dequeue, 8);
    ASSERT_EQ(completion(command({INPUT, 0, CONFIGURE_ENDPOINT << 10 | 1u << 24})), SUCCESS);
    auto events = control(0x00, 0x09, 1, 0, 0);  // SET_CONFIGURATION 1
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(completion(events[0]), SUCCESS);
  }

  // The interrupt transfer usbhid keeps queued: 8 bytes, IOC and ISP.
  void queueReportTransfer() {
    using namespace xhci;
    produce(ep1_, {REPORT, 8, NORMAL << 10 | TRB_IOC | TRB_ISP});
    write32(DOORBELL_BASE + 4, UsbTablet::INTERRUPT_DCI);
  }
  const uint8_t* report() { return memory_.translate(REPORT, 6); }

  Producer& commands() { return commands_; }
  Producer& ep0() { return ep0_; }
  Producer& ep1() { return ep1_; }

 private:
  GuestMemory& memory_;
  Read read_;
  Write write_;
  Producer commands_{COMMANDS};
  Producer ep0_{EP0_RING};
  Producer ep1_{EP1_RING};
  uint32_t eventIndex_ = 0;
  uint32_t eventCycle_ = 1;
};

}  // namespace cellvisor::testing
