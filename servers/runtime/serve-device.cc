#include "servers/runtime/serve-device.h"

#include <iostream>

#include "proto/bootstrap-fds.h"
#include "sandbox/sandbox.h"

namespace cellvisor {

int SandboxedServe::operator()(DeviceServer& server) {
  SandboxMode mode = parseSandboxMode(resources_.sandbox);
  enterSandbox(loadEnforcedPolicy(policyName_, policyText_), mode,
               &resources_.state->header().sandboxViolation);
  sandboxed_ = mode != SandboxMode::OFF;
  return server.run();
}

int serveDevice(std::string_view name, std::string_view policyName, std::string_view policyText,
                const std::function<int(ServerResources&, SandboxedServe&)>& setUp) {
  int status = 1;
  bool sandboxed = false;
  try {
    ServerResources resources = receiveServerResources(BOOTSTRAP_FD);
    SandboxedServe serve(resources, policyName, policyText);
    try {
      status = setUp(resources, serve);
    } catch (...) {
      sandboxed = serve.sandboxed_;
      throw;
    }
    sandboxed = serve.sandboxed_;
  } catch (const std::exception& error) {
    std::cerr << name << ": " << error.what() << '\n';
  }
  // Once sandboxed, the device's objects are gone and at-exit handlers
  // would make calls the filter forbids.
  if (sandboxed) exitSandboxed(status);
  return status;
}

}  // namespace cellvisor
