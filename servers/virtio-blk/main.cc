// virtio-blk device server. Started by its supervisor with the bootstrap
// socket on fd 3; everything else (guest RAM, rings, eventfds, the opened
// disk image) arrives over that socket.
#include "servers/runtime/block-backend.h"
#include "servers/runtime/serve-device.h"
#include "servers/runtime/virtio-transport.h"
#include "servers/virtio-blk/blk-device.h"
#include "virtio-blk-policy.h"

int main() {
  using namespace cellvisor;
  return serveDevice(
      "virtio-blk", "virtio-blk.policy", policies::VIRTIO_BLK_POLICY,
      [](ServerResources& resources, SandboxedServe& serve) {
        BlkOptions options = parseBlkOptions(resources.options);
        // One io_uring for all queues, asked to be deep enough for every queue
        // to be full; it bounds itself, and what is beyond waits its turn.
        BlockBackend backend(takeOnlyBackend(resources, "disk image"),
                             std::max(64u, 2u * options.queues * options.queueSize), options.readOnly);
        BlkDevice device(options, backend);
        VirtioTransport transport(device, *resources.memory, resources.state->header(),
                                  resources.state->body<VirtioState>());
        DeviceServer server("virtio-blk:" + resources.deviceName, resources, transport);
        device.attach(transport, server.stats());
        server.setPollMicros(options.pollMicros);
        server.watch(device.completionFd(), [&device] { device.onCompletions(); });
        server.setFaultInjector([&backend](const std::string& fault) { return backend.injectFault(fault); });
        return serve(server);
      });
}
