// xHCI device server (bhyve's `xhci`): the host controller and its USB
// tablet in one sandboxed process. Started by its supervisor with the
// bootstrap socket on fd 3; guest RAM, the state segment and the display's
// pointer link arrive over it.
#include <optional>

#include "servers/runtime/serve-device.h"
#include "servers/xhci/pointer-link.h"
#include "servers/xhci/xhci-controller.h"
#include "servers/xhci/xhci-options.h"
#include "xhci-policy.h"

int main() {
  using namespace cellvisor;
  return serveDevice(
      "xhci", "xhci.policy", policies::XHCI_POLICY, [](ServerResources& resources, SandboxedServe& serve) {
        XhciOptions options = parseXhciOptions(resources.options);
        XhciController controller(*resources.memory, resources.state->header(),
                                  resources.state->body<xhci::XhciState>(), options.tablet);
        DeviceServer server("xhci:" + resources.deviceName, resources, controller);
        std::optional<PointerLink> link;
        if (resources.input && resources.inputDoorbell) {
          link.emplace(server.loop(), *resources.input, resources.inputDoorbell.get(), controller);
          server.watch(resources.inputDoorbell.get(), [&link] { link->drain(); });
          controller.setResumed([&link] { link->drain(); });
          // What the display sent while no server ran.
          link->drain();
        }
        return serve(server);
      });
}
