// virtio-net device server. Started by its supervisor with the bootstrap
// socket on fd 3; everything else (guest RAM, rings, eventfds, the opened
// tap) arrives over that socket.
#include <fcntl.h>

#include <iostream>

#include "servers/runtime/device-server.h"
#include "servers/runtime/sandbox.h"
#include "servers/runtime/server-resources.h"
#include "servers/virtio-net/net-device.h"

int main() {
  using namespace cellvisor;
  constexpr int BOOTSTRAP_FD = 3;
  bool sandboxed = false;
  int status = 1;
  try {
    ServerResources resources = receiveServerResources(BOOTSTRAP_FD);
    NetOptions options = parseNetOptions(resources.options);
    if (!resources.backend) throw std::runtime_error("no tap descriptor");
    int tap = resources.backend.get();
    // Reads and writes never block the loop (set before the sandbox, which
    // has no fcntl).
    if (::fcntl(tap, F_SETFL, ::fcntl(tap, F_GETFL) | O_NONBLOCK) != 0)
      throw std::runtime_error("tap: fcntl failed");
    auto mac = options.macGiven ? options.mac : derivedMac(resources.deviceName);
    NetDevice device(options, tap, mac);
    DeviceServer server("virtio-net:" + resources.deviceName, resources, device);
    server.setPollMicros(options.pollMicros);
    server.watch(tap, [&device, &server] {
      device.onTapReadable();
      server.busyPoll();
    });
    device.attach(server.transport(), server.stats(),
                  [&server, tap](bool reading) { server.setWatching(tap, reading); });
    SandboxMode mode = parseSandboxMode(resources.sandbox);
    enterSandbox(loadEmbeddedPolicy("virtio-net.policy"), mode, &resources.state->state().sandboxViolation);
    sandboxed = mode != SandboxMode::OFF;
    status = server.run();
  } catch (const std::exception& error) {
    std::cerr << "virtio-net: " << error.what() << '\n';
  }
  if (sandboxed) exitSandboxed(status);
  return status;
}
