// The xHCI controller and its tablet driven in-process the way an xHCI
// driver does (Linux's order of steps), and by a hostile one: rings that
// loop, pointers outside RAM, requests the device does not know.
#include <capnp/message.h>
#include <capnp/serialize.h>
#include <gtest/gtest.h>
#include <uv.h>

#include <cstring>
#include <optional>
#include <vector>

#include "base/guest-memory.h"
#include "device.capnp.h"
#include "proto/state-segment.h"
#include "servers/xhci/pointer-link.h"
#include "servers/xhci/xhci-controller.h"
#include "tests/harness/xhci-driver.h"

namespace cellvisor {
namespace {

using namespace xhci;

constexpr uint64_t RAM = 16 << 20;
using Driver = testing::XhciDriver;

// The controller in-process, driven by the test driver.
class XhciTest : public ::testing::Test {
 protected:
  void SetUp() override {
    restart();
    // MSI-X on, its one vector unmasked.
    uint16_t msix = static_cast<uint16_t>(controller_->configRead(pci::CAPABILITIES, 1));
    ASSERT_EQ(controller_->configRead(msix, 1), pci::CAPABILITY_MSIX);
    controller_->configWrite(msix + 2, 2, pci::Msix::ENABLE);
    controller_->barWrite(0, MSIX_TABLE + 12, 4, 0);
  }

  // A new controller instance on the same state segment and memory (a
  // restarted server).
  void restart() {
    controller_.reset();
    controller_.emplace(memory_, segment_.header(), segment_.body<XhciState>(), true);
    controller_->start([this](uint16_t) { ++interrupts_; });
  }

  void pointer(uint8_t buttons, uint16_t x, uint16_t y) {
    PointerEvent event{buttons, x, y, 800, 600};
    controller_->pointer(std::span(&event, 1));
  }
  static uint32_t completion(const Trb& event) { return Driver::completion(event); }
  uint32_t read32(uint64_t offset) { return driver_.read32(offset); }
  uint32_t portsc(int port) { return driver_.portsc(port); }

  GuestMemory memory_{RAM};
  StateSegment segment_ = StateSegment::create();
  std::optional<XhciController> controller_;
  Driver driver_{memory_,
                 [this](uint64_t offset, uint8_t size) { return controller_->barRead(0, offset, size); },
                 [this](uint64_t offset, uint8_t size, uint64_t value) {
                   controller_->barWrite(0, offset, size, value);
                 }};
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
  driver_.addressTablet();
  int interruptsBefore = interrupts_;
  EXPECT_GT(interruptsBefore, 0);

  // GET_DESCRIPTOR(device): 18 bytes, the whole TD completes on its status stage.
  auto events = driver_.control(0x80, 0x06, 0x0100, 0, 18);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(completion(events[0]), SUCCESS);
  const uint8_t* buffer = memory_.translate(Driver::BUFFER, 64);
  EXPECT_EQ(buffer[0], 18);
  EXPECT_EQ(buffer[1], 1);
  EXPECT_EQ(buffer[7], 64);  // bMaxPacketSize0.

  // GET_DESCRIPTOR(configuration) with room for 255: a short packet on the
  // data stage (34 bytes), then the status stage.
  events = driver_.control(0x80, 0x06, 0x0200, 0, 255);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(completion(events[0]), SHORT_PACKET);
  EXPECT_EQ(events[0].status & 0xffffff, 255u - 34u);
  EXPECT_EQ(completion(events[1]), SUCCESS);
  EXPECT_EQ(buffer[9 + 5], 3);  // Interface class: HID.

  // The HID report descriptor, as usbhid asks for it.
  events = driver_.control(0x81, 0x06, 0x2200, 0, 200);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(200u - (events[0].status & 0xffffff), UsbTablet::reportDescriptor().size());

  driver_.configureTablet();

  // A request the tablet does not know: STALL, the endpoint halts until
  // the driver resets it and moves past the TD.
  events = driver_.control(0x21, 0x09, 0x0200, 0, 0);  // SET_REPORT (output)
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(completion(events[0]), STALL);
  uint32_t ep0;
  std::memcpy(&ep0, driver_.context(Driver::OUTPUT, 1), 4);
  EXPECT_EQ(ep0 & 7, uint32_t{EP_HALTED});
  ASSERT_EQ(completion(driver_.command({0, 0, RESET_ENDPOINT << 10 | 1u << 16 | 1u << 24})), SUCCESS);
  uint64_t past = (Driver::EP0_RING + 16ull * driver_.ep0().index) | driver_.ep0().cycle;
  ASSERT_EQ(completion(driver_.command({past, 0, SET_TR_DEQUEUE << 10 | 1u << 16 | 1u << 24})), SUCCESS);
  events = driver_.control(0x80, 0x08, 0, 0, 1);  // GET_CONFIGURATION
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(completion(events[0]), SUCCESS);
  EXPECT_EQ(buffer[0], 1);

