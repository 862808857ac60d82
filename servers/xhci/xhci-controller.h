// An xHCI 1.0 host controller served as a PCI function, with a USB HID
// tablet on its first port: bhyve's `-s 30,xhci,tablet`. Four USB 2.0 and
// four USB 3.x root ports, eight device slots, one interrupter with one
// MSI-X vector, 64-bit addressing, 32-byte contexts. The command ring, the
// event ring and each endpoint's transfer ring are walked in guest memory;
// every change to the controller's state is a transaction in the state
// segment (servers/xhci/xhci-state.h), so a server killed at any point is
// replaced by one that carries on without the guest seeing anything.
#pragma once

#include <functional>
#include <optional>
#include <span>
#include <vector>

#include "pci/config-space.h"
#include "pci/msix.h"
#include "proto/state-segment.h"
#include "servers/runtime/pci-function.h"
#include "servers/xhci/usb-tablet.h"
#include "servers/xhci/xhci-state.h"

namespace cellvisor {

class GuestMemory;

class XhciController : public PciFunction {
 public:
  // Takes over `state` (fresh, or left by a previous instance); `tablet`:
  // the tablet is attached to port 1.
  XhciController(GuestMemory& memory, StateHeader& header, xhci::XhciState& state, bool tablet);

  // VNC clients' pointer events, from the display's link: one transaction.
  void pointer(std::span<const xhci::PointerEvent> events);
  bool paused() const { return paused_; }
  // Called when the function resumes (the pointer link is read again).
  void setResumed(std::function<void()> resumed) { resumed_ = std::move(resumed); }

  // PciFunction.
  FunctionLayout layout() const override;
  void start(std::function<void(uint16_t)> signal) override;
  FailureNotice failureNotice() const override;
  uint32_t configRead(uint16_t offset, uint8_t size) override;
  std::vector<MsixUpdate> configWrite(uint16_t offset, uint8_t size, uint32_t value) override;
  uint64_t barRead(uint8_t bar, uint64_t offset, uint8_t size) override;
  std::vector<MsixUpdate> barWrite(uint8_t bar, uint64_t offset, uint8_t size, uint64_t value) override;
  void doorbell(uint16_t) override {}
  bool live() const override;
  std::vector<MsixUpdate> reset() override;
  void pause() override { paused_ = true; }
  void resume() override;
  std::vector<MsixUpdate> msixVectors() const override { return msix_->vectors(); }

  // The committed state (tests).
  const xhci::ControllerState& committed() const { return state_.copies[state_.committed & 1]; }

 private:
  // The working copy: the committed one outside a transaction.
  xhci::ControllerState& s() { return state_.copies[working_]; }
  const xhci::ControllerState& s() const { return state_.copies[working_]; }
  // Runs `work` on a copy of the committed state and commits it; raises the
  // interrupt the work asked for once committed.
  template <typename Work>
  void transaction(Work&& work);

  // Registers (xhci-registers.cc).
  uint32_t read32(uint64_t offset) const;
  void write32(uint64_t offset, uint32_t value);
  void writeOperational(uint64_t offset, uint32_t value);
  void writeRuntime(uint64_t offset, uint32_t value);
  void writePort(uint8_t port, uint64_t offset, uint32_t value);
  void resetController();
  void resetPort(uint8_t port, bool warm);
  void portChanged(uint8_t port, uint32_t changeBits);
  void loadEventRing();
  void dequeueMoved();
  void hostSystemError();

  // The event ring.
  uint32_t eventRoom() const;
  void postEvent(const xhci::Trb& event);
  // Events are in the ring: IP, EHB, EINT, and an interrupt if the handler
  // is not busy.
  void eventsWaiting();
  void transferEvent(uint64_t trb, uint32_t residual, uint32_t completion, uint8_t slot, uint8_t dci,
                     bool eventData = false);
  void commandCompletion(uint64_t trb, uint32_t completion, uint8_t slot);

  // Rings (xhci-rings.cc).
  std::optional<xhci::Trb> fetch(uint64_t address);
  void runEverything();
  void runCommands();
  void command(const xhci::Trb& trb, uint64_t address);
  uint32_t enableSlot(uint8_t& slot);
  uint32_t addressDevice(const xhci::Trb& trb, uint8_t slot);
  uint32_t configureEndpoint(const xhci::Trb& trb, uint8_t slot);
  uint32_t evaluateContext(const xhci::Trb& trb, uint8_t slot);
  uint32_t resetEndpoint(uint8_t slot, uint8_t dci);
  uint32_t stopEndpoint(uint8_t slot, uint8_t dci);
  uint32_t setDequeue(const xhci::Trb& trb, uint8_t slot, uint8_t dci);
  uint32_t resetDevice(uint8_t slot);
  void disableEndpoints(uint8_t slot, uint8_t from);
  // The guest's input context, or nullptr when it is not in RAM.
  uint8_t* inputContext(const xhci::Trb& trb);
  // The output device context's entry `index` (0: slot), or nullptr.
  uint8_t* outputContext(uint8_t slot, uint8_t index);
  void writeEndpointContext(uint8_t slot, uint8_t dci);
  void writeSlotState(uint8_t slot);
  void ringEndpoint(uint8_t slot, uint8_t dci);
  void runEndpoint(uint8_t slot, uint8_t dci);
  // One transfer descriptor: true if it was taken (the ring moved on).
  bool controlTransfer(uint8_t slot);
  bool interruptTransfer(uint8_t slot, uint8_t dci);
  // The TRBs of the TD at the endpoint's dequeue, up to `last` (a TRB
  // without CHAIN, or for control a Status Stage), following links; false
  // while the guest has not finished writing it.
  struct RingTrb {
    xhci::Trb trb;
    uint64_t address;
  };
  struct RingPosition {
    uint64_t dequeue;
    uint8_t cycle;
  };
  bool gatherTd(const xhci::EndpointState& endpoint, std::vector<RingTrb>& td, bool control,
                RingPosition& after);
  // Moves `data` into the TD's data TRBs td[first, last) and posts the
  // events they ask for (IOC; ISP on a short packet). False if the data
  // does not fit (babble).
  bool deliverIn(const std::vector<RingTrb>& td, size_t first, size_t last, std::span<const uint8_t> data,
                 uint8_t slot, uint8_t dci);
  void halt(uint8_t slot, uint8_t dci);
  bool tabletSlot(uint8_t slot) const;
  void runTablet();

  GuestMemory& memory_;
  StateHeader& header_;
  xhci::XhciState& state_;
  std::optional<pci::ConfigSpace> config_;
  std::optional<pci::Msix> msix_;
  bool tablet_;
  std::function<void()> resumed_;
  uint32_t working_ = 0;
  bool interruptWanted_ = false;
  bool paused_ = false;
};

}  // namespace cellvisor
