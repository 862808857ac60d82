#include "core/platform/ps2-keyboard.h"

#include <vector>

#include "core/platform/ps2-scancodes.h"

namespace cellvisor {
namespace {

enum Command : uint8_t {
  SET_LEDS = 0xed,
  ECHO = 0xee,
  SCAN_CODE_SET = 0xf0,
  IDENTIFY = 0xf2,
  TYPEMATIC = 0xf3,
  ENABLE = 0xf4,
  DEFAULTS_DISABLE = 0xf5,
  DEFAULTS = 0xf6,
  RESET = 0xff,
};
constexpr uint8_t MF2_ID[] = {0xab, 0x83};
constexpr uint8_t BREAK_PREFIX = 0xf0;  // Set 2: the next code is a key going up.
constexpr uint8_t SET1_BREAK_BIT = 0x80;

}  // namespace

void Ps2Keyboard::reset() {
  set_ = 2;
  scanning_ = true;
  leds_ = 0;
  awaiting_ = 0;
  clearInput();
}

void Ps2Keyboard::receive(uint8_t byte) {
  // A command byte where a parameter was expected starts a new command, as
  // on a real keyboard (LED and rate parameters are below 0x80).
  if (awaiting_ != 0 && byte < SET_LEDS) {
    parameter(byte);
  } else {
    command(byte);
  }
}

void Ps2Keyboard::parameter(uint8_t byte) {
  beginReply();
  uint8_t pending = awaiting_;
  awaiting_ = 0;
  switch (pending) {
    case SET_LEDS:
      leds_ = byte & 7;
      reply(ACK);
      break;
    case TYPEMATIC:
      reply(ACK);  // Repeat comes from the client's own key repeat.
      break;
    case SCAN_CODE_SET:
      reply(ACK);
      if (byte == 0) {
        reply(set_);
      } else if (byte == 1 || byte == 2) {
        set_ = byte;
        clearInput();
      }
      break;
    default:
      break;
  }
}

void Ps2Keyboard::command(uint8_t byte) {
  beginReply();
  awaiting_ = 0;
  switch (byte) {
    case SET_LEDS:
    case TYPEMATIC:
    case SCAN_CODE_SET:
      awaiting_ = byte;
      reply(ACK);
      break;
    case ECHO:
      reply(ECHO);
      break;
    case IDENTIFY:
      reply(ACK);
      for (uint8_t id : MF2_ID) reply(id);
      break;
    case ENABLE:
      clearInput();
      scanning_ = true;
      reply(ACK);
      break;
    case DEFAULTS_DISABLE:
      reset();
      scanning_ = false;
      reply(ACK);
      break;
    case DEFAULTS:
      reset();
      reply(ACK);
      break;
    case RESET:
      reset();
      reply(ACK);
      reply(SELF_TEST_PASSED);
      break;
    default:
      // Set 3's per-key commands (0xf7-0xfd) are accepted; anything else is
      // not a command.
      reply(byte >= 0xf7 && byte <= 0xfd ? ACK : RESEND);
      break;
  }
}

bool Ps2Keyboard::key(uint16_t code, bool down) {
  if (!scanning_) return true;
  std::vector<uint8_t> bytes;
  if (code == ps2::KEY_PAUSE) {
    // Make only: no key-up follows.
    if (!down) return true;
    if (set_ == 1) {
      bytes = {0xe1, 0x1d, 0x45, 0xe1, 0x9d, 0xc5};
    } else {
      bytes = {0xe1, 0x14, 0x77, 0xe1, 0xf0, 0x14, 0xf0, 0x77};
    }
    return queueInput(bytes);
  }
  bool extended = (code & 0xff00) == ps2::KEY_EXTENDED;
  uint8_t set1 = static_cast<uint8_t>(code & 0x7f);
  if ((code & 0xff00) != 0 && !extended) return true;  // Not a key this keyboard has.
  if (set1 == 0 || (code & 0x80) != 0) return true;
  if (extended) bytes.push_back(0xe0);
  if (set_ == 1) {
    bytes.push_back(down ? set1 : set1 | SET1_BREAK_BIT);
  } else {
    uint8_t set2 = ps2::set2CodeOf(set1);
    if (set2 == 0) return true;
    if (!down) bytes.push_back(BREAK_PREFIX);
    bytes.push_back(set2);
  }
  return queueInput(bytes);
}

}  // namespace cellvisor
