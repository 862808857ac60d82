// vm-bhyve's virtual switches on Linux: a "standard" switch is a bridge
// named vm-NAME that vmmd creates (with an optional address and MTU) and
// deletes; a "manual" switch names a bridge the administrator manages.
// Ports are host interfaces joined to the bridge (VM taps join when VMs
// with networkN_switch start). The switches live in .config/system.conf
// (switch_list, type_NAME, ports_NAME, addr_NAME, mtu_NAME, bridge_NAME);
// bridges do not survive a host reboot, so vmmd recreates them at start.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace cellvisor {

class NetlinkLinks;
class SystemConfig;

struct SwitchInfo {
  std::string name;
  std::string type;                // standard | manual
  std::string bridge;              // the Linux bridge behind it
  std::string address;             // CIDR, standard switches only
  unsigned mtu = 0;                // 0: the kernel's default
  std::vector<std::string> ports;  // configured
  bool present = false;            // the bridge exists now
  bool up = false;
};

class Switches {
 public:
  explicit Switches(std::filesystem::path systemConfig) : path_(std::move(systemConfig)) {}

  std::vector<SwitchInfo> list() const;
  bool has(const std::string& name) const;
  // Throws DatastoreError (bad name, exists, bad address) or NetlinkError.
  void create(const std::string& name, const std::string& type, const std::string& bridge,
              const std::string& address, unsigned mtu);
  void addPort(const std::string& name, const std::string& port);
  void removePort(const std::string& name, const std::string& port);
  void destroy(const std::string& name);
  // Creates what the config has and the host lacks (after a reboot), and
  // joins the configured ports. Returns one line per problem.
  std::vector<std::string> apply();
  // The bridge behind switch `name` (a VM's tap joins it). Throws
  // DatastoreError when there is no such switch or its bridge is missing.
  std::string bridgeOf(const std::string& name) const;

 private:
  // Switch `name` as the loaded config has it, and its bridge as the host does.
  static SwitchInfo describe(const SystemConfig& config, NetlinkLinks& links, const std::string& name);
  // The configured switches; throws DatastoreError if `name` is not one.
  static std::vector<std::string> requireSwitch(const SystemConfig& config, const std::string& name);
  std::filesystem::path path_;
};

// Letters, digits, '_' and '-', at most 12: "vm-" + name must fit IFNAMSIZ.
bool isValidSwitchName(const std::string& name);

}  // namespace cellvisor