  // The interrupt transfer waits for the pointer; then carries its report.
  driver_.produce(driver_.ep1(), {Driver::BUFFER + 0x100, 8, NORMAL << 10 | TRB_IOC | TRB_ISP});
  driver_.write32(DOORBELL_BASE + 4, UsbTablet::INTERRUPT_DCI);
  EXPECT_FALSE(driver_.nextEvent().has_value());
  pointer(1, 400, 300);
  Trb report = driver_.expectEvent(TRANSFER_EVENT);
  EXPECT_EQ(completion(report), SHORT_PACKET);
  EXPECT_EQ(report.status & 0xffffff, 2u);
  EXPECT_EQ((report.control >> 16) & 0x1f, UsbTablet::INTERRUPT_DCI);
  const uint8_t* bytes = memory_.translate(Driver::BUFFER + 0x100, 6);
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
    driver_.produce(driver_.ep1(), {Driver::BUFFER + 0x100, 8, NORMAL << 10 | TRB_IOC | TRB_ISP});
    driver_.write32(DOORBELL_BASE + 4, UsbTablet::INTERRUPT_DCI);
    driver_.expectEvent(TRANSFER_EVENT);
    EXPECT_EQ(bytes[0], expected);
    EXPECT_EQ(bytes[1] | bytes[2] << 8, 20 * 32767 / 799);
  }
}

// A transfer the driver cancelled and turned into No-Ops (Linux's
// td_to_noop) completes at once and takes no report from the tablet.
TEST_F(XhciTest, ANoOpTdCompletesWithoutTakingAReport) {
  driver_.addressTablet();
  driver_.configureTablet();
  pointer(1, 100, 100);
  driver_.produce(driver_.ep1(), {0, 0, NO_OP << 10 | TRB_IOC});
  driver_.write32(DOORBELL_BASE + 4, UsbTablet::INTERRUPT_DCI);
  Trb noop = driver_.expectEvent(TRANSFER_EVENT);
  EXPECT_EQ(completion(noop), SUCCESS);
  driver_.queueReportTransfer();
  driver_.expectEvent(TRANSFER_EVENT);
  EXPECT_EQ(driver_.report()[0], 1) << "the report waited for a transfer with room for it";
}

// One interrupt per pass of the driver's handler: none while it is busy
// (EHB), one more when its ERDP write leaves events behind; with MSI-X the
// message clears IP.
TEST_F(XhciTest, InterruptsFollowTheHandlersBusyFlag) {
  driver_.addressTablet();
  driver_.configureTablet();
  while (driver_.nextEvent()) {
  }
  driver_.queueReportTransfer();
  driver_.queueReportTransfer();
  int before = interrupts_;
  pointer(1, 10, 10);
  EXPECT_EQ(interrupts_, before + 1);
  EXPECT_EQ(read32(RUNTIME_BASE + INTERRUPTER0 + IMAN) & IMAN_IP, 0u) << "sent as an MSI-X message";
  pointer(0, 10, 10);
  EXPECT_EQ(interrupts_, before + 1) << "the second report came while the handler was busy";
  EXPECT_NE(read32(RUNTIME_BASE + INTERRUPTER0 + IMAN) & IMAN_IP, 0u) << "held pending";
  driver_.expectEvent(TRANSFER_EVENT);  // Its ERDP write leaves one event behind...
  EXPECT_EQ(interrupts_, before + 2);   // ...which is announced again.
  driver_.expectEvent(TRANSFER_EVENT);
  EXPECT_EQ(interrupts_, before + 2);
}

// A port change that finds the event ring full is reported once the
// driver frees room, not dropped.
TEST_F(XhciTest, APortChangeWaitsForRoomInTheEventRing) {
  driver_.startController();
  // Fill the ring: the first port change, then No-Ops while two slots are
  // free (a command waits for room for two events), then one more change.
  driver_.produce(driver_.commands(), {0, 0, NO_OP_COMMAND << 10});
  for (int i = 0; i < 20; ++i) driver_.produce(driver_.commands(), {0, 0, NO_OP_COMMAND << 10});
  driver_.write32(DOORBELL_BASE, 0);
  driver_.write32(CAP_LENGTH + PORT_REGISTERS + 16 * 4, PORT_PP | PORT_WPR);  // Port 5 (USB 3): warm reset.
  driver_.write32(CAP_LENGTH + PORT_REGISTERS + 16 * 5, PORT_PP | PORT_WPR);  // Port 6: the ring is full.
  std::vector<uint32_t> changed;
  for (int i = 0; i < 64; ++i) {
    std::optional<Trb> event = driver_.nextEvent();
    if (!event) break;
    if (trbType(*event) == PORT_STATUS_CHANGE)
      changed.push_back(static_cast<uint32_t>(event->parameter >> 24));
  }
  EXPECT_EQ(changed, (std::vector<uint32_t>{1, 5, 6}));
}

// Linux 6.1's steps with a USB 2 tablet, in the order QEMU's xHCI trace
// shows them (usb_xhci_* and usb_desc_* events, the test kernel on QEMU's
// qemu-xhci and usb-tablet): Address Device with BSR, a 64-byte device
// descriptor at address 0, a second port reset and Reset Device (refused in
// Default, which Linux takes as nothing to do), Address Device, the
// descriptors and strings, Configure Endpoint and SET_CONFIGURATION, the
// endpoint reset usb_set_configuration asks for (Stop Endpoint, then drop
// and add), interrupt transfers, and Stop Endpoint with a transfer waiting
// when the input device is closed, then Set TR Dequeue Pointer past it.
TEST_F(XhciTest, LinuxsStepsInTheOrderQemusTraceShows) {
  driver_.addressTablet(true);
  auto events = driver_.control(0x80, 0x06, 0x0100, 0, 64);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(completion(events[0]), SHORT_PACKET);
  EXPECT_EQ(events[0].status & 0xffffff, 64u - 18u);
  driver_.write32(CAP_LENGTH + PORT_REGISTERS, PORT_PP | PORT_PR);
  driver_.expectEvent(PORT_STATUS_CHANGE);
  EXPECT_EQ(completion(driver_.command({0, 0, RESET_DEVICE << 10 | 1u << 24})), CONTEXT_STATE_ERROR);
  ASSERT_EQ(completion(driver_.command({Driver::INPUT, 0, ADDRESS_DEVICE << 10 | 1u << 24})), SUCCESS);
  uint32_t state;
  std::memcpy(&state, driver_.context(Driver::OUTPUT, 0) + 12, 4);
  EXPECT_EQ(state, uint32_t{SLOT_ADDRESSED} << 27 | 1);
  for (auto [value, length] : std::initializer_list<std::pair<uint16_t, uint16_t>>{{0x0100, 18},
                                                                                   {0x0200, 9},
                                                                                   {0x0200, 34},
                                                                                   {0x0300, 255},
                                                                                   {0x0303, 255},
                                                                                   {0x0301, 255},
                                                                                   {0x0302, 255}}) {
    events = driver_.control(0x80, 0x06, value, value >> 8 == 3 && (value & 0xff) ? 0x0409 : 0, length);
    ASSERT_FALSE(events.empty());
    EXPECT_EQ(completion(events.back()), SUCCESS) << std::hex << value;
  }
  driver_.configureTablet();
  // The endpoint reset: Stop Endpoint, then Configure Endpoint dropping and
  // adding EP 1 IN with a dequeue pointer where the ring stands.
  uint8_t dci = UsbTablet::INTERRUPT_DCI;
  ASSERT_EQ(completion(driver_.command({0, 0, STOP_ENDPOINT << 10 | uint32_t{dci} << 16 | 1u << 24})),
            SUCCESS);
  uint32_t drop = 1u << dci, add = 1u | 1u << dci;
  std::memcpy(driver_.context(Driver::INPUT, 0), &drop, 4);
  std::memcpy(driver_.context(Driver::INPUT, 0) + 4, &add, 4);
  uint64_t dequeue = (Driver::EP1_RING + 16ull * driver_.ep1().index) | driver_.ep1().cycle;
  std::memcpy(driver_.context(Driver::INPUT, 1 + dci) + 8, &dequeue, 8);
  ASSERT_EQ(completion(driver_.command({Driver::INPUT, 0, CONFIGURE_ENDPOINT << 10 | 1u << 24})), SUCCESS);
  driver_.queueReportTransfer();
  pointer(1, 400, 300);
  EXPECT_EQ(completion(driver_.expectEvent(TRANSFER_EVENT)), SHORT_PACKET);
  // The input device closed with a transfer queued.
  driver_.queueReportTransfer();
  uint64_t waiting =
      Driver::EP1_RING + 16ull * ((driver_.ep1().index + Driver::RING_TRBS - 2) % (Driver::RING_TRBS - 1));
  driver_.produce(driver_.commands(), {0, 0, STOP_ENDPOINT << 10 | uint32_t{dci} << 16 | 1u << 24});
  driver_.write32(DOORBELL_BASE, 0);
  Trb stopped = driver_.expectEvent(TRANSFER_EVENT);
  EXPECT_EQ(completion(stopped), STOPPED);
  EXPECT_EQ(stopped.parameter, waiting);
  EXPECT_EQ(completion(driver_.expectEvent(COMMAND_COMPLETION)), SUCCESS);
  uint64_t hardware;
  std::memcpy(&hardware, driver_.context(Driver::OUTPUT, dci) + 8, 8);
  EXPECT_EQ(hardware & ~0xfull, waiting) << "the driver finds the stopped TD in the output context";
  uint64_t past = (Driver::EP1_RING + 16ull * driver_.ep1().index) | driver_.ep1().cycle;
  EXPECT_EQ(completion(driver_.command({past, 0, SET_TR_DEQUEUE << 10 | uint32_t{dci} << 16 | 1u << 24})),
            SUCCESS);
  // Opened again: the next transfer carries the next report.
  driver_.queueReportTransfer();
  pointer(0, 400, 300);
  driver_.expectEvent(TRANSFER_EVENT);
  EXPECT_EQ(driver_.report()[0], 0);
}

// The display's link as the tablet's server reads it: a frame that does
// not parse is skipped and the pointer after it still arrives; paused, the
// server leaves the link alone until it resumes.
TEST_F(XhciTest, ThePointerLinkSkipsJunkAndWaitsWhilePaused) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  InputSegment link = InputSegment::create();
  DoorbellPipe pipe = DoorbellPipe::create();
  RingWriter writer = link.writer();
  auto pointerEvent = [&](uint16_t x) {
    capnp::MallocMessageBuilder builder;
    auto event = builder.initRoot<proto::InputEvent>().initPointer();
    event.setButtons(1);
    event.setX(x);
    event.setY(0);
    event.setWidth(800);
    event.setHeight(600);
    auto words = capnp::messageToFlatArray(builder);
    ASSERT_TRUE(writer.tryWrite(
        {reinterpret_cast<const uint8_t*>(words.begin()), words.size() * sizeof(capnp::word)}));
  };
  {
    PointerLink reader(&loop, link, pipe.readEnd.get(), *controller_);
    const uint8_t junk[] = {0xff, 0xff, 0xff, 0x7f, 1, 2, 3, 4};
    ASSERT_TRUE(writer.tryWrite(junk));
    pointerEvent(400);
    reader.drain();
    ASSERT_EQ(controller_->committed().tablet.queued, 1u);
    EXPECT_EQ(controller_->committed().tablet.queue[0].x, 400 * 32767 / 799);
    controller_->pause();
    pointerEvent(10);
    reader.drain();
    EXPECT_EQ(controller_->committed().tablet.queue[0].x, 400 * 32767 / 799)
        << "paused: the link is not read";
    controller_->resume();
    reader.drain();
    EXPECT_EQ(controller_->committed().tablet.queue[0].x, 10 * 32767 / 799);
  }
  uv_run(&loop, UV_RUN_NOWAIT);  // The reader's timer closes.
  uv_loop_close(&loop);
}

