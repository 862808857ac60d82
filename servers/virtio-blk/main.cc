// virtio-blk device server. Started by the spawner with its bootstrap socket
// on fd 3; everything else (guest RAM, rings, eventfds, the opened disk
// image) arrives over that socket.
#include <iostream>

#include "servers/runtime/block-backend.h"
#include "servers/runtime/device-server.h"
#include "servers/runtime/sandbox.h"
#include "servers/runtime/server-resources.h"
#include "servers/virtio-blk/blk-device.h"

int main() {
  using namespace cellvisor;
  constexpr int BOOTSTRAP_FD = 3;
  bool sandboxed = false;
  int status = 1;
  try {
    ServerResources resources = receiveServerResources(BOOTSTRAP_FD);
    BlkOptions options = parseBlkOptions(resources.options);
    if (!resources.backend) throw std::runtime_error("no disk image descriptor");
    // One io_uring for all queues, asked to be deep enough for every queue
    // to be full; it bounds itself, and what is beyond waits its turn.
    BlockBackend backend(std::move(resources.backend), std::max(64u, 2u * options.queues * options.queueSize),
                         options.readOnly);
    BlkDevice device(options, backend);
    DeviceServer server("virtio-blk:" + resources.deviceName, resources, device);
    device.attach(server.transport(), server.stats());
    server.setPollMicros(options.pollMicros);
    server.watch(device.completionFd(), [&device] { device.onCompletions(); });
    server.setFaultInjector([&backend](const std::string& fault) { return backend.injectFault(fault); });
    // Set up; from here on the server only serves: enter the sandbox.
    SandboxMode mode = parseSandboxMode(resources.sandbox);
    enterSandbox(loadEmbeddedPolicy("virtio-blk.policy"), mode, &resources.state->state().sandboxViolation);
    sandboxed = mode != SandboxMode::OFF;
    status = server.run();
  } catch (const std::exception& error) {
    std::cerr << "virtio-blk: " << error.what() << '\n';
  }
  if (sandboxed) exitSandboxed(status);
  return status;
}
