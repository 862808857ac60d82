// The framebuffer's slot options, bhyve's spelling:
//   -s 29,fbuf,tcp=0.0.0.0:5900,w=800,h=600,wait,password=SECRET
// tcp= (or rfb=) IPv4:PORT, [IPv6]:PORT or a bare PORT (127.0.0.1 then);
// w=/h= the desktop before the guest sets a mode (1024x768 by default,
// 640x480 up to 3840x2160); wait (the vCPUs start once a client is there)
// is refused for now: the core cannot hold its start for the display yet;
// password= VNC authentication (8 characters count, as in every VNC);
// vga= accepted for bhyve's sake (there is no legacy VGA here); rom=PATH the
// adapter's option ROM, which firmware runs (default: SeaBIOS's
// vgabios-bochs-display.bin when installed; rom=off for none).
#pragma once

#include <cstdint>
#include <string>

#include "base/unique-fd.h"

namespace cellvisor {

struct DisplayOptions {
  static constexpr uint32_t MIN_WIDTH = 640, MIN_HEIGHT = 480;
  static constexpr uint32_t MAX_WIDTH = 3840, MAX_HEIGHT = 2160;

  std::string address = "127.0.0.1";  // Without brackets.
  uint16_t port = 5900;
  uint32_t width = 1024;
  uint32_t height = 768;
  std::string password;
  bool wait = false;              // The vCPUs start once a client got in (through the input link).
  bool edid = true;               // w x h as the preferred mode in an EDID (edid.h); edid=off: drivers pick.
  std::string rom = DEFAULT_ROM;  // "" for none
  static constexpr const char* DEFAULT_ROM = "/usr/share/seabios/vgabios-bochs-display.bin";
  // VRAM: a power of two holding two screens of w x h at 32 bpp (page
  // flipping), at least 16 MiB as QEMU's bochs-display has.
  uint64_t vramBytes() const;
};

// Throws std::invalid_argument naming the bad option.
DisplayOptions parseDisplayOptions(const std::string& text);
// The TCP socket VNC clients connect to, bound and listening: the launcher
// opens it and every instance of the server inherits it (a restarted
// server keeps the port). Errors start with `where`.
UniqueFd openVncListener(const DisplayOptions& options, const std::string& where);
// The option ROM, opened read-only (none: rom=off, or the default ROM not
// installed). Errors start with `where`.
UniqueFd openDisplayRom(const DisplayOptions& options, const std::string& where);
// The ROM's window in BAR memory after VRAM: a power of two, a page at least.
uint64_t romWindowBytes(uint64_t romFileBytes);

}  // namespace cellvisor
