// Segment selectors of the direct-kernel boot's GDT (its addresses are in
// core/arch/x86/address-map.h): Linux's 64-bit protocol wants
// __BOOT_CS = 0x10 and __BOOT_DS = 0x18.
#pragma once

#include <cstdint>

#include "core/arch/x86/address-map.h"

namespace cellvisor::boot {

constexpr uint16_t CODE32_SELECTOR = 0x08;
constexpr uint16_t CODE64_SELECTOR = 0x10;
constexpr uint16_t DATA_SELECTOR = 0x18;
constexpr uint16_t TSS_SELECTOR = 0x20;

}  // namespace cellvisor::boot
