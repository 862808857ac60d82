// A PS/2 keyboard (an MF2 keyboard, ID AB 83) speaking scan code set 2
// after reset, or set 1 when the guest selects it. Keys arrive as set-1
// codes (ps2-scancodes.h); the keyboard sends each as its current set
// spells it. Set 3 is acknowledged but not taken up: a guest that reads the
// set back finds 2 and uses that (Linux does).
#pragma once

#include <cstdint>

#include "core/platform/ps2-device.h"

namespace cellvisor {

class Ps2Keyboard : public Ps2Device {
 public:
  Ps2Keyboard() { reset(); }

  void receive(uint8_t byte) override;
  // A key went down or up. Dropped while scanning is off or when no key
  // has that code. False when the keyboard's buffer cannot take its whole
  // sequence now (the caller may hold it and try again as the guest reads).
  bool key(uint16_t code, bool down);

  uint8_t leds() const { return leds_; }
  uint8_t scanCodeSet() const { return set_; }
  bool scanning() const { return scanning_; }

 private:
  void reset();
  void command(uint8_t byte);
  void parameter(uint8_t byte);

  uint8_t set_ = 2;
  bool scanning_ = true;
  uint8_t leds_ = 0;
  uint8_t awaiting_ = 0;  // The command whose parameter byte comes next, or 0.
};

}  // namespace cellvisor
