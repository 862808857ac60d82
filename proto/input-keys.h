// How a key is numbered on the input link (InputEvent.key.code): its AT
// set-1 make code, with KEY_EXTENDED added for the keys a keyboard
// prefixes with 0xE0, and KEY_PAUSE for the one key with an 0xE1 sequence.
// The display server writes these; the core's PS/2 keyboard sends them in
// the scan code set the guest chose.
#pragma once

#include <cstdint>

namespace cellvisor::input {

constexpr uint16_t KEY_EXTENDED = 0xe000;
constexpr uint16_t KEY_PAUSE = 0xe11d;  // Make only: no key-up follows.
constexpr uint16_t KEY_PRINT_SCREEN = KEY_EXTENDED | 0x37;

}  // namespace cellvisor::input
