// The xHCI controller and its tablet driven in-process the way an xHCI
// driver does (Linux's order of steps), and by a hostile one: rings that
// loop, pointers outside RAM, requests the device does not know.
#include <gtest/gtest.h>

#include <cstring>
#include <optional>
#include <vector>

#include "base/guest-memory.h"
#include "proto/state-segment.h"
#include "servers/xhci/xhci-controller.h"

namespace cellvisor {
namespace {

using namespace xhci;

constexpr uint64_t RAM = 16 << 20;
constexpr uint64_t DCBAA = 0x10000;
constexpr uint64_t COMMANDS = 0x11000;
constexpr uint64_t ERST = 0x12000;
constexpr uint64_t EVENTS = 0x13000;
constexpr uint32_t EVENT_TRBS = 16;
constexpr uint64_t OUTPUT = 0x14000;
constexpr uint64_t INPUT = 0x15000;
constexpr uint64_t EP0_RING = 0x16000;
constexpr uint64_t EP1_RING = 0x17000;
constexpr uint64_t BUFFER = 0x18000;
constexpr uint32_t RING_TRBS = 32;  // The last one links back to the first.

// A driver's side: rings it produces into and the event ring it consumes.
class XhciTest : public ::testing::Test {
 protected:
  struct Producer {
    uint64_t base;
    uint32_t index = 0;
    uint32_t cycle = 1;
  };

  void SetUp() override { restart(); }

  // A new controller instance on the same state segment and memory (a
  // restarted server).
  void restart() {
    controller_.reset();
    controller_.emplace(memory_, segment_.header(), segment_.body<XhciState>(), true);
    controller_->start([this](uint16_t) { ++interrupts_; });
  }

  void write32(uint64_t offset, uint32_t value) { controller_->barWrite(0, offset, 4, value); }
  void write64(uint64_t offset, uint64_t value) { controller_->barWrite(0, offset, 8, value); }
  uint32_t read32(uint64_t offset) { return static_cast<uint32_t>(controller_->barRead(0, offset, 4)); }
  uint32_t portsc(int port) { return read32(CAP_LENGTH + PORT_REGISTERS + 16 * (port - 1)); }

