#include "servers/xhci/xhci-controller.h"

#include <atomic>
#include <cstddef>
#include <cstring>

#include "base/guest-memory.h"
#include "base/little-endian.h"

namespace cellvisor {

using namespace xhci;

XhciController::XhciController(GuestMemory& memory, StateHeader& header, XhciState& state, bool tablet)
    : memory_(memory), header_(header), state_(state), tablet_(tablet) {
  bool restored = claimState(header_, STATE_MAGIC, STATE_LAYOUT_VERSION) == StateOrigin::RESTORED;
  if (!restored) std::memset(&state_, 0, sizeof(state_));
  state_.committed &= 1;
  working_ = state_.committed;
  config_.emplace(std::span<uint8_t>(state_.pciConfig),
                  restored ? pci::ConfigSpace::Contents::RESTORED : pci::ConfigSpace::Contents::FRESH);
  // Class 0C/03/30: a USB xHCI controller, what every xHCI driver binds to.
  config_->setIdentity({.vendor = VENDOR,
                        .device = DEVICE,
                        .revision = 1,
                        .progIf = 0x30,
                        .subclass = 0x03,
                        .classCode = 0x0c,
                        .subsystemVendor = VENDOR,
                        .subsystem = DEVICE});
  config_->setBar(0, {pci::BarKind::MEMORY64, BAR0_SIZE, false}, 0);
  // Serial Bus Release Number 3.0 and the frame length adjustment's
  // default, which drivers read from these PCI registers.
  config_->setByte(0x60, 0x30);
  config_->setByte(0x61, 0x20, 0x3f);
  msix_.emplace(*config_, std::span<pci::MsixEntry>(state_.msix, VECTORS),
                std::span<uint64_t>(state_.msixPending));
  msix_->addCapability(0, MSIX_TABLE, MSIX_PBA);
  if (restored) return;
  msix_->reset();
  resetController();
  state_.copies[1] = state_.copies[0];
  publishState(header_, STATE_MAGIC, STATE_LAYOUT_VERSION);
}

template <typename Work>
void XhciController::transaction(Work&& work) {
  uint32_t committed = std::atomic_ref<uint32_t>(state_.committed).load(std::memory_order_acquire) & 1;
  working_ = committed ^ 1;
  state_.copies[working_] = state_.copies[committed];
  work();
  // With MSI-X the message clears IP as it goes (xHCI 4.17.5). Should this
  // instance die before sending it, its successor sends one at start for
  // the events still waiting.
  if (interruptWanted_ && (msix_->control() & pci::Msix::ENABLE)) s().iman &= ~IMAN_IP;
  std::atomic_ref<uint32_t>(state_.committed).store(working_, std::memory_order_release);
  if (interruptWanted_) {
    interruptWanted_ = false;
    msix_->raise(0);
  }
}

FunctionLayout XhciController::layout() const {
  FunctionLayout layout;
  layout.bars.push_back({0, BAR0_SIZE, pci::BarKind::MEMORY64});
  // Doorbells are register writes: a tablet rings a few hundred times a
  // second at most, and each ring is work done before the reply.
  layout.doorbellCount = 0;
  layout.msixVectors = VECTORS;
  return layout;
}

void XhciController::start(std::function<void(uint16_t)> signal) {
  msix_->setSignal(std::move(signal));
  // A predecessor may have died between taking work and committing it, or
  // between committing and raising the interrupt: redo what is runnable and
  // say again that events wait (a spare interrupt costs the driver a look).
  transaction([&] { runEverything(); });
  bool waiting = s().eventSegmentTrbs != 0 && eventRoom() + 1 < s().eventSegmentTrbs;
  if (waiting && (s().iman & IMAN_IE) && (s().usbcmd & CMD_INTE)) msix_->raise(0);
}

FailureNotice XhciController::failureNotice() const {
  // Host System Error, the controller halted: what an xHCI driver checks
  // when the controller stops answering (Linux declares it dead).
  FailureNotice notice{};
  notice.vectorOffset = FailureNotice::NO_VECTOR;
  notice.readCount = 1;
  notice.reads[0] = {0, 4, 0, static_cast<uint32_t>(CAP_LENGTH + USBSTS), 0, 0, STS_HCH | STS_HSE};
  return notice;
}

uint32_t XhciController::configRead(uint16_t offset, uint8_t size) {
  if (offset >= sizeof(state_.pciConfig)) return 0;
  return config_->read(offset, size);
}

std::vector<MsixUpdate> XhciController::configWrite(uint16_t offset, uint8_t size, uint32_t value) {
  uint16_t before = msix_->control();
  config_->write(offset, size, value);
  if (msix_->control() != before) msix_->controlWritten();
  return {};
}

uint64_t XhciController::barRead(uint8_t bar, uint64_t offset, uint8_t size) {
  if (bar != 0 || (size != 1 && size != 2 && size != 4 && size != 8) || offset >= BAR0_SIZE ||
      size > BAR0_SIZE - offset) {
    return ~0ull;
  }
  if (offset >= MSIX_PBA) return msix_->pbaRead(offset - MSIX_PBA, size);
  if (offset >= MSIX_TABLE) return msix_->tableRead(offset - MSIX_TABLE, size);
  uint64_t aligned = offset & ~3ull;
  uint64_t value = read32(aligned);
  if (offset + size > aligned + 4) value |= uint64_t{read32(aligned + 4)} << 32;
  return (value >> (8 * (offset - aligned))) & accessMask(size);
}

std::vector<MsixUpdate> XhciController::barWrite(uint8_t bar, uint64_t offset, uint8_t size, uint64_t value) {
  std::vector<MsixUpdate> effects;
  if (bar != 0 || (size != 4 && size != 8) || offset % size != 0 || offset >= BAR0_SIZE ||
      size > BAR0_SIZE - offset) {
    return effects;  // Registers take dword and qword writes (5.1).
  }
  if (offset >= MSIX_PBA) return effects;
  if (offset >= MSIX_TABLE) {
    if (auto update = msix_->tableWrite(offset - MSIX_TABLE, size, value)) effects.push_back(*update);
    return effects;
  }
  transaction([&] {
    write32(offset, static_cast<uint32_t>(value));
    if (size == 8) write32(offset + 4, static_cast<uint32_t>(value >> 32));
  });
  return effects;
}

bool XhciController::live() const {
  return (s().usbcmd & CMD_RUN) != 0;
}

std::vector<MsixUpdate> XhciController::reset() {
  transaction([&] { resetController(); });
  return {};
}

void XhciController::resume() {
  paused_ = false;
  transaction([&] { runEverything(); });
  if (resumed_) resumed_();
}

void XhciController::pointer(std::span<const PointerEvent> events) {
  if (!tablet_) return;
  transaction([&] {
    for (const PointerEvent& event : events) UsbTablet::pointer(s().tablet, event);
    runTablet();
  });
}

// ---- The event ring ----

uint32_t XhciController::eventRoom() const {
  const ControllerState& c = s();
  uint32_t size = c.eventSegmentTrbs;
  if (size == 0) return 0;
  uint64_t dequeue = c.erdp & ~0xfull;
  // A dequeue pointer outside the segment says nothing: treat the ring as
  // drained (the driver's own mistake costs it events, never us memory).
  uint32_t index = c.eventEnqueue;
  if (dequeue >= c.eventSegment && dequeue < c.eventSegment + 16ull * size)
    index = static_cast<uint32_t>((dequeue - c.eventSegment) / 16);
  return (index + size - c.eventEnqueue - 1) % size;
}

void XhciController::postEvent(const Trb& event) {
  ControllerState& c = s();
  if (eventRoom() == 0) return;  // Callers check first; a full ring drops.
  uint8_t* slot = memory_.translate(c.eventSegment + 16ull * c.eventEnqueue, sizeof(Trb));
  if (slot == nullptr) return hostSystemError();
  // The cycle bit, in the control word, makes the event the driver's:
  // everything else is written before it.
  std::memcpy(slot, &event, 12);
  uint32_t control = (event.control & ~TRB_CYCLE) | c.eventCycle;
  std::atomic_ref<uint32_t>(*reinterpret_cast<uint32_t*>(slot + 12))
      .store(control, std::memory_order_release);
  if (++c.eventEnqueue == c.eventSegmentTrbs) {
    c.eventEnqueue = 0;
    c.eventCycle ^= 1;
  }
  eventsWaiting();
}

void XhciController::eventsWaiting() {
  ControllerState& c = s();
  // An interrupt goes out when the driver's handler is not busy with the
  // last one (EHB clear) and interrupts are on; the handler's ERDP write
  // clears EHB and brings the next (4.17.2).
  bool busy = c.erdp & ERDP_EHB;
  c.iman |= IMAN_IP;
  c.erdp |= ERDP_EHB;
  c.usbsts |= STS_EINT;
  if (!busy && (c.iman & IMAN_IE) && (c.usbcmd & CMD_INTE)) interruptWanted_ = true;
}

void XhciController::transferEvent(uint64_t trb, uint32_t residual, uint32_t completion, uint8_t slot,
                                   uint8_t dci, bool eventData) {
  Trb event{trb, (completion << 24) | (residual & 0xffffff),
            (TRANSFER_EVENT << 10) | (uint32_t{dci} << 16) | (uint32_t{slot} << 24) |
                (eventData ? TRB_EVENT_DATA_FLAG : 0)};
  postEvent(event);
}

void XhciController::commandCompletion(uint64_t trb, uint32_t completion, uint8_t slot) {
  postEvent({trb, completion << 24, (COMMAND_COMPLETION << 10) | (uint32_t{slot} << 24)});
}

}  // namespace cellvisor
