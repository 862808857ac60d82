// AHCI device server. Started by its supervisor with the bootstrap socket on
// fd 3; everything else (guest RAM, rings, eventfds, the port's opened
// image) arrives over that socket. Its options are the one-port form the
// launcher wrote ("hd:PATH,..." or "cd:PATH,...").
#include "ahci-policy.h"
#include "servers/ahci/ahci-controller.h"
#include "servers/runtime/block-backend.h"
#include "servers/runtime/serve-device.h"

int main() {
  using namespace cellvisor;
  return serveDevice(
      "ahci", "ahci.policy", policies::AHCI_POLICY, [](ServerResources& resources, SandboxedServe& serve) {
        AhciOptions options = parseAhciOptions("ahci", resources.options);
        if (!resources.backend) throw std::runtime_error("no image descriptor");
        // 32 command slots, each at most a few operations.
        BlockBackend backend(std::move(resources.backend), 64, options.readOnly);
        AhciController controller(options, resources.deviceName, *resources.memory, backend,
                                  resources.state->header(), resources.state->body<ahci::AhciState>());
        DeviceServer server("ahci:" + resources.deviceName, resources, controller);
        controller.attach(server.stats());
        server.watch(controller.completionFd(), [&controller] { controller.onCompletions(); });
        server.setFaultInjector([&backend](const std::string& fault) { return backend.injectFault(fault); });
        return serve(server);
      });
}
