// AHCI device server. Started by its supervisor with the bootstrap socket on
// fd 3; everything else (guest RAM, rings, eventfds, each port's opened
// image, in port order) arrives over that socket. Its options are the
// controller form the launcher wrote ("hd:PATH,...,cd:PATH,...").
#include <memory>
#include <string>
#include <vector>

#include "ahci-policy.h"
#include "servers/ahci/ahci-controller.h"
#include "servers/runtime/block-backend.h"
#include "servers/runtime/serve-device.h"

int main() {
  using namespace cellvisor;
  return serveDevice(
      "ahci", "ahci.policy", policies::AHCI_POLICY, [](ServerResources& resources, SandboxedServe& serve) {
        AhciOptions options = parseAhciOptions("ahci", resources.options);
        if (resources.backends.size() != options.ports.size()) {
          throw std::runtime_error("got " + std::to_string(resources.backends.size()) + " images for " +
                                   std::to_string(options.ports.size()) + " ports");
        }
        // One io_uring a port, deep enough for its 32 command slots, each at
        // most a few operations.
        std::vector<std::unique_ptr<BlockBackend>> backends;
        std::vector<BlockBackend*> views;
        for (size_t i = 0; i < options.ports.size(); ++i) {
          backends.push_back(std::make_unique<BlockBackend>(std::move(resources.backends[i]), 64,
                                                            options.ports[i].readOnly));
          views.push_back(backends.back().get());
        }
        AhciController controller(options, resources.deviceName, *resources.memory, views,
                                  resources.state->header(), resources.state->body<ahci::AhciState>());
        DeviceServer server("ahci:" + resources.deviceName, resources, controller);
        controller.attach(server.stats());
        for (size_t i = 0; i < controller.portCount(); ++i) {
          AhciPort& port = controller.port(i);
          server.watch(port.backend().completionFd(), [&port] { port.onCompletions(); });
        }
        server.setFaultInjector([&backends](const std::string& fault) {
          // Tried on each port's backend in turn; the first that knows it acts.
          for (auto& backend : backends) {
            if (std::string result = backend->injectFault(fault); !result.empty()) return result;
          }
          return std::string();
        });
        return serve(server);
      });
}
