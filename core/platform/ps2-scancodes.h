// Scan codes between the forms a PC keyboard path uses. Keys travel as AT
// set-1 make codes (the codes VNC's QEMU extended key event carries), with
// KEY_EXTENDED added for keys a real keyboard prefixes with 0xE0. The PS/2
// keyboard sends set 2, as a real one does after reset, and the i8042
// translates its bytes back to set 1 while the guest leaves the
// controller's translation on (what firmware does, and PC software
// expects).
#pragma once

#include <cstdint>

namespace cellvisor::ps2 {

constexpr uint16_t KEY_EXTENDED = 0xe000;  // The key's make code is preceded by 0xE0.
constexpr uint16_t KEY_PAUSE = 0xe11d;     // The one key with an 0xE1 sequence (and no break).
constexpr uint16_t KEY_PRINT_SCREEN = KEY_EXTENDED | 0x37;

// The i8042's set-2 to set-1 translation of one byte from the keyboard
// (every byte: scan codes and replies alike). Break prefixes (0xF0) are the
// controller's business, not this table's.
uint8_t translateToSet1(uint8_t set2);
// A key's set-2 code from its set-1 code (0x01-0x7f), 0 for none.
uint8_t set2CodeOf(uint8_t set1);

}  // namespace cellvisor::ps2
