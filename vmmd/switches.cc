#include "vmmd/switches.h"

#include <algorithm>
#include <regex>

#include "vmmd/datastore.h"
#include "vmmd/netlink-links.h"
#include "vmmd/system-config.h"

namespace cellvisor {
namespace {

std::string standardBridge(const std::string& name) {
  return "vm-" + name;
}

bool isValidInterfaceName(const std::string& name) {
  static const std::regex valid(R"([A-Za-z0-9][A-Za-z0-9._-]{0,14})");
  return std::regex_match(name, valid);
}

}  // namespace

bool isValidSwitchName(const std::string& name) {
  static const std::regex valid(R"([A-Za-z0-9][A-Za-z0-9_-]{0,11})");
  return std::regex_match(name, valid);
}

SwitchInfo Switches::describe(const SystemConfig& config, NetlinkLinks& links, const std::string& name) {
  SwitchInfo info;
  info.name = name;
  info.type = config.get("type_" + name).value_or("standard");
  info.bridge = info.type == "manual" ? config.get("bridge_" + name).value_or("") : standardBridge(name);
  info.address = config.get("addr_" + name).value_or("");
  info.mtu = static_cast<unsigned>(std::stoul(config.get("mtu_" + name).value_or("0")));
  info.ports = config.words("ports_" + name);
  if (!info.bridge.empty()) {
    if (auto state = links.find(info.bridge)) {
      info.present = true;
      info.up = state->up;
    }
  }
  return info;
}

std::vector<std::string> Switches::requireSwitch(const SystemConfig& config, const std::string& name) {
  auto names = config.words("switch_list");
  if (std::find(names.begin(), names.end(), name) == names.end())
    throw DatastoreError("no switch named '" + name + "'");
  return names;
}

bool Switches::has(const std::string& name) const {
  auto names = SystemConfig::load(path_).words("switch_list");
  return std::find(names.begin(), names.end(), name) != names.end();
}

std::vector<SwitchInfo> Switches::list() const {
  SystemConfig config = SystemConfig::load(path_);
  NetlinkLinks links;
  std::vector<SwitchInfo> switches;
  for (const auto& name : config.words("switch_list")) switches.push_back(describe(config, links, name));
  return switches;
}

void Switches::create(const std::string& name, const std::string& type, const std::string& bridge,
                      const std::string& address, unsigned mtu) {
  if (!isValidSwitchName(name)) {
    throw DatastoreError("invalid switch name '" + name + "' (letters, digits, '_', '-'; at most 12)");
  }
  SystemConfig config = SystemConfig::load(path_);
  auto names = config.words("switch_list");
  if (std::find(names.begin(), names.end(), name) != names.end())
    throw DatastoreError("switch '" + name + "' exists");
  NetlinkLinks links;
  if (type == "manual") {
    if (!isValidInterfaceName(bridge)) throw DatastoreError("a manual switch needs its bridge's name (-b)");
    auto state = links.find(bridge);
    if (!state || state->kind != "bridge") throw DatastoreError(bridge + " is not a bridge on this host");
    config.set("type_" + name, "manual");
    config.set("bridge_" + name, bridge);
  } else if (type == "standard" || type.empty()) {
    if (!bridge.empty()) throw DatastoreError("a standard switch makes its own bridge (vm-" + name + ")");
    if (links.find(standardBridge(name)))
      throw DatastoreError(standardBridge(name) + " already exists on this host");
    links.create(standardBridge(name), "bridge");
    try {
      if (mtu != 0) links.setMtu(standardBridge(name), mtu);
      if (!address.empty()) links.addAddress(standardBridge(name), address);
    } catch (...) {
      links.remove(standardBridge(name));
      throw;
    }
    config.set("type_" + name, "standard");
    if (!address.empty()) config.set("addr_" + name, address);
    if (mtu != 0) config.set("mtu_" + name, std::to_string(mtu));
  } else {
    throw DatastoreError("unknown switch type '" + type + "' (standard or manual)");
  }
  names.push_back(name);
  config.setWords("switch_list", names);
  try {
    config.save();
  } catch (...) {
    if (type != "manual") links.remove(standardBridge(name));
    throw;
  }
}

void Switches::addPort(const std::string& name, const std::string& port) {
  SystemConfig config = SystemConfig::load(path_);
  auto names = requireSwitch(config, name);
  if (!isValidInterfaceName(port)) throw DatastoreError("invalid interface name '" + port + "'");
  for (const auto& other : names) {
    auto ports = config.words("ports_" + other);
    if (std::find(ports.begin(), ports.end(), port) != ports.end()) {
      throw DatastoreError(port + " is already a port of switch '" + other + "'");
    }
  }
  NetlinkLinks links;
  if (!links.find(port)) throw DatastoreError("no interface " + port + " on this host");
  links.attach(port, describe(config, links, name).bridge);
  auto ports = config.words("ports_" + name);
  ports.push_back(port);
  config.setWords("ports_" + name, ports);
  config.save();
}

void Switches::removePort(const std::string& name, const std::string& port) {
  SystemConfig config = SystemConfig::load(path_);
  auto ports = config.words("ports_" + name);
  auto found = std::find(ports.begin(), ports.end(), port);
  if (found == ports.end()) throw DatastoreError(port + " is not a port of switch '" + name + "'");
  NetlinkLinks links;
  if (links.find(port)) links.detach(port);
  ports.erase(found);
  config.setWords("ports_" + name, ports);
  config.save();
}

void Switches::destroy(const std::string& name) {
  SystemConfig config = SystemConfig::load(path_);
  auto names = requireSwitch(config, name);
  NetlinkLinks links;
  SwitchInfo info = describe(config, links, name);
  for (const auto& port : info.ports) {
    if (links.find(port)) links.detach(port);
  }
  if (info.type != "manual" && info.present) links.remove(info.bridge);
  std::erase(names, name);
  config.setWords("switch_list", names);
  for (const char* key : {"type_", "ports_", "addr_", "mtu_", "bridge_"}) config.erase(key + name);
  config.save();
}

std::string Switches::bridgeOf(const std::string& name) const {
  SystemConfig config = SystemConfig::load(path_);
  requireSwitch(config, name);
  NetlinkLinks links;
  SwitchInfo info = describe(config, links, name);
  if (!info.present) throw DatastoreError("switch '" + name + "': bridge " + info.bridge + " is missing");
  return info.bridge;
}

std::vector<std::string> Switches::apply() {
  std::vector<std::string> problems;
  NetlinkLinks links;
  for (const auto& info : list()) {
    try {
      if (info.type != "manual" && !info.present) {
        links.create(info.bridge, "bridge");
        if (info.mtu != 0) links.setMtu(info.bridge, info.mtu);
        if (!info.address.empty()) links.addAddress(info.bridge, info.address);
      }
      for (const auto& port : info.ports) {
        if (links.find(port)) {
          links.attach(port, info.bridge);
        } else {
          problems.push_back("switch " + info.name + ": port " + port + " is missing");
        }
      }
    } catch (const std::exception& error) {
      problems.push_back("switch " + info.name + ": " + error.what());
    }
  }
  return problems;
}

}  // namespace cellvisor
