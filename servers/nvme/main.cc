// NVMe device server. Started by its supervisor with the bootstrap socket on
// fd 3; everything else (guest RAM, rings, eventfds, the namespace's opened
// backend) arrives over that socket.
#include "nvme-policy.h"
#include "servers/nvme/nvme-controller.h"
#include "servers/runtime/block-backend.h"
#include "servers/runtime/serve-device.h"

int main() {
  using namespace cellvisor;
  return serveDevice(
      "nvme", "nvme.policy", policies::NVME_POLICY, [](ServerResources& resources, SandboxedServe& serve) {
        NvmeOptions options = parseNvmeOptions(resources.options);
        // Deep enough for every I/O queue's slots, plus a few admin ones.
        BlockBackend backend(takeOnlyBackend(resources, "namespace backend"),
                             std::max(64u, options.ioSlots * options.maxQueues + 8), options.readOnly);
        NvmeController controller(options, resources.deviceName, *resources.memory, backend,
                                  resources.state->header(), resources.state->body<nvme::NvmeState>());
        DeviceServer server("nvme:" + resources.deviceName, resources, controller);
        controller.attach(server.stats());
        server.watch(controller.completionFd(), [&controller] { controller.onCompletions(); });
        server.setFaultInjector([&backend](const std::string& fault) { return backend.injectFault(fault); });
        return serve(server);
      });
}