TEST_F(XhciTest, ARestartedServerCarriesOnWithoutRepeatingAnEvent) {
  driver_.addressTablet();
  driver_.configureTablet();
  driver_.produce(driver_.ep1(), {Driver::BUFFER + 0x100, 8, NORMAL << 10 | TRB_IOC | TRB_ISP});
  driver_.write32(DOORBELL_BASE + 4, UsbTablet::INTERRUPT_DCI);
  pointer(0, 100, 100);  // Queued, waiting for the next transfer after this one.
  driver_.expectEvent(TRANSFER_EVENT);
  pointer(1, 200, 100);

  // Killed here: the successor maps the same state.
  restart();
  EXPECT_FALSE(driver_.nextEvent().has_value());
  driver_.produce(driver_.ep1(), {Driver::BUFFER + 0x100, 8, NORMAL << 10 | TRB_IOC | TRB_ISP});
  driver_.write32(DOORBELL_BASE + 4, UsbTablet::INTERRUPT_DCI);
  driver_.expectEvent(TRANSFER_EVENT);
  const uint8_t* bytes = memory_.translate(Driver::BUFFER + 0x100, 6);
  EXPECT_EQ(bytes[0], 1);
  EXPECT_EQ(bytes[1] | bytes[2] << 8, 200 * 32767 / 799);
  EXPECT_FALSE(driver_.nextEvent().has_value());
  // Commands go on from where the predecessor's ring stopped.
  EXPECT_EQ(completion(driver_.command({0, 0, NO_OP_COMMAND << 10})), SUCCESS);
}

