// AHCI's launch descriptors: bhyve's three spellings (ahci-hd, ahci-cd, and
// the controller form ahci with hd:/cd: ports) share one server. The
// spawner parses the options, opens each port's image (read-only for a CD)
// in port order, and gives the server one interrupt vector.
#include <fmt/format.h>

#include <stdexcept>
#include <string>

#include "ahci-policy.h"
#include "host/server-kind.h"
#include "servers/ahci/ahci-options.h"

namespace cellvisor {
namespace {

PreparedServer prepare(const std::string& emulation, const LaunchContext& context) {
  AhciOptions options;
  try {
    options = parseAhciOptions(emulation, context.options);
  } catch (const std::invalid_argument& error) {
    throw std::invalid_argument(context.where + ": " + error.what());
  }
  PreparedServer prepared;
  for (size_t i = 0; i < options.ports.size(); ++i) {
    std::string name =
        options.ports.size() > 1 ? fmt::format("{}: port {}: ", context.where, i) : context.where + ": ";
    prepared.backends.push_back(openAhciBackend(options.ports[i], name + options.ports[i].path));
  }
  prepared.options = formatAhciOptions(options);
  prepared.doorbells = 0;  // PxCI writes carry which slots: register writes, not doorbells.
  prepared.vectors = 1;
  return prepared;
}

ServerKind kind(const std::string& emulation, ConfigRole role, const std::string& configType) {
  return ServerKind{
      .emulation = emulation,
      .binary = "ahci-server",
      .folder = "ahci",
      .policyName = "ahci.policy",
      .policyText = policies::AHCI_POLICY,
      .role = role,
      .configType = configType,
      // Port 0's device: a slot's bootindex names it (SeaBIOS's path for
      // port N, device 0).
      .bootPathSuffix = "/drive@0/disk@0",
      .prepare = [emulation](const LaunchContext& context) { return prepare(emulation, context); },
  };
}

const ServerKindRegistration controller{kind("ahci", ConfigRole::NONE, "")};
const ServerKindRegistration disk{kind("ahci-hd", ConfigRole::DISK, "ahci-hd")};
const ServerKindRegistration cd{kind("ahci-cd", ConfigRole::NONE, "")};

}  // namespace
}  // namespace cellvisor
