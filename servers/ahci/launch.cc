// AHCI's launch descriptors: bhyve's three spellings (ahci-hd, ahci-cd, and
// the controller form ahci with hd:/cd: ports) share one server. The
// spawner parses the options, opens the port's image (read-only for a CD),
// and gives the server one MSI-X vector.
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
  prepared.backend = openAhciBackend(options, context.where + ": " + options.path);
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
      .bootPathSuffix = "/drive@0/disk@0",  // Port 0's device.
      .prepare = [emulation](const LaunchContext& context) { return prepare(emulation, context); },
  };
}

const ServerKindRegistration controller{kind("ahci", ConfigRole::NONE, "")};
const ServerKindRegistration disk{kind("ahci-hd", ConfigRole::DISK, "ahci-hd")};
const ServerKindRegistration cd{kind("ahci-cd", ConfigRole::NONE, "")};

}  // namespace
}  // namespace cellvisor
