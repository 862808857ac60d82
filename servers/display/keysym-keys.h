// Which key a VNC client means by an X keysym, for clients that send only
// keysyms (RFB's KeyEvent). A keysym names a character or a function, not a
// key: each maps to the key that makes it on a US keyboard, shifted symbols
// to their unshifted key (the client sends its Shift separately, as every
// VNC client does). Keys are AT set-1 codes as the input link carries them
// (core/platform/ps2-scancodes.h). Clients that send scan codes themselves
// (QEMU's extended key event: noVNC, libvncclient) bypass this, and with it
// the layout question.
#pragma once

#include <cstdint>

namespace cellvisor {

// 0 when no key makes `keysym` on a US keyboard.
uint16_t keyForKeysym(uint32_t keysym);

}  // namespace cellvisor
