// The xHCI controller's launch descriptor (bhyve's `xhci`): one MSI-X
// vector, no backend, and with a tablet the display's pointer over a link
// of its own, which the supervisor joins to the VM's display.
#include <stdexcept>

#include "host/server-kind.h"
#include "servers/xhci/xhci-options.h"
#include "xhci-policy.h"

namespace cellvisor {
namespace {

PreparedServer prepare(const LaunchContext& context) {
  XhciOptions options;
  try {
    options = parseXhciOptions(context.options);
  } catch (const std::invalid_argument& error) {
    throw std::invalid_argument(context.where + ": " + error.what());
  }
  PreparedServer prepared;
  prepared.options = context.options;
  prepared.doorbells = 0;  // Doorbells are register writes (servers/xhci/xhci-controller.cc).
  prepared.vectors = 1;
  prepared.pointerSink = options.tablet;
  return prepared;
}

const ServerKindRegistration registration{ServerKind{
    .emulation = "xhci",
    .binary = "xhci-server",
    .policyName = "xhci.policy",
    .policyText = policies::XHCI_POLICY,
    .prepare = prepare,
}};

}  // namespace
}  // namespace cellvisor
