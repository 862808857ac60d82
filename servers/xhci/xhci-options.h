// xHCI slot options, bhyve's spelling: `-s N,xhci[,tablet]`, the USB
// devices attached to the controller's ports (bhyve knows one: the tablet).
// Parsed by the launcher and by the server from this one definition.
#pragma once

#include <string>

namespace cellvisor {

struct XhciOptions {
  bool tablet = false;
};

// Throws std::invalid_argument naming the bad option.
XhciOptions parseXhciOptions(const std::string& text);

}  // namespace cellvisor
