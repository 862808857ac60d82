#include "servers/xhci/xhci-options.h"

#include <sstream>
#include <stdexcept>

namespace cellvisor {

XhciOptions parseXhciOptions(const std::string& text) {
  XhciOptions options;
  std::istringstream items(text);
  std::string item;
  while (std::getline(items, item, ',')) {
    if (item.empty()) continue;
    if (item == "tablet") {
      if (options.tablet) throw std::invalid_argument("xhci: one tablet per controller");
      options.tablet = true;
      continue;
    }
    throw std::invalid_argument("xhci: unknown USB device '" + item + "' (known: tablet)");
  }
  return options;
}

}  // namespace cellvisor
