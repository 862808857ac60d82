// What an xHCI server keeps in its state segment's body. Everything the
// controller does to its rings happens in a transaction: the working copy
// of ControllerState is the committed one copied, changed while TRBs are
// taken and events written, and committed by flipping one word. A server
// killed half-way leaves the committed copy as it was; its successor redoes
// the same work from the same rings and writes the same events into the
// same places, so the guest sees each event once.
#pragma once

#include <cstdint>

#include "pci/msix.h"
#include "servers/xhci/xhci-spec.h"

namespace cellvisor::xhci {

constexpr uint32_t STATE_MAGIC = 0x43565848;  // "CVXH"
constexpr uint32_t STATE_LAYOUT_VERSION = 1;
constexpr uint16_t VECTORS = 1;        // One interrupter.
constexpr uint32_t REPORT_QUEUE = 16;  // Tablet reports waiting for the guest.

struct EndpointState {
  uint64_t dequeue;  // The transfer ring's next TRB.
  uint8_t cycle;     // Its consumer cycle state.
  uint8_t state;     // EndpointContextState.
  uint8_t type;      // EndpointType.
  uint8_t reserved[5];
};

struct SlotState {
  uint8_t enabled;
  uint8_t state;  // SlotContextState.
  uint8_t port;   // Root hub port (1-based), once addressed.
  uint8_t address;
  uint32_t reserved;
  uint64_t outputContext;  // From the DCBAA when addressed.
  EndpointState endpoints[ENDPOINTS];
};

struct TabletReport {
  uint8_t buttons;  // Bit 0 left, 1 right, 2 middle (HID order).
  int8_t wheel;
  uint16_t x;  // 0-32767 across the desktop.
  uint16_t y;
};

// The USB device on port 1 (servers/xhci/usb-tablet.h).
struct TabletState {
  uint8_t configuration;  // 0: not configured.
  uint8_t protocol;       // HID: 0 boot, 1 report.
  uint8_t idle;           // HID idle rate (4 ms units; 0: report only on change).
  uint8_t reserved;
  uint8_t inHalted;      // Its interrupt endpoint's halt feature.
  uint8_t rfbButtons;    // The buttons of the last VNC event (the wheel counts presses).
  uint16_t queued;       // Reports in `queue` (the head is queue[0]).
  TabletReport current;  // What GET_REPORT answers: the latest state.
  TabletReport queue[REPORT_QUEUE];
};

struct PortState {
  uint32_t portsc;
  uint32_t portpmsc;
  uint32_t portli;
  uint32_t porthlpmc;
};

struct ControllerState {
  uint32_t usbcmd;
  uint32_t usbsts;
  uint32_t dnctrl;
  uint32_t config;
  uint64_t dcbaap;
  // The command ring.
  uint64_t commandDequeue;
  uint8_t commandCycle;
  uint8_t commandRunning;  // CRCR.CRR
  uint8_t reserved[6];
  // Interrupter 0 and its event ring (one segment).
  uint32_t iman;
  uint32_t imod;
  uint32_t erstsz;
  uint32_t reserved2;
  uint64_t erstba;
  uint64_t erdp;
  uint64_t eventSegment;  // Base of the segment, read from the ERST when ERSTBA was written.
  uint32_t eventSegmentTrbs;
  uint32_t eventEnqueue;   // Index of the next event in the segment.
  uint8_t eventCycle;      // Producer cycle state.
  uint8_t portEventsOwed;  // A bit per port whose change found the event ring full.
  uint8_t reserved3[6];
  PortState ports[PORTS];
  SlotState slots[MAX_SLOTS + 1];  // Slot IDs 1..MAX_SLOTS.
  TabletState tablet;
};

struct XhciState {
  uint8_t pciConfig[256];
  pci::MsixEntry msix[VECTORS];
  uint64_t msixPending[1];
  uint32_t committed;  // Which copy is the controller's state (0 or 1).
  uint32_t reserved;
  ControllerState copies[2];
};

}  // namespace cellvisor::xhci
