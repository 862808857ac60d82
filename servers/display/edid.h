// The display's EDID (VESA E-EDID 1.4, one 128-byte block), where QEMU's
// bochs-display keeps it: at the start of the register BAR. It tells the
// guest's driver the resolution the user asked for (`w=`, `h=`) as the
// preferred mode, so Linux's bochs driver, OVMF and SeaBIOS's VGA BIOS
// start in it instead of their own 1024x768.
#pragma once

#include <array>
#include <cstdint>

namespace cellvisor {

using Edid = std::array<uint8_t, 128>;

// A block whose preferred (first detailed) timing is width x height at
// 60 Hz with reduced blanking, also listing 640x480, 800x600 and
// 1024x768.
Edid makeEdid(uint32_t width, uint32_t height);

}  // namespace cellvisor
