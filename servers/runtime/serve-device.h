// The sequence every device server's main runs, once: take the resources
// from the spawner (the bootstrap socket on fd 3), let the device set itself
// up, enter the sandbox with the device's policy, serve until the core goes
// away, and exit without at-exit handlers once sandboxed.
//
//   int main() {
//     return serveDevice("virtio-blk", "virtio-blk.policy", policies::VIRTIO_BLK_POLICY,
//                        [](ServerResources& resources, SandboxedServe& serve) {
//                          ... build the device and its DeviceServer ...
//                          return serve(server);
//                        });
//   }
#pragma once

#include <functional>
#include <string_view>

#include "servers/runtime/device-server.h"
#include "servers/runtime/server-resources.h"

namespace cellvisor {

class SandboxedServe {
 public:
  // Enters the sandbox (everything is set up: from here on the server only
  // serves) and runs `server`; returns its exit status.
  int operator()(DeviceServer& server);

 private:
  friend int serveDevice(std::string_view, std::string_view, std::string_view,
                         const std::function<int(ServerResources&, SandboxedServe&)>&);
  SandboxedServe(ServerResources& resources, std::string_view policyName, std::string_view policyText)
      : resources_(resources), policyName_(policyName), policyText_(policyText) {}
  ServerResources& resources_;
  std::string_view policyName_;
  std::string_view policyText_;
  bool sandboxed_ = false;
};

// Returns the process exit status (errors are printed as "NAME: what").
int serveDevice(std::string_view name, std::string_view policyName, std::string_view policyText,
                const std::function<int(ServerResources&, SandboxedServe&)>& setUp);

}  // namespace cellvisor
