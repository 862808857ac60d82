// The controller's registers: capability, operational, port, runtime and
// doorbell (xHCI 5), and what writing them sets off. Called inside a
// transaction (XhciController::barWrite).
#include <time.h>

#include <cstring>

#include "base/guest-memory.h"
#include "servers/xhci/xhci-controller.h"

namespace cellvisor {

using namespace xhci;

namespace {

constexpr uint32_t USB_NAME = 0x20425355;  // "USB "
constexpr uint64_t USB3_PROTOCOL = EXTENDED_CAPS + 0x10;

// A Supported Protocol capability (7.2): which ports speak which USB.
uint32_t protocolCapability(uint64_t offset, uint8_t major, uint8_t firstPort, uint8_t ports, bool last) {
  switch (offset) {
    case 0:
      return CAP_SUPPORTED_PROTOCOL | (last ? 0u : 4u) << 8 | uint32_t{major} << 24;
    case 4:
      return USB_NAME;
    case 8:
      return firstPort | uint32_t{ports} << 8;
    default:
      return 0;  // Protocol slot type 0.
  }
}

uint64_t setLow(uint64_t register64, uint32_t value) {
  return (register64 & ~0xffffffffull) | value;
}
uint64_t setHigh(uint64_t register64, uint32_t value) {
  return (register64 & 0xffffffffull) | uint64_t{value} << 32;
}

bool usb2(uint8_t port) {
  return port < USB2_PORTS;
}

}  // namespace

uint32_t XhciController::read32(uint64_t offset) const {
  const ControllerState& c = s();
  if (offset < EXTENDED_CAPS) {
    switch (offset) {
      case 0:
        return static_cast<uint32_t>(CAP_LENGTH) | 0x0100u << 16;  // xHCI 1.0.
      case HCSPARAMS1:
        return MAX_SLOTS | uint32_t{VECTORS} << 8 | uint32_t{PORTS} << 24;
      case HCCPARAMS1:
        return HCC_AC64 | static_cast<uint32_t>(EXTENDED_CAPS / 4) << 16;
      case DBOFF:
        return static_cast<uint32_t>(DOORBELL_BASE);
      case RTSOFF:
        return static_cast<uint32_t>(RUNTIME_BASE);
      default:
        return 0;  // HCSPARAMS2/3: one ERST entry, no scratchpads, no exit latencies.
    }
  }
  if (offset < USB3_PROTOCOL) return protocolCapability(offset - EXTENDED_CAPS, 2, 1, USB2_PORTS, false);
  if (offset < CAP_LENGTH)
    return protocolCapability(offset - USB3_PROTOCOL, 3, USB2_PORTS + 1, USB3_PORTS, true);
  if (offset < RUNTIME_BASE) {
    uint64_t op = offset - CAP_LENGTH;
    if (op >= PORT_REGISTERS) {
      uint64_t index = (op - PORT_REGISTERS) / 16;
      if (index >= PORTS) return 0;
      const PortState& port = c.ports[index];
      switch ((op - PORT_REGISTERS) % 16) {
        case 0:
          return port.portsc;
        case 4:
          return port.portpmsc;
        case 8:
          return port.portli;
        default:
          return port.porthlpmc;
      }
    }
    switch (op) {
      case USBCMD:
        return c.usbcmd;
      case USBSTS:
        return c.usbsts;
      case PAGESIZE:
        return 1;  // 4 KiB pages.
      case DNCTRL:
        return c.dnctrl;
      case CRCR:
        return c.commandRunning ? static_cast<uint32_t>(CRCR_CRR) : 0;  // The pointer reads as zero.
      case DCBAAP:
        return static_cast<uint32_t>(c.dcbaap);
      case DCBAAP + 4:
        return static_cast<uint32_t>(c.dcbaap >> 32);
      case CONFIG:
        return c.config;
      default:
        return 0;
    }
  }
  if (offset < DOORBELL_BASE) {
    uint64_t runtime = offset - RUNTIME_BASE;
    if (runtime == MFINDEX) {
      timespec now{};
      ::clock_gettime(CLOCK_MONOTONIC, &now);
      uint64_t microframes = (uint64_t(now.tv_sec) * 1'000'000'000 + uint64_t(now.tv_nsec)) / 125'000;
      return static_cast<uint32_t>(microframes & 0x3fff);
    }
    switch (runtime) {
      case INTERRUPTER0 + IMAN:
        return c.iman;
      case INTERRUPTER0 + IMOD:
        return c.imod;
      case INTERRUPTER0 + ERSTSZ:
        return c.erstsz;
      case INTERRUPTER0 + ERSTBA:
        return static_cast<uint32_t>(c.erstba);
      case INTERRUPTER0 + ERSTBA + 4:
        return static_cast<uint32_t>(c.erstba >> 32);
      case INTERRUPTER0 + ERDP:
        return static_cast<uint32_t>(c.erdp);
      case INTERRUPTER0 + ERDP + 4:
        return static_cast<uint32_t>(c.erdp >> 32);
      default:
        return 0;
    }
  }
  return 0;  // Doorbells read as zero.
}

void XhciController::write32(uint64_t offset, uint32_t value) {
  if (offset < CAP_LENGTH) return;  // Capabilities are read-only.
  if (offset < RUNTIME_BASE) {
    uint64_t op = offset - CAP_LENGTH;
    if (op >= PORT_REGISTERS) {
      uint64_t index = (op - PORT_REGISTERS) / 16;
      if (index < PORTS) writePort(static_cast<uint8_t>(index), (op - PORT_REGISTERS) % 16, value);
      return;
    }
    return writeOperational(op, value);
  }
  if (offset < DOORBELL_BASE) return writeRuntime(offset - RUNTIME_BASE, value);
  uint64_t doorbell = (offset - DOORBELL_BASE) / 4;
  if (doorbell > MAX_SLOTS || (s().usbcmd & CMD_RUN) == 0) return;
  if (doorbell == 0) {
    if ((value & 0xff) != 0) return;  // The host controller's doorbell has one target: the command ring.
    s().commandRunning = 1;
    if (!paused_) runCommands();
    return;
  }
  ringEndpoint(static_cast<uint8_t>(doorbell), static_cast<uint8_t>(value & 0xff));
}

void XhciController::writeOperational(uint64_t op, uint32_t value) {
  ControllerState& c = s();
  switch (op) {
    case USBCMD: {
      if (value & CMD_HCRST) return resetController();
      bool wasRunning = c.usbcmd & CMD_RUN;
      c.usbcmd = value & CMD_WRITABLE;
      bool running = c.usbcmd & CMD_RUN;
      if (running && !wasRunning) {
        c.usbsts &= ~STS_HCH;
        // Ports that changed while halted are reported now.
        for (uint8_t port = 0; port < PORTS; ++port) {
          if (c.ports[port].portsc & PORT_CHANGES) portChanged(port, 0);
        }
        if (!paused_) runEverything();
      } else if (!running && wasRunning) {
        c.usbsts |= STS_HCH;
        c.commandRunning = 0;
      }
      // Interrupts just enabled with one pending: deliver it.
      if ((c.usbcmd & CMD_INTE) && (c.iman & IMAN_IE) && (c.iman & IMAN_IP) &&
          eventRoom() + 1 < c.eventSegmentTrbs)
        interruptWanted_ = true;
      return;
    }
    case USBSTS:
      c.usbsts &= ~(value & STS_WRITE_CLEAR);
      return;
    case DNCTRL:
      c.dnctrl = value & 0xffff;
      return;
    case CRCR:
      if (c.commandRunning) {
        // Stop or abort: there is never a command half-done here (each runs
        // to its end when its doorbell rings), so the ring simply stops.
        if (value & (CRCR_CS | CRCR_CA)) {
          c.commandRunning = 0;
          commandCompletion(c.commandDequeue, COMMAND_RING_STOPPED, 0);
        }
        return;
      }
      c.commandDequeue = setLow(c.commandDequeue, value & ~0x3fu);
      c.commandCycle = value & CRCR_RCS;
      return;
    case CRCR + 4:
      if (!c.commandRunning) c.commandDequeue = setHigh(c.commandDequeue, value);
      return;
    case DCBAAP:
      c.dcbaap = setLow(c.dcbaap, value & ~0x3fu);
      return;
    case DCBAAP + 4:
      c.dcbaap = setHigh(c.dcbaap, value);
      return;
    case CONFIG:
      c.config = std::min<uint32_t>(value & 0xff, MAX_SLOTS) | (value & 0x300);
      return;
    default:
      return;
  }
}

void XhciController::writeRuntime(uint64_t runtime, uint32_t value) {
  ControllerState& c = s();
  switch (runtime) {
    case INTERRUPTER0 + IMAN: {
      if (value & IMAN_IP) c.iman &= ~IMAN_IP;
      c.iman = (c.iman & ~IMAN_IE) | (value & IMAN_IE);
      return;
    }
    case INTERRUPTER0 + IMOD:
      c.imod = value;  // Interrupts are not held back: each batch of events raises one.
      return;
    case INTERRUPTER0 + ERSTSZ:
      c.erstsz = value & 0xffff;
      return loadEventRing();  // Whichever of size and base comes last.

    case INTERRUPTER0 + ERSTBA:
      c.erstba = setLow(c.erstba, value & ~0x3fu);
      return loadEventRing();
    case INTERRUPTER0 + ERSTBA + 4:
      c.erstba = setHigh(c.erstba, value);
      return loadEventRing();
    case INTERRUPTER0 + ERDP: {
      // EHB is cleared by writing one; the pointer takes the rest.
      uint64_t busy = (value & ERDP_EHB) ? 0 : c.erdp & ERDP_EHB;
      c.erdp = setLow(c.erdp, value & ~0xfu) | busy;
      return dequeueMoved();
    }
    case INTERRUPTER0 + ERDP + 4:
      c.erdp = setHigh(c.erdp, value);
      return dequeueMoved();
    default:
      return;
  }
}

void XhciController::loadEventRing() {
  ControllerState& c = s();
  c.eventSegment = 0;
  c.eventSegmentTrbs = 0;
  c.eventEnqueue = 0;
  c.eventCycle = 1;
  if (c.erstsz == 0) return;
  // One segment (HCSPARAMS2.ERST Max = 0): the table's first entry.
  const uint8_t* entry = memory_.translate(c.erstba, 16);
  if (entry == nullptr) return;
  uint64_t base;
  uint32_t size;
  std::memcpy(&base, entry, 8);
  std::memcpy(&size, entry + 8, 4);
  base &= ~0x3full;
  size &= 0xffff;
  // 16 to 4096 TRBs (6.5), all in RAM.
  if (size < 16 || size > 4096 || memory_.translate(base, 16ull * size) == nullptr) return;
  c.eventSegment = base;
  c.eventSegmentTrbs = size;
}

void XhciController::dequeueMoved() {
  ControllerState& c = s();
  // Work that waited for room in the event ring goes on; events the driver
  // has not reached are announced again (its handler may have read up to
  // where it began and written the pointer after we added more).
  for (uint8_t port = 0; port < PORTS && c.portEventsOwed != 0; ++port) {
    if (c.portEventsOwed & (1u << port)) portChanged(port, 0);
  }
  if (!paused_) runEverything();
  bool pending = c.eventSegmentTrbs != 0 && eventRoom() + 1 < c.eventSegmentTrbs;
  if (pending) eventsWaiting();  // Interrupts again only once the handler cleared EHB.
}

void XhciController::hostSystemError() {
  // Memory the driver named is not RAM: the controller stops, as one whose
  // DMA failed (4.10.2.6).
  ControllerState& c = s();
  c.usbsts |= STS_HSE | STS_HCH;
  c.usbcmd &= ~CMD_RUN;
  c.commandRunning = 0;
}

void XhciController::resetController() {
  ControllerState& c = s();
  TabletReport pointer = c.tablet.current;
  c = ControllerState{};
  c.usbsts = STS_HCH;
  c.eventCycle = 1;
  c.tablet.current = pointer;
  UsbTablet::reset(c.tablet);
  for (uint8_t port = 0; port < PORTS; ++port) {
    c.ports[port].portsc = PORT_PP | (LINK_RX_DETECT << PORT_PLS_SHIFT);
  }
  // The tablet, attached to port 1 since power-on: the driver finds it
  // connected, not yet enabled, and resets the port.
  if (!tablet_) return;
  c.ports[0].portsc =
      PORT_PP | PORT_CCS | PORT_CSC | (LINK_POLLING << PORT_PLS_SHIFT) | (SPEED_HIGH << PORT_SPEED_SHIFT);
}

void XhciController::writePort(uint8_t port, uint64_t offset, uint32_t value) {
  PortState& state = s().ports[port];
  if (offset == 4) {
    state.portpmsc = value;  // Power management: remembered, no effect on an emulated link.
    return;
  }
  if (offset != 0) return;
  uint32_t& portsc = state.portsc;
  portsc &= ~(value & PORT_CHANGES);
  portsc = (portsc & ~(PORT_PIC_MASK | PORT_WAKE_MASK)) | (value & (PORT_PIC_MASK | PORT_WAKE_MASK));
  bool connected = portsc & PORT_CCS;
  if ((value & PORT_PED) && (portsc & PORT_PED)) {
    // Writing one disables the port; a USB 2 device still there waits in
    // Polling for the next reset, as after it was attached.
    portsc &= ~PORT_PED;
    if (connected && usb2(port)) portsc = (portsc & ~PORT_PLS_MASK) | (LINK_POLLING << PORT_PLS_SHIFT);
  }
  if ((value & PORT_PR) || (!usb2(port) && (value & PORT_WPR))) {
    resetPort(port, value & PORT_WPR);
    return;
  }
  if ((value & PORT_LWS) && connected && (portsc & PORT_PED)) {
    uint32_t link = (value & PORT_PLS_MASK) >> PORT_PLS_SHIFT;
    uint32_t current = (portsc & PORT_PLS_MASK) >> PORT_PLS_SHIFT;
    if (link == LINK_RESUME || (link == LINK_U0 && current != LINK_U0)) {
      // Resume completes at once: U0, and the link change reported.
      portsc = (portsc & ~PORT_PLS_MASK) | (LINK_U0 << PORT_PLS_SHIFT);
      if (current == LINK_U3) portChanged(port, PORT_PLC);
    } else if (link == LINK_U3) {
      portsc = (portsc & ~PORT_PLS_MASK) | (LINK_U3 << PORT_PLS_SHIFT);
    }
  }
}

void XhciController::resetPort(uint8_t port, bool warm) {
  uint32_t& portsc = s().ports[port].portsc;
  if (!(portsc & PORT_CCS)) {
    // Nothing attached: the reset ends at once, with nothing enabled.
    portChanged(port, warm ? PORT_WRC | PORT_PRC : PORT_PRC);
    return;
  }
  // The USB reset the port signals: the tablet starts over unconfigured.
  UsbTablet::reset(s().tablet);
  portsc = (portsc & ~(PORT_PLS_MASK | PORT_PR)) | PORT_PED | (LINK_U0 << PORT_PLS_SHIFT);
  portChanged(port, warm ? PORT_WRC | PORT_PRC : PORT_PRC);
}

void XhciController::portChanged(uint8_t port, uint32_t changeBits) {
  ControllerState& c = s();
  c.ports[port].portsc |= changeBits;
  c.usbsts |= STS_PCD;
  if (!(c.usbcmd & CMD_RUN)) return;  // Reported when the controller runs.
  if (eventRoom() == 0) {
    c.portEventsOwed |= static_cast<uint8_t>(1u << port);  // Posted once the driver frees room.
    return;
  }
  c.portEventsOwed &= static_cast<uint8_t>(~(1u << port));
  postEvent({uint64_t{port + 1u} << 24, uint32_t{SUCCESS} << 24, PORT_STATUS_CHANGE << 10});
}

}  // namespace cellvisor