TEST_F(XhciTest, HostileRingsEndTheWalkNotTheServer) {
  driver_.startController();
  driver_.expectEvent(PORT_STATUS_CHANGE);
  // A command ring whose link points at itself, cycle bit valid forever.
  driver_.putTrb(Driver::COMMANDS, {Driver::COMMANDS, 0, LINK << 10 | 1});
  driver_.write32(DOORBELL_BASE, 0);
  EXPECT_FALSE(driver_.nextEvent().has_value());
  EXPECT_EQ(read32(CAP_LENGTH + USBSTS) & STS_HSE, 0u);
  // A link out of RAM: the controller stops with a host system error.
  driver_.putTrb(Driver::COMMANDS, {RAM + 0x1000, 0, LINK << 10 | 1});
  driver_.write32(DOORBELL_BASE, 0);
  EXPECT_NE(read32(CAP_LENGTH + USBSTS) & STS_HSE, 0u);
  EXPECT_NE(read32(CAP_LENGTH + USBSTS) & STS_HCH, 0u);
}

TEST_F(XhciTest, BadContextsAndEventRingsAreRefusedNotFollowed) {
  driver_.startController();
  driver_.expectEvent(PORT_STATUS_CHANGE);
  // Address Device before the port is reset: nobody answers.
  ASSERT_EQ(completion(driver_.command({0, 0, ENABLE_SLOT << 10})), SUCCESS);
  uint64_t output = Driver::OUTPUT;
  std::memcpy(memory_.translate(Driver::DCBAA + 8, 8), &output, 8);
  std::memset(memory_.translate(Driver::INPUT, 33 * 32), 0, 33 * 32);
  uint32_t add = 3, slot1 = 1u << 16;
  std::memcpy(driver_.context(Driver::INPUT, 0) + 4, &add, 4);
  std::memcpy(driver_.context(Driver::INPUT, 1) + 4, &slot1, 4);
  EXPECT_EQ(completion(driver_.command({Driver::INPUT, 0, ADDRESS_DEVICE << 10 | 1u << 24})),
            USB_TRANSACTION_ERROR);
  // An input context outside RAM, a slot never enabled, a port that does not exist.
  EXPECT_EQ(completion(driver_.command({RAM - 16, 0, ADDRESS_DEVICE << 10 | 1u << 24})), PARAMETER_ERROR);
  EXPECT_EQ(completion(driver_.command({Driver::INPUT, 0, ADDRESS_DEVICE << 10 | 5u << 24})),
            SLOT_NOT_ENABLED);
  slot1 = 9u << 16;
  std::memcpy(driver_.context(Driver::INPUT, 1) + 4, &slot1, 4);
  EXPECT_EQ(completion(driver_.command({Driver::INPUT, 0, ADDRESS_DEVICE << 10 | 1u << 24})),
            PARAMETER_ERROR);
  EXPECT_EQ(completion(driver_.command({0, 0, 63u << 10})), TRB_ERROR);
  // An event ring table outside RAM: no events at all, no crash.
  driver_.write64(RUNTIME_BASE + INTERRUPTER0 + ERSTBA, RAM + 0x100000);
  driver_.produce(driver_.commands(), {0, 0, NO_OP_COMMAND << 10});
  driver_.write32(DOORBELL_BASE, 0);
  EXPECT_FALSE(driver_.nextEvent().has_value());
}

}  // namespace
}  // namespace cellvisor
