// Scan codes between the forms a PC keyboard path uses. Keys travel as AT
// set-1 make codes (proto/input-keys.h: the codes VNC's QEMU extended key
// event carries, 0xE0 keys marked). The PS/2
// keyboard sends set 2, as a real one does after reset, and the i8042
// translates its bytes back to set 1 while the guest leaves the
// controller's translation on (what firmware does, and PC software
// expects).
#pragma once

#include <cstdint>

#include "proto/input-keys.h"

namespace cellvisor::ps2 {

using input::KEY_EXTENDED;
using input::KEY_PAUSE;
using input::KEY_PRINT_SCREEN;

// The i8042's set-2 to set-1 translation of one byte from the keyboard
// (every byte: scan codes and replies alike). Break prefixes (0xF0) are the
// controller's business, not this table's.
uint8_t translateToSet1(uint8_t set2);
// A key's set-2 code from its set-1 code (0x01-0x7f), 0 for none.
uint8_t set2CodeOf(uint8_t set1);

}  // namespace cellvisor::ps2
