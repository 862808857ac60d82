// virtio-net device server. Started by its supervisor with the bootstrap
// socket on fd 3; everything else (guest RAM, rings, eventfds, the opened
// tap) arrives over that socket.
#include <fcntl.h>

#include "servers/runtime/serve-device.h"
#include "servers/runtime/virtio-transport.h"
#include "servers/virtio-net/net-device.h"
#include "virtio-net-policy.h"

int main() {
  using namespace cellvisor;
  return serveDevice("virtio-net", "virtio-net.policy", policies::VIRTIO_NET_POLICY,
                     [](ServerResources& resources, SandboxedServe& serve) {
                       NetOptions options = parseNetOptions(resources.options);
                       UniqueFd tapFd = takeOnlyBackend(resources, "tap");
                       int tap = tapFd.get();
                       // Reads and writes never block the loop (set before the sandbox,
                       // which has no fcntl).
                       if (::fcntl(tap, F_SETFL, ::fcntl(tap, F_GETFL) | O_NONBLOCK) != 0)
                         throw std::runtime_error("tap: fcntl failed");
                       auto mac = options.macGiven ? options.mac : derivedMac(resources.deviceName);
                       NetDevice device(options, tap, mac);
                       VirtioTransport transport(device, *resources.memory, resources.state->header(),
                                                 resources.state->body<VirtioState>());
                       DeviceServer server("virtio-net:" + resources.deviceName, resources, transport);
                       server.setPollMicros(options.pollMicros);
                       server.watch(tap, [&device, &server] {
                         device.onTapReadable();
                         server.busyPoll();
                       });
                       device.attach(transport, server.stats(),
                                     [&server, tap](bool reading) { server.setWatching(tap, reading); });
                       return serve(server);
                     });
}
