#include "cli/host-commands.h"

#include <fmt/format.h>

#include <filesystem>
#include <iostream>

#include "cli/json.h"

namespace cellvisor::cli {
namespace {

std::string humanSize(uint64_t bytes) {
  const char* units[] = {"B", "K", "M", "G", "T"};
  double size = static_cast<double>(bytes);
  int unit = 0;
  while (size >= 1024 && unit < 4) {
    size /= 1024;
    ++unit;
  }
  return unit == 0 ? fmt::format("{}B", bytes) : fmt::format("{:.1f}{}", size, units[unit]);
}

}  // namespace

HostCommands::HostCommands(CLI::App& app, bool& json) : json_(json) {
  iso_ = app.add_subcommand("iso", "list ISO images in .iso/, or import a local one");
  img_ = app.add_subcommand("img", "list disk images and kernels in .img/, or import a local one");
  for (auto* command : {iso_, img_}) {
    command->add_option("file", file_, "a local file to copy in");
    command->add_flag("--json", json_);
  }
  install_ =
      app.add_subcommand("install", "boot a stopped VM from an ISO (attached for this boot) or a kernel");
  install_->add_option("name", name_, "VM name")->required();
  install_->add_option("medium", file_, "a name in .iso/ or .img/, or an absolute path")->required();

  datastore_ = app.add_subcommand("datastore", "list, add or remove datastores");
  datastore_->require_subcommand(1);
  datastoreList_ = datastore_->add_subcommand("list", "list datastores");
  datastoreList_->add_flag("--json", json_);
  datastoreAdd_ = datastore_->add_subcommand("add", "register a directory as a datastore");
  datastoreAdd_->add_option("name", name_, "datastore name")->required();
  datastoreAdd_->add_option("path", path_, "directory (created if missing)")->required();
  datastoreRemove_ = datastore_->add_subcommand("remove", "forget a datastore (its files stay)");
  datastoreRemove_->add_option("name", name_, "datastore name")->required();

  switch_ = app.add_subcommand("switch", "virtual switches (Linux bridges)");
  switch_->require_subcommand(1);
  switchList_ = switch_->add_subcommand("list", "list switches");
  switchList_->add_flag("--json", json_);
  switchCreate_ = switch_->add_subcommand("create", "create a switch");
  switchCreate_->add_option("-t", type_, "standard (a new bridge vm-NAME) or manual (an existing bridge)");
  switchCreate_->add_option("-b", bridge_, "manual: the bridge to use");
  switchCreate_->add_option("-a", address_, "standard: an address for the bridge, e.g. 10.0.0.1/24");
  switchCreate_->add_option("-m", mtu_, "standard: MTU");
  switchAdd_ = switch_->add_subcommand("add", "add a host interface to a switch");
  switchRemove_ = switch_->add_subcommand("remove", "take a host interface out of a switch");
  for (auto* command : {switchAdd_, switchRemove_}) {
    command->add_option("name", name_, "switch name")->required();
    command->add_option("interface", port_, "host interface")->required();
  }
  switchDestroy_ = switch_->add_subcommand("destroy", "remove a switch and its bridge");
  for (auto* command : {switchCreate_, switchDestroy_})
    command->add_option("name", name_, "switch name")->required();
}

std::optional<int> HostCommands::run(proto::Vmmd::Client& vmmd, kj::WaitScope& waitScope) {
  if (iso_->parsed()) return media(vmmd, waitScope, "iso");
  if (img_->parsed()) return media(vmmd, waitScope, "img");
  if (install_->parsed()) {
    auto request = vmmd.installRequest();
    request.setName(name_);
    request.setMedium(file_);
    auto response = request.send().wait(waitScope);
    if (std::string(response.getKind()) == "iso") {
      fmt::print("Starting {} from {} (attached read-only for this boot)\n", name_, file_);
    } else {
      fmt::print("Starting {} on kernel {} (kept in its configuration)\n", name_, file_);
    }
    return 0;
  }
  if (datastore_->parsed()) return datastore(vmmd, waitScope);
  if (switch_->parsed()) return virtualSwitch(vmmd, waitScope);
  return std::nullopt;
}

int HostCommands::media(proto::Vmmd::Client& vmmd, kj::WaitScope& waitScope, const std::string& kind) {
  if (!file_.empty()) {
    auto request = vmmd.importMediaRequest();
    request.setKind(kind);
    request.setPath(std::filesystem::absolute(file_).string());
    auto response = request.send().wait(waitScope);
    fmt::print("Imported {} into .{}/\n", response.getName().cStr(), kind);
    return 0;
  }
  auto request = vmmd.mediaRequest();
  request.setKind(kind);
  auto response = request.send().wait(waitScope);
  if (json_) {
    printJsonArray(response.getFiles(), [](auto file) {
      return fmt::format(R"({{"name":{},"size":{}}})", jsonString(file.getName()), file.getSize());
    });
    return 0;
  }
  fmt::print("{:<48} {:>10}\n", "FILENAME", "SIZE");
  for (auto file : response.getFiles())
    fmt::print("{:<48} {:>10}\n", file.getName().cStr(), humanSize(file.getSize()));
  return 0;
}

int HostCommands::datastore(proto::Vmmd::Client& vmmd, kj::WaitScope& waitScope) {
  if (datastoreAdd_->parsed()) {
    auto request = vmmd.addDatastoreRequest();
    request.setName(name_);
    request.setPath(std::filesystem::absolute(path_).string());
    request.send().wait(waitScope);
    return 0;
  }
  if (datastoreRemove_->parsed()) {
    auto request = vmmd.removeDatastoreRequest();
    request.setName(name_);
    request.send().wait(waitScope);
    return 0;
  }
  auto response = vmmd.datastoresRequest().send().wait(waitScope);
  if (json_) {
    printJsonArray(response.getDatastores(), [](auto store) {
      return fmt::format(R"({{"name":{},"type":"directory","path":{},"vms":{}}})",
                         jsonString(store.getName()), jsonString(store.getPath()), store.getVms());
    });
    return 0;
  }
  fmt::print("{:<16} {:<10} {:<40} {:>4}\n", "NAME", "TYPE", "PATH", "VMS");
  for (auto store : response.getDatastores()) {
    fmt::print("{:<16} {:<10} {:<40} {:>4}\n", store.getName().cStr(), "directory", store.getPath().cStr(),
               store.getVms());
  }
  return 0;
}

int HostCommands::virtualSwitch(proto::Vmmd::Client& vmmd, kj::WaitScope& waitScope) {
  if (switchCreate_->parsed()) {
    auto request = vmmd.createSwitchRequest();
    request.setName(name_);
    request.setType(type_);
    request.setBridge(bridge_);
    request.setAddress(address_);
    request.setMtu(mtu_);
    request.send().wait(waitScope);
    return 0;
  }
  if (switchAdd_->parsed() || switchRemove_->parsed()) {
    if (switchAdd_->parsed()) {
      auto request = vmmd.addSwitchPortRequest();
      request.setName(name_);
      request.setPort(port_);
      request.send().wait(waitScope);
    } else {
      auto request = vmmd.removeSwitchPortRequest();
      request.setName(name_);
      request.setPort(port_);
      request.send().wait(waitScope);
    }
    return 0;
  }
  if (switchDestroy_->parsed()) {
    auto request = vmmd.destroySwitchRequest();
    request.setName(name_);
    request.send().wait(waitScope);
    return 0;
  }
  auto response = vmmd.switchesRequest().send().wait(waitScope);
  auto ports = [](auto list) {
    std::string joined;
    for (auto port : list.getPorts()) joined += (joined.empty() ? "" : ",") + std::string(port.cStr());
    return joined;
  };
  if (json_) {
    printJsonArray(response.getSwitches(), [&](auto entry) {
      std::string portList;
      for (auto port : entry.getPorts()) portList += (portList.empty() ? "" : ",") + jsonString(port);
      return fmt::format(
          R"({{"name":{},"type":{},"bridge":{},"address":{},"mtu":{},"ports":[{}],"present":{},"up":{}}})",
          jsonString(entry.getName()), jsonString(entry.getType()), jsonString(entry.getBridge()),
          jsonString(entry.getAddress()), entry.getMtu(), portList, entry.getPresent() ? "true" : "false",
          entry.getUp() ? "true" : "false");
    });
    return 0;
  }
  fmt::print("{:<14} {:<10} {:<16} {:<20} {:<6} {:<8} {}\n", "NAME", "TYPE", "IFACE", "ADDRESS", "MTU",
             "STATE", "PORTS");
  for (auto entry : response.getSwitches()) {
    std::string state = !entry.getPresent() ? "missing" : entry.getUp() ? "up" : "down";
    fmt::print("{:<14} {:<10} {:<16} {:<20} {:<6} {:<8} {}\n", entry.getName().cStr(), entry.getType().cStr(),
               entry.getBridge().cStr(), entry.getAddress().size() ? entry.getAddress().cStr() : "-",
               entry.getMtu() ? std::to_string(entry.getMtu()) : "-", state, ports(entry));
  }
  return 0;
}

}  // namespace cellvisor::cli