  void putTrb(uint64_t address, Trb trb) { std::memcpy(memory_.translate(address, 16), &trb, 16); }
  void produce(Producer& ring, Trb trb) {
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
    // MSI-X on, its one vector unmasked.
    uint16_t msix = static_cast<uint16_t>(controller_->configRead(pci::CAPABILITIES, 1));
    ASSERT_EQ(controller_->configRead(msix, 1), pci::CAPABILITY_MSIX);
    controller_->configWrite(msix + 2, 2, pci::Msix::ENABLE);
    controller_->barWrite(0, MSIX_TABLE + 12, 4, 0);
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

  std::optional<Trb> nextEvent() {
    Trb event;
    std::memcpy(&event, memory_.translate(EVENTS + 16ull * eventIndex_, 16), 16);
    if ((event.control & TRB_CYCLE) != eventCycle_) return std::nullopt;
    if (++eventIndex_ == EVENT_TRBS) {
      eventIndex_ = 0;
      eventCycle_ ^= 1;
    }
    write64(RUNTIME_BASE + INTERRUPTER0 + ERDP, (EVENTS + 16ull * eventIndex_) | ERDP_EHB);
    return event;
  }

  Trb expectEvent(uint32_t type) {
    std::optional<Trb> event = nextEvent();
    EXPECT_TRUE(event.has_value()) << "no event of type " << type;
    if (!event) return {};
    EXPECT_EQ(trbType(*event), type);
    return *event;
  }

  // A command and its completion: returns the completion event.
  Trb command(Trb trb) {
    produce(commands_, trb);
    write32(DOORBELL_BASE, 0);
    return expectEvent(COMMAND_COMPLETION);
  }

  uint8_t* context(uint64_t base, int index) { return memory_.translate(base + 32ull * index, 32); }
  static uint32_t completion(const Trb& event) { return event.status >> 24; }

  // Port reset, Enable Slot, Address Device: the tablet at address 1.
  void addressTablet() {
    startController();
    Trb change = expectEvent(PORT_STATUS_CHANGE);
    EXPECT_EQ(change.parameter >> 24, 1u);
    write32(CAP_LENGTH + PORT_REGISTERS, PORT_PP | PORT_PR | PORT_CSC);
    expectEvent(PORT_STATUS_CHANGE);
    ASSERT_TRUE(portsc(1) & PORT_PED);
    Trb enabled = command({0, 0, ENABLE_SLOT << 10});
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
    ASSERT_EQ(completion(command({INPUT, 0, ADDRESS_DEVICE << 10 | 1u << 24})), SUCCESS);
    uint32_t state;
    std::memcpy(&state, context(OUTPUT, 0) + 12, 4);
    EXPECT_EQ(state >> 27, uint32_t{SLOT_ADDRESSED});
    EXPECT_EQ(state & 0xff, 1u);
  }

  // A control transfer on EP0; returns the events it produced.
  std::vector<Trb> control(uint8_t type, uint8_t request, uint16_t value, uint16_t index, uint16_t length) {
    uint64_t setup = uint64_t{type} | uint64_t{request} << 8 | uint64_t{value} << 16 | uint64_t{index} << 32 |
                     uint64_t{length} << 48;
    bool in = type & 0x80;
    produce(ep0_, {setup, 8, SETUP_STAGE << 10 | TRB_IDT | (length ? (in ? 3u : 2u) : 0u) << 16});
    if (length) produce(ep0_, {BUFFER, length, DATA_STAGE << 10 | TRB_ISP | (in ? TRB_DIR_IN : 0)});
    produce(ep0_, {0, 0, STATUS_STAGE << 10 | TRB_IOC | (in && length ? 0 : TRB_DIR_IN)});
    write32(DOORBELL_BASE + 4, 1);
    std::vector<Trb> events;
    while (auto event = nextEvent()) events.push_back(*event);
    return events;
  }

  void configureTablet() {
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

  void pointer(uint8_t buttons, uint16_t x, uint16_t y) {
    PointerEvent event{buttons, x, y, 800, 600};
    controller_->pointer(std::span(&event, 1));
  }

  GuestMemory memory_{RAM};
  StateSegment segment_ = StateSegment::create();
  std::optional<XhciController> controller_;
  Producer commands_{COMMANDS};
  Producer ep0_{EP0_RING};
  Producer ep1_{EP1_RING};
  uint32_t eventIndex_ = 0;
  uint32_t eventCycle_ = 1;
  int interrupts_ = 0;
};

TEST_F(XhciTest, CapabilitiesDescribeTheControllerAndItsPorts) {
  EXPECT_EQ(read32(0) & 0xff, CAP_LENGTH);
  EXPECT_EQ(read32(0) >> 16, 0x0100u);
  EXPECT_EQ(read32(HCSPARAMS1), MAX_SLOTS | 1u << 8 | uint32_t{PORTS} << 24);
  EXPECT_EQ(read32(DBOFF), DOORBELL_BASE);
  EXPECT_EQ(read32(RTSOFF), RUNTIME_BASE);
  // Supported Protocol: USB 2.0 on ports 1-4, USB 3 on 5-8.
  uint64_t cap = (read32(HCCPARAMS1) >> 16) * 4;
  EXPECT_EQ(read32(cap) & 0xff, CAP_SUPPORTED_PROTOCOL);
  EXPECT_EQ(read32(cap) >> 24, 2u);
  EXPECT_EQ(read32(cap + 8), 1u | 4u << 8);
  uint64_t next = cap + 4 * ((read32(cap) >> 8) & 0xff);
  EXPECT_EQ(read32(next) >> 24, 3u);
  EXPECT_EQ(read32(next + 8), 5u | 4u << 8);
  EXPECT_EQ((read32(next) >> 8) & 0xff, 0u);
  // The tablet on port 1, high speed, waiting for a reset; the others empty.
  EXPECT_EQ(portsc(1) & (PORT_CCS | PORT_PED | PORT_PP), PORT_CCS | PORT_PP);
  EXPECT_EQ((portsc(1) >> PORT_SPEED_SHIFT) & 0xf, SPEED_HIGH);
  EXPECT_EQ(portsc(2) & PORT_CCS, 0u);
  EXPECT_EQ(portsc(5) & PORT_CCS, 0u);
}

TEST_F(XhciTest, EnumerationDescriptorsAndReportsThatFollowThePointer) {
  addressTablet();
  int interruptsBefore = interrupts_;
  EXPECT_GT(interruptsBefore, 0);

  // GET_DESCRIPTOR(device): 18 bytes, the whole TD completes on its status stage.
  auto events = control(0x80, 0x06, 0x0100, 0, 18);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(completion(events[0]), SUCCESS);
  const uint8_t* buffer = memory_.translate(BUFFER, 64);
  EXPECT_EQ(buffer[0], 18);
  EXPECT_EQ(buffer[1], 1);
  EXPECT_EQ(buffer[7], 64);  // bMaxPacketSize0.

  // GET_DESCRIPTOR(configuration) with room for 255: a short packet on the
  // data stage (34 bytes), then the status stage.
  events = control(0x80, 0x06, 0x0200, 0, 255);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(completion(events[0]), SHORT_PACKET);
  EXPECT_EQ(events[0].status & 0xffffff, 255u - 34u);
  EXPECT_EQ(completion(events[1]), SUCCESS);
  EXPECT_EQ(buffer[9 + 5], 3);  // Interface class: HID.

  // The HID report descriptor, as usbhid asks for it.
  events = control(0x81, 0x06, 0x2200, 0, 200);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(200u - (events[0].status & 0xffffff), UsbTablet::reportDescriptor().size());

  configureTablet();

  // A request the tablet does not know: STALL, the endpoint halts until
  // the driver resets it and moves past the TD.
  events = control(0x21, 0x09, 0x0200, 0, 0);  // SET_REPORT (output)
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(completion(events[0]), STALL);
  uint32_t ep0;
  std::memcpy(&ep0, context(OUTPUT, 1), 4);
  EXPECT_EQ(ep0 & 7, uint32_t{EP_HALTED});
  ASSERT_EQ(completion(command({0, 0, RESET_ENDPOINT << 10 | 1u << 16 | 1u << 24})), SUCCESS);
  uint64_t past = (EP0_RING + 16ull * ep0_.index) | ep0_.cycle;
  ASSERT_EQ(completion(command({past, 0, SET_TR_DEQUEUE << 10 | 1u << 16 | 1u << 24})), SUCCESS);
  events = control(0x80, 0x08, 0, 0, 1);  // GET_CONFIGURATION
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(completion(events[0]), SUCCESS);
  EXPECT_EQ(buffer[0], 1);

  // The interrupt transfer waits for the pointer; then carries its report.
  produce(ep1_, {BUFFER + 0x100, 8, NORMAL << 10 | TRB_IOC | TRB_ISP});
  write32(DOORBELL_BASE + 4, UsbTablet::INTERRUPT_DCI);
  EXPECT_FALSE(nextEvent().has_value());
  pointer(1, 400, 300);
  Trb report = expectEvent(TRANSFER_EVENT);
  EXPECT_EQ(completion(report), SHORT_PACKET);
  EXPECT_EQ(report.status & 0xffffff, 2u);
  EXPECT_EQ((report.control >> 16) & 0x1f, UsbTablet::INTERRUPT_DCI);
  const uint8_t* bytes = memory_.translate(BUFFER + 0x100, 6);
  EXPECT_EQ(bytes[0], 1);                                  // Left button.
  EXPECT_EQ(bytes[1] | bytes[2] << 8, 400 * 32767 / 799);  // X scaled to 0-32767.
  EXPECT_EQ(bytes[3] | bytes[4] << 8, 300 * 32767 / 599);
  EXPECT_GT(interrupts_, interruptsBefore);

  // A click while the guest has no transfer queued is not lost: press and
  // release wait as two reports; motion alone joins the last one.
  pointer(0, 10, 10);
  pointer(0, 20, 20);
  pointer(4, 20, 20);
  for (uint8_t expected : {0, 2}) {
    produce(ep1_, {BUFFER + 0x100, 8, NORMAL << 10 | TRB_IOC | TRB_ISP});
    write32(DOORBELL_BASE + 4, UsbTablet::INTERRUPT_DCI);
    expectEvent(TRANSFER_EVENT);
    EXPECT_EQ(bytes[0], expected);
    EXPECT_EQ(bytes[1] | bytes[2] << 8, 20 * 32767 / 799);
  }
}

TEST_F(XhciTest, ARestartedServerCarriesOnWithoutRepeatingAnEvent) {
  addressTablet();
  configureTablet();
  produce(ep1_, {BUFFER + 0x100, 8, NORMAL << 10 | TRB_IOC | TRB_ISP});
  write32(DOORBELL_BASE + 4, UsbTablet::INTERRUPT_DCI);
  pointer(0, 100, 100);  // Queued, waiting for the next transfer after this one.
  expectEvent(TRANSFER_EVENT);
  pointer(1, 200, 100);

  // Killed here: the successor maps the same state.
  restart();
  EXPECT_FALSE(nextEvent().has_value());
  produce(ep1_, {BUFFER + 0x100, 8, NORMAL << 10 | TRB_IOC | TRB_ISP});
  write32(DOORBELL_BASE + 4, UsbTablet::INTERRUPT_DCI);
  expectEvent(TRANSFER_EVENT);
  const uint8_t* bytes = memory_.translate(BUFFER + 0x100, 6);
  EXPECT_EQ(bytes[0], 1);
  EXPECT_EQ(bytes[1] | bytes[2] << 8, 200 * 32767 / 799);
  EXPECT_FALSE(nextEvent().has_value());
  // Commands go on from where the predecessor's ring stopped.
  EXPECT_EQ(completion(command({0, 0, NO_OP_COMMAND << 10})), SUCCESS);
}

TEST_F(XhciTest, HostileRingsEndTheWalkNotTheServer) {
  startController();
  expectEvent(PORT_STATUS_CHANGE);
  // A command ring whose link points at itself, cycle bit valid forever.
  putTrb(COMMANDS, {COMMANDS, 0, LINK << 10 | 1});
  write32(DOORBELL_BASE, 0);
  EXPECT_FALSE(nextEvent().has_value());
  EXPECT_EQ(read32(CAP_LENGTH + USBSTS) & STS_HSE, 0u);
  // A link out of RAM: the controller stops with a host system error.
  putTrb(COMMANDS, {RAM + 0x1000, 0, LINK << 10 | 1});
  write32(DOORBELL_BASE, 0);
  EXPECT_NE(read32(CAP_LENGTH + USBSTS) & STS_HSE, 0u);
  EXPECT_NE(read32(CAP_LENGTH + USBSTS) & STS_HCH, 0u);
}

TEST_F(XhciTest, BadContextsAndEventRingsAreRefusedNotFollowed) {
  startController();
  expectEvent(PORT_STATUS_CHANGE);
  // Address Device before the port is reset: nobody answers.
  ASSERT_EQ(completion(command({0, 0, ENABLE_SLOT << 10})), SUCCESS);
  uint64_t output = OUTPUT;
  std::memcpy(memory_.translate(DCBAA + 8, 8), &output, 8);
  std::memset(memory_.translate(INPUT, 33 * 32), 0, 33 * 32);
  uint32_t add = 3, slot1 = 1u << 16;
  std::memcpy(context(INPUT, 0) + 4, &add, 4);
  std::memcpy(context(INPUT, 1) + 4, &slot1, 4);
  EXPECT_EQ(completion(command({INPUT, 0, ADDRESS_DEVICE << 10 | 1u << 24})), USB_TRANSACTION_ERROR);
  // An input context outside RAM, a slot never enabled, a port that does not exist.
  EXPECT_EQ(completion(command({RAM - 16, 0, ADDRESS_DEVICE << 10 | 1u << 24})), PARAMETER_ERROR);
  EXPECT_EQ(completion(command({INPUT, 0, ADDRESS_DEVICE << 10 | 5u << 24})), SLOT_NOT_ENABLED);
  slot1 = 9u << 16;
  std::memcpy(context(INPUT, 1) + 4, &slot1, 4);
  EXPECT_EQ(completion(command({INPUT, 0, ADDRESS_DEVICE << 10 | 1u << 24})), PARAMETER_ERROR);
  EXPECT_EQ(completion(command({0, 0, 63u << 10})), TRB_ERROR);
  // An event ring table outside RAM: no events at all, no crash.
  write64(RUNTIME_BASE + INTERRUPTER0 + ERSTBA, RAM + 0x100000);
  produce(commands_, {0, 0, NO_OP_COMMAND << 10});
  write32(DOORBELL_BASE, 0);
  EXPECT_FALSE(nextEvent().has_value());
}

}  // namespace
}  // namespace cellvisor
