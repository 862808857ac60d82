// A USB HID tablet: a high-speed USB 2.0 device with one interface (HID,
// no boot protocol) and one interrupt IN endpoint whose 6-byte reports give
// three buttons, an absolute X and Y from 0 to 32767 and a wheel. What
// every OS's generic HID driver binds to, so the guest's cursor sits where
// the VNC client's is, with no acceleration between them. Its state lives
// in the controller's (transactional) state; this class is the behaviour.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "servers/xhci/xhci-state.h"

namespace cellvisor::xhci {

// A VNC client's pointer: RFB buttons (1 left, 2 middle, 4 right, 8/16
// wheel up/down) at x, y in a width x height desktop.
struct PointerEvent {
  uint8_t buttons;
  uint16_t x;
  uint16_t y;
  uint16_t width;
  uint16_t height;
};

struct SetupPacket {
  uint8_t requestType;
  uint8_t request;
  uint16_t value;
  uint16_t index;
  uint16_t length;
};

class UsbTablet {
 public:
  static constexpr uint8_t INTERRUPT_ENDPOINT = 0x81;  // EP 1 IN: device context index 3.
  static constexpr uint8_t INTERRUPT_DCI = 3;
  static constexpr size_t REPORT_BYTES = 6;
  static constexpr uint16_t AXIS_MAX = 0x7fff;

  // A control transfer: the IN data (at most setup.length bytes), or
  // nullopt for a request the device answers with STALL.
  static std::optional<std::vector<uint8_t>> control(TabletState& state, const SetupPacket& setup,
                                                     std::span<const uint8_t> outData);
  // Queues a report for a pointer event (a button's change always gets a
  // report of its own; motion joins the last one waiting).
  static void pointer(TabletState& state, const PointerEvent& event);
  // The report to send now, if one waits; popped by takeReport.
  static bool reportWaiting(const TabletState& state) { return state.queued > 0; }
  static std::array<uint8_t, REPORT_BYTES> encode(const TabletReport& report);
  static TabletReport takeReport(TabletState& state);
  // USB reset (port reset, Reset Device): unconfigured, defaults.
  static void reset(TabletState& state);

  static std::span<const uint8_t> reportDescriptor();
};

}  // namespace cellvisor::xhci
