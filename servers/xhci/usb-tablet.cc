#include "servers/xhci/usb-tablet.h"

#include <algorithm>
#include <cstring>
#include <string_view>

namespace cellvisor::xhci {
namespace {

// Standard requests (USB 2.0, 9.4) and HID class requests (HID 1.11, 7.2).
enum Request : uint8_t {
  GET_STATUS = 0x00,
  CLEAR_FEATURE = 0x01,
  SET_FEATURE = 0x03,
  SET_ADDRESS = 0x05,
  GET_DESCRIPTOR = 0x06,
  GET_CONFIGURATION = 0x08,
  SET_CONFIGURATION = 0x09,
  GET_INTERFACE = 0x0a,
  SET_INTERFACE = 0x0b,
};
enum HidRequest : uint8_t {
  GET_REPORT = 0x01,
  GET_IDLE = 0x02,
  GET_PROTOCOL = 0x03,
  SET_REPORT = 0x09,
  SET_IDLE = 0x0a,
  SET_PROTOCOL = 0x0b,
};
enum Descriptor : uint8_t {
  DEVICE = 1,
  CONFIGURATION = 2,
  STRING = 3,
  DEVICE_QUALIFIER = 6,
  OTHER_SPEED_CONFIGURATION = 7,
  HID = 0x21,
  HID_REPORT = 0x22,
};
constexpr uint16_t FEATURE_ENDPOINT_HALT = 0;
constexpr uint16_t FEATURE_REMOTE_WAKEUP = 1;

// Three buttons, padding, absolute X and Y (16 bits, 0-32767), a relative
// wheel: a pointer the HID spec calls a mouse with absolute axes.
constexpr uint8_t REPORT_DESCRIPTOR[] = {
    0x05, 0x01,        // Usage Page: Generic Desktop
    0x09, 0x02,        // Usage: Mouse
    0xa1, 0x01,        // Collection: Application
    0x09, 0x01,        //   Usage: Pointer
    0xa1, 0x00,        //   Collection: Physical
    0x05, 0x09,        //     Usage Page: Button
    0x19, 0x01,        //     Usage Minimum: 1
    0x29, 0x03,        //     Usage Maximum: 3
    0x15, 0x00,        //     Logical Minimum: 0
    0x25, 0x01,        //     Logical Maximum: 1
    0x95, 0x03,        //     Report Count: 3
    0x75, 0x01,        //     Report Size: 1
    0x81, 0x02,        //     Input: Data, Variable, Absolute
    0x95, 0x01,        //     Report Count: 1
    0x75, 0x05,        //     Report Size: 5
    0x81, 0x01,        //     Input: Constant (padding)
    0x05, 0x01,        //     Usage Page: Generic Desktop
    0x09, 0x30,        //     Usage: X
    0x09, 0x31,        //     Usage: Y
    0x15, 0x00,        //     Logical Minimum: 0
    0x26, 0xff, 0x7f,  //     Logical Maximum: 32767
    0x35, 0x00,        //     Physical Minimum: 0
    0x46, 0xff, 0x7f,  //     Physical Maximum: 32767
    0x75, 0x10,        //     Report Size: 16
    0x95, 0x02,        //     Report Count: 2
    0x81, 0x02,        //     Input: Data, Variable, Absolute
    0x09, 0x38,        //     Usage: Wheel
    0x15, 0x81,        //     Logical Minimum: -127
    0x25, 0x7f,        //     Logical Maximum: 127
    0x35, 0x00,        //     Physical Minimum: 0
    0x45, 0x00,        //     Physical Maximum: 0
    0x75, 0x08,        //     Report Size: 8
    0x95, 0x01,        //     Report Count: 1
    0x81, 0x06,        //     Input: Data, Variable, Relative
    0xc0,              //   End Collection
    0xc0,              // End Collection
};

constexpr uint8_t lo(unsigned value) {
  return static_cast<uint8_t>(value & 0xff);
}
constexpr uint8_t hi(unsigned value) {
  return static_cast<uint8_t>((value >> 8) & 0xff);
}

constexpr uint16_t VENDOR_ID = 0x0627;  // The ID generic hypervisor tablets carry; no driver quirks.
constexpr uint16_t PRODUCT_ID = 0x0001;
constexpr uint8_t MAX_PACKET0 = 64;
constexpr uint8_t INTERVAL = 4;  // High speed: 2^(4-1) microframes, 1 ms.

std::vector<uint8_t> deviceDescriptor() {
  return {18,
          DEVICE,
          0x00,
          0x02,  // USB 2.00
          0,
          0,
          0,
          MAX_PACKET0,
          lo(VENDOR_ID),
          hi(VENDOR_ID),
          lo(PRODUCT_ID),
          hi(PRODUCT_ID),
          0x00,
          0x01,  // Device release 1.00
          1,
          2,
          3,
          1};
}

std::vector<uint8_t> configuration(uint8_t type) {
  constexpr unsigned TOTAL = 9 + 9 + 9 + 7;
  return {// Configuration 1: bus powered, 100 mA, no remote wakeup.
          9, type, lo(TOTAL), hi(TOTAL), 1, 1, 0, 0x80, 50,
          // Interface 0: HID, no boot subclass, one endpoint.
          9, 4, 0, 0, 1, 3, 0, 0, 0,
          // HID 1.11, one report descriptor.
          9, HID, 0x11, 0x01, 0, 1, HID_REPORT, lo(sizeof(REPORT_DESCRIPTOR)), hi(sizeof(REPORT_DESCRIPTOR)),
          // EP 1 IN, interrupt, 8-byte packets.
          7, 5, UsbTablet::INTERRUPT_ENDPOINT, 3, 8, 0, INTERVAL};
}

std::vector<uint8_t> stringDescriptor(std::string_view text) {
  std::vector<uint8_t> bytes{static_cast<uint8_t>(2 + 2 * text.size()), STRING};
  for (char c : text) {
    bytes.push_back(static_cast<uint8_t>(c));
    bytes.push_back(0);
  }
  return bytes;
}

std::optional<std::vector<uint8_t>> descriptor(uint16_t value) {
  uint8_t type = static_cast<uint8_t>(value >> 8);
  uint8_t index = static_cast<uint8_t>(value);
  switch (type) {
    case DEVICE:
      return deviceDescriptor();
    case CONFIGURATION:
    case OTHER_SPEED_CONFIGURATION:
      if (index != 0) return std::nullopt;
      return configuration(type);
    case DEVICE_QUALIFIER:
      // How the device would look at full speed: the same.
      return std::vector<uint8_t>{10, DEVICE_QUALIFIER, 0x00, 0x02, 0, 0, 0, MAX_PACKET0, 1, 0};
    case STRING:
      switch (index) {
        case 0:
          return std::vector<uint8_t>{4, STRING, 0x09, 0x04};  // US English.
        case 1:
          return stringDescriptor("cellvisor");
        case 2:
          return stringDescriptor("USB Tablet");  // Drivers name it "cellvisor USB Tablet".
        case 3:
          return stringDescriptor("1");
        default:
          return std::nullopt;
      }
    default:
      return std::nullopt;
  }
}

}  // namespace

std::span<const uint8_t> UsbTablet::reportDescriptor() {
  return REPORT_DESCRIPTOR;
}

std::optional<std::vector<uint8_t>> UsbTablet::control(TabletState& state, const SetupPacket& setup,
                                                       std::span<const uint8_t>) {
  std::optional<std::vector<uint8_t>> data;
  uint8_t recipient = setup.requestType & 0x1f;
  uint8_t kind = (setup.requestType >> 5) & 3;  // 0 standard, 1 class.
  bool in = (setup.requestType & 0x80) != 0;
  if (kind == 0) {
    switch (setup.request) {
      case GET_STATUS:
        if (!in) break;
        if (recipient == 0) data = std::vector<uint8_t>{0, 0};  // Bus powered, no remote wakeup.
        if (recipient == 1 && setup.index == 0) data = std::vector<uint8_t>{0, 0};
        if (recipient == 2 && (setup.index & 0xff) == INTERRUPT_ENDPOINT)
          data = std::vector<uint8_t>{state.inHalted, 0};
        if (recipient == 2 && (setup.index & 0x7f) == 0) data = std::vector<uint8_t>{0, 0};
        break;
      case CLEAR_FEATURE:
      case SET_FEATURE: {
        uint8_t on = setup.request == SET_FEATURE ? 1 : 0;
        if (recipient == 0 && setup.value == FEATURE_REMOTE_WAKEUP && !on) {
          data.emplace();  // Clearing what it does not support.
        } else if (recipient == 2 && setup.value == FEATURE_ENDPOINT_HALT &&
                   (setup.index & 0xff) == INTERRUPT_ENDPOINT) {
          state.inHalted = on;
          data.emplace();
        } else if (recipient == 2 && setup.value == FEATURE_ENDPOINT_HALT && (setup.index & 0x7f) == 0) {
          data.emplace();
        }
        break;
      }
      case SET_ADDRESS:
        // The controller addressed the device (Address Device); a driver
        // that sends it anyway is answered.
        data.emplace();
        break;
      case GET_DESCRIPTOR:
        if (!in) break;
        if (recipient == 0) data = descriptor(setup.value);
        if (recipient == 1 && setup.index == 0) {
          uint8_t type = static_cast<uint8_t>(setup.value >> 8);
          if (type == HID) {
            auto config = configuration(CONFIGURATION);
            data = std::vector<uint8_t>(config.begin() + 18, config.begin() + 27);
          }
          if (type == HID_REPORT)
            data = std::vector<uint8_t>(std::begin(REPORT_DESCRIPTOR), std::end(REPORT_DESCRIPTOR));
        }
        break;
      case GET_CONFIGURATION:
        if (in && recipient == 0) data = std::vector<uint8_t>{state.configuration};
        break;
      case SET_CONFIGURATION:
        if (recipient == 0 && setup.value <= 1) {
          state.configuration = static_cast<uint8_t>(setup.value);
          state.inHalted = 0;
          data.emplace();
        }
        break;
      case GET_INTERFACE:
        if (in && recipient == 1 && setup.index == 0 && state.configuration != 0)
          data = std::vector<uint8_t>{0};
        break;
      case SET_INTERFACE:
        if (recipient == 1 && setup.index == 0 && setup.value == 0 && state.configuration != 0)
          data.emplace();
        break;
      default:
        break;
    }
  } else if (kind == 1 && recipient == 1 && (setup.index & 0xff) == 0) {
    switch (setup.request) {
      case GET_REPORT:
        // Input report (type 1) with no ID.
        if (in && (setup.value >> 8) == 1) {
          auto report = encode(state.current);
          data = std::vector<uint8_t>(report.begin(), report.end());
        }
        break;
      case GET_IDLE:
        if (in) data = std::vector<uint8_t>{state.idle};
        break;
      case GET_PROTOCOL:
        if (in) data = std::vector<uint8_t>{state.protocol};
        break;
      case SET_IDLE:
        state.idle = static_cast<uint8_t>(setup.value >> 8);
        data.emplace();
        break;
      case SET_PROTOCOL:
        if (setup.value <= 1) {
          state.protocol = static_cast<uint8_t>(setup.value);
          data.emplace();
        }
        break;
      case SET_REPORT:  // No output or feature reports.
      default:
        break;
    }
  }
  if (data && data->size() > setup.length) data->resize(setup.length);
  return data;
}

void UsbTablet::pointer(TabletState& state, const PointerEvent& event) {
  TabletReport report = state.current;
  uint8_t rfbButtons = event.buttons;
  // HID's button order is left, right, middle; RFB's left, middle, right.
  report.buttons = static_cast<uint8_t>((rfbButtons & 1) | ((rfbButtons & 4) >> 1) | ((rfbButtons & 2) << 1));
  auto scale = [](uint16_t at, uint16_t size) {
    if (size <= 1) return uint16_t{0};
    uint32_t clamped = std::min<uint32_t>(at, size - 1u);
    return static_cast<uint16_t>(clamped * AXIS_MAX / (size - 1u));
  };
  report.x = scale(event.x, event.width);
  report.y = scale(event.y, event.height);
  // Wheel: RFB sends a press (and release) per notch.
  uint8_t pressed = rfbButtons & ~state.rfbButtons;
  state.rfbButtons = rfbButtons;
  report.wheel = 0;
  if (pressed & 8) report.wheel = 1;
  if (pressed & 16) report.wheel = -1;
  bool buttonsChanged = report.buttons != state.current.buttons;
  state.current = report;
  state.current.wheel = 0;
  if (state.queued > 0 && !buttonsChanged && report.wheel == 0 && state.queue[state.queued - 1].wheel == 0) {
    state.queue[state.queued - 1] = report;  // Motion only: the newest position replaces the last one.
    return;
  }
  if (state.queued == REPORT_QUEUE) {
    // The guest is far behind: the newest state replaces the last queued one.
    state.queue[REPORT_QUEUE - 1] = report;
    return;
  }
  state.queue[state.queued++] = report;
}

TabletReport UsbTablet::takeReport(TabletState& state) {
  TabletReport report = state.queue[0];
  std::memmove(state.queue, state.queue + 1, sizeof(TabletReport) * (REPORT_QUEUE - 1));
  --state.queued;
  return report;
}

std::array<uint8_t, UsbTablet::REPORT_BYTES> UsbTablet::encode(const TabletReport& report) {
  return {report.buttons, lo(report.x), hi(report.x),
          lo(report.y),   hi(report.y), static_cast<uint8_t>(report.wheel)};
}

void UsbTablet::reset(TabletState& state) {
  TabletReport current = state.current;
  state = TabletState{};
  state.protocol = 1;  // Report protocol after reset (HID 1.11, 7.2.6).
  state.current = current;
}

}  // namespace cellvisor::xhci
