// vmctl: the user's tool, in the manner of vm-bhyve's `vm`. Talks to vmmd
// over its control socket (Cap'n Proto RPC).
//
//   vmctl [-S SOCKET] list [-v] [--json] | info NAME | create [-t T] [-s SIZE] [-c N] [-m MEM] NAME
//         | start [-i|-f] NAME | stop NAME | restart NAME | poweroff NAME | destroy [-f] NAME
//         | devices NAME [--json] | console NAME [com1|com2] ("~." detaches, the guest keeps running)
//         | configure NAME | add -d disk -s SIZE NAME | add -d network -s SWITCH NAME | rename NAME NEW |
//         clone NAME NEW | iso [FILE] | img [FILE] | install NAME MEDIUM | datastore list|add|remove | switch
//         list|create|add|remove|destroy
#include <capnp/ez-rpc.h>
#include <fmt/format.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <vector>

#include "cli/host-commands.h"
#include "cli/json.h"
#include "cli/vmmd-socket.h"
#include "control.capnp.h"

namespace {

using cellvisor::cli::jsonString;
using cellvisor::proto::Vmmd;

struct Usage {
  std::string cpu = "-";
  std::string rss = "-";
  std::string uptime = "-";
};

// %CPU since start, resident size and uptime of a running core (from /proc).
Usage processUsage(int pid) {
  Usage usage;
  if (pid <= 0) return usage;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return usage;
  std::istringstream fields(line.substr(line.rfind(')') + 2));
  std::vector<std::string> values;
  for (std::string value; fields >> value;) values.push_back(value);
  if (values.size() < 22) return usage;
  double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
  double cpuSeconds = (std::stod(values[11]) + std::stod(values[12])) / ticks;
  double startedAt = std::stod(values[19]) / ticks;
  std::ifstream uptimeFile("/proc/uptime");
  double systemUptime = 0;
  uptimeFile >> systemUptime;
  double alive = std::max(0.01, systemUptime - startedAt);
  usage.cpu = fmt::format("{:.1f}", 100.0 * cpuSeconds / alive);
  usage.rss = fmt::format("{}M", std::stol(values[21]) * ::sysconf(_SC_PAGESIZE) / (1 << 20));
  int seconds = static_cast<int>(alive);
  usage.uptime = fmt::format("{:02}:{:02}:{:02}", seconds / 3600, seconds / 60 % 60, seconds % 60);
  return usage;
}

// Copies between the terminal and the console socket until "~." at the start
// of a line or the VM closes it.
int attachConsole(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::snprintf(address.sun_path, sizeof(address.sun_path), "%s", path.c_str());
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    std::cerr << "vmctl: cannot attach to " << path << ": " << std::strerror(errno) << '\n';
    return 1;
  }
  termios saved{};
  bool tty = ::isatty(0) && ::tcgetattr(0, &saved) == 0;
  if (tty) {
    termios raw = saved;
    ::cfmakeraw(&raw);
    ::tcsetattr(0, TCSANOW, &raw);
  }
  std::cerr << "vmctl: attached; type ~. to detach\r\n";
  bool lineStart = true;
  bool tilde = false;
  bool input = true;  // Until stdin ends: then only the guest's output is followed.
  for (;;) {
    pollfd fds[2] = {{input ? 0 : -1, POLLIN, 0}, {fd, POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) break;
    char buffer[1024];
    if (fds[1].revents & (POLLIN | POLLHUP)) {
      ssize_t count = ::read(fd, buffer, sizeof(buffer));
      if (count <= 0) break;
      if (::write(1, buffer, static_cast<size_t>(count)) < 0) break;
    }
    if (fds[0].revents & (POLLIN | POLLHUP)) {
      ssize_t count = ::read(0, buffer, sizeof(buffer));
      if (count <= 0) {
        input = false;
        continue;
      }
      bool detach = false;
      std::string out;
      for (ssize_t i = 0; i < count; ++i) {
        char c = buffer[i];
        if (tilde) {
          tilde = false;
          if (c == '.') {
            detach = true;
            break;
          }
          out += '~';
        }
        if (lineStart && c == '~') {
          tilde = true;
          continue;
        }
        out += c;
        lineStart = c == '\r' || c == '\n';
      }
      if (!out.empty() && ::write(fd, out.data(), out.size()) < 0) break;
      if (detach) break;
    }
  }
  if (tty) ::tcsetattr(0, TCSANOW, &saved);
  std::cerr << "\nvmctl: detached\n";
  ::close(fd);
  return 0;
}

// Where a VM's serial port `port` is served (com1 is the console).
std::string consolePath(Vmmd::Client& vmmd, kj::WaitScope& waitScope, const std::string& name,
                        const std::string& port) {
  auto request = vmmd.infoRequest();
  request.setName(name);
  auto response = request.send().wait(waitScope);
  std::string path = response.getVm().getConsolePath();
  if (port == "com1") return path;
  return path.substr(0, path.rfind('/') + 1) + port + ".sock";
}

// `start -f` ends with its VM: ACPI stop, then wait (vmmd powers it off
// after 30 s).
int stopAndWait(Vmmd::Client& vmmd, kj::WaitScope& waitScope, const std::string& name) {
  auto state = [&] {
    auto request = vmmd.infoRequest();
    request.setName(name);
    return std::string(request.send().wait(waitScope).getVm().getState());
  };
  // The console closes when the guest ends: give vmmd a moment to see it.
  for (int i = 0; i < 20 && state() != "stopped"; ++i) ::usleep(50000);
  if (state() == "stopped") return 0;
  auto stop = vmmd.stopRequest();
  stop.setName(name);
  stop.send().wait(waitScope);
  std::cerr << "vmctl: stopping " << name << '\n';
  while (state() != "stopped") ::usleep(100000);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"vmctl: manage cellvisor virtual machines"};
  app.require_subcommand(1);
  const char* fromEnvironment = std::getenv("CELLVISOR_SOCKET");
  std::string socket = fromEnvironment ? fromEnvironment : "/run/cellvisor/vmmd.sock";
  app.add_option("-S,--socket", socket, "vmmd's control socket");
  std::string name;
  bool json = false;
  bool force = false;
  std::string templateName, size, cpus, memory;

  auto* list = app.add_subcommand("list", "list VMs");
  list->add_flag("--json", json);
  auto* info = app.add_subcommand("info", "show a VM");
  info->add_flag("--json", json);
  auto* create = app.add_subcommand("create", "create a VM from a template");
  create->add_option("-t", templateName, "template (default: default)");
  create->add_option("-s", size, "size of disk0");
  create->add_option("-c", cpus, "vCPUs");
  create->add_option("-m", memory, "memory");
  std::string datastoreName;
  create->add_option("-d", datastoreName, "datastore (default: default)");
  auto* start = app.add_subcommand("start", "start a VM");
  bool interactive = false;
  bool foreground = false;
  start->add_flag("-i", interactive, "attach to its console (~. detaches; the guest keeps running)");
  start->add_flag("-f", foreground, "run in the foreground on its console; leaving it stops the VM");
  auto* stop = app.add_subcommand("stop", "ask a VM to shut down (ACPI power button)");
  auto* poweroff = app.add_subcommand("poweroff", "turn a VM off at once");
  auto* destroy = app.add_subcommand("destroy", "delete a VM and its disks");
  destroy->add_flag("-f", force, "even if it is running");
  auto* devices = app.add_subcommand("devices", "a VM's device servers: pid, state, restarts, sandbox");
  devices->add_flag("--json", json);
  auto* console = app.add_subcommand("console", "attach to a VM's serial console (~. detaches)");
  auto* restart = app.add_subcommand("restart", "stop (ACPI) and start a VM again");
  auto* reset = app.add_subcommand("reset", "hard reset: power off and start again");
  auto* init = app.add_subcommand("init", "install the shipped templates into the datastore");
  auto* configure =
      app.add_subcommand("configure", "edit a VM's configuration in $EDITOR (validated on save)");
  auto* add = app.add_subcommand("add", "add a device to a VM");
  std::string addKind;
  std::string addValue;
  add->add_option("-d", addKind, "disk or network (vm-bhyve's words; a size alone means a disk of that size)")
      ->required();
  add->add_option("-s", addValue, "disk: its size; network: its switch");
  std::string addType;
  add->add_option("-t", addType, "disk: virtio-blk (the default), nvme or ahci-hd");
  std::string newName;
  auto* rename = app.add_subcommand("rename", "rename a stopped VM");
  auto* clone = app.add_subcommand("clone", "copy a stopped VM, disks included, under a new name");
  auto* device = app.add_subcommand("device", "act on one device server of a running VM");
  device->require_subcommand(1);
  auto* deviceRestart =
      device->add_subcommand("restart", "restart it (optionally on a new binary: live upgrade)");
  std::string deviceName;
  std::string binary;
  deviceRestart->add_option("name", name, "VM name")->required();
  deviceRestart->add_option("device", deviceName, "device, as vmctl devices names it")->required();
  deviceRestart->add_option("binary", binary, "absolute path of the new server binary");
  bool verbose = false;
  list->add_flag("-v", verbose, "add %CPU, RSZ and UPTIME");
  for (auto* command : {info, create, start, stop, poweroff, destroy, devices, console, restart, reset,
                        configure, add, rename, clone}) {
    command->add_option("name", name, "VM name")->required();
  }
  for (auto* command : {rename, clone}) command->add_option("new-name", newName, "new VM name")->required();
  std::string port = "com1";
  console->add_option("port", port, "com1 (default) or com2")->check(CLI::IsMember({"com1", "com2"}));
  cellvisor::cli::HostCommands hostCommands(app, json);
  CLI11_PARSE(app, argc, argv);

  if (std::string reason = cellvisor::cli::vmmdUnreachableReason(socket); !reason.empty()) {
    std::cerr << "vmctl: " << reason << '\n';
    return 1;
  }
  try {
    capnp::EzRpcClient client("unix:" + socket);
    auto& waitScope = client.getWaitScope();
    Vmmd::Client vmmd = client.getMain<Vmmd>();
    if (auto status = hostCommands.run(vmmd, waitScope)) return *status;
    if (list->parsed()) {
      // The response owns the message the readers point into: keep it alive.
      auto response = vmmd.listRequest().send().wait(waitScope);
      auto vms = response.getVms();
      if (json) {
        std::cout << "[";
        for (unsigned i = 0; i < vms.size(); ++i) {
          auto vm = vms[i];
          std::cout
              << (i ? "," : "")
              << fmt::format(
                     R"({{"name":{},"datastore":{},"loader":{},"cpu":{},"memory":{},"vnc":{},"auto":{},"state":{},"pid":{}}})",
                     jsonString(vm.getName()), jsonString(vm.getDatastore()), jsonString(vm.getLoader()),
                     vm.getCpu(), jsonString(vm.getMemory()), jsonString(vm.getVnc()),
                     vm.getAutostart() ? "true" : "false", jsonString(vm.getState()), vm.getPid());
        }
        std::cout << "]\n";
      } else {
        std::cout << fmt::format("{:<16} {:<24} {:<8} {:<4} {:<8} {:<21} {:<5} {:<18}", "NAME", "DATASTORE",
                                 "LOADER", "CPU", "MEMORY", "VNC", "AUTO", "STATE")
                  << (verbose ? fmt::format(" {:>6} {:>10} {:>10}", "%CPU", "RSZ", "UPTIME") : "") << '\n';
        for (auto vm : vms) {
          std::cout << fmt::format("{:<16} {:<24} {:<8} {:<4} {:<8} {:<21} {:<5} {:<18}", vm.getName().cStr(),
                                   vm.getDatastore().cStr(), vm.getLoader().cStr(), vm.getCpu(),
                                   vm.getMemory().cStr(), vm.getVnc().size() > 0 ? vm.getVnc().cStr() : "-",
                                   vm.getAutostart() ? "Yes" : "No", vm.getState().cStr());
          if (verbose) {
            auto usage = processUsage(vm.getPid());
            std::cout << fmt::format(" {:>6} {:>10} {:>10}", usage.cpu, usage.rss, usage.uptime);
          }
          std::cout << '\n';
        }
      }
    } else if (info->parsed()) {
      auto request = vmmd.infoRequest();
      request.setName(name);
      auto result = request.send().wait(waitScope);
      auto vm = result.getVm();
      std::string resourcesJson;
      for (auto line : vm.getResources())
        resourcesJson += (resourcesJson.empty() ? "" : ",") + jsonString(line);
      if (json) {
        std::cout
            << fmt::format(
                   R"({{"name":{},"datastore":{},"loader":{},"cpu":{},"memory":{},"auto":{},"state":{},"pid":{},)"
                   R"("lastExit":{},"console":{},"vnc":{},"cgroup":{},"cpuMicroseconds":{},"memoryBytes":{},)"
                   R"("resources":[{}],"config":{}}})",
                   jsonString(vm.getName()), jsonString(vm.getDatastore()), jsonString(vm.getLoader()),
                   vm.getCpu(), jsonString(vm.getMemory()), vm.getAutostart() ? "true" : "false",
                   jsonString(vm.getState()), vm.getPid(), jsonString(vm.getLastExit()),
                   jsonString(vm.getConsolePath()), jsonString(vm.getVnc()), jsonString(vm.getCgroup()),
                   vm.getCpuMicroseconds(), vm.getMemoryBytes(), resourcesJson,
                   jsonString(result.getConfig()))
            << '\n';
        return 0;
      }
      std::cout
          << fmt::format("------------------------\nVirtual Machine: {}\n------------------------\n",
                         vm.getName().cStr())
          << fmt::format(
                 "  datastore: {}\n  loader: {}\n  cpu: {}\n  memory: {}\n  state: {}\n  last exit: {}\n"
                 "  console: {}\n\n",
                 vm.getDatastore().cStr(), vm.getLoader().cStr(), vm.getCpu(), vm.getMemory().cStr(),
                 vm.getState().cStr(), vm.getLastExit().cStr(), vm.getConsolePath().cStr());
      if (vm.getVnc().size() > 0) std::cout << fmt::format("  vnc: {}\n", vm.getVnc().cStr());
      if (vm.hasCgroup() && vm.getCgroup().size() > 0) {
        std::cout << fmt::format("  cgroup: {}\n", vm.getCgroup().cStr());
        for (auto line : vm.getResources()) std::cout << "    " << line.cStr() << '\n';
        std::cout << '\n';
      }
      std::cout << "  configuration:\n";
      std::string config = result.getConfig();
      for (size_t at = 0, end; at < config.size(); at = end + 1) {
        end = config.find('\n', at);
        if (end == std::string::npos) end = config.size();
        std::cout << "    " << config.substr(at, end - at) << '\n';
      }
    } else if (create->parsed()) {
      auto request = vmmd.createRequest();
      request.setName(name);
      request.setTemplate(templateName);
      request.setCpus(cpus);
      request.setMemory(memory);
      request.setDiskSize(size);
      request.setDatastore(datastoreName);
      auto reply = request.send().wait(waitScope);
      for (auto warning : reply.getWarnings()) std::cerr << "warning: " << warning.cStr() << '\n';
    } else if (start->parsed() || stop->parsed() || poweroff->parsed()) {
      if (start->parsed()) {
        auto request = vmmd.startRequest();
        request.setName(name);
        request.send().wait(waitScope);
        std::cout << "Starting " << name << '\n';
        if (interactive || foreground) {
          // vmmd made the console socket before it answered.
          int status = attachConsole(consolePath(vmmd, waitScope, name, "com1"));
          if (foreground) status = stopAndWait(vmmd, waitScope, name);
          return status;
        }
      } else if (stop->parsed()) {
        auto request = vmmd.stopRequest();
        request.setName(name);
        request.send().wait(waitScope);
        std::cout << "Sending ACPI shutdown to " << name << '\n';
      } else {
        auto request = vmmd.poweroffRequest();
        request.setName(name);
        request.send().wait(waitScope);
      }
    } else if (destroy->parsed()) {
      auto request = vmmd.destroyRequest();
      request.setName(name);
      request.setForce(force);
      request.send().wait(waitScope);
    } else if (devices->parsed()) {
      auto request = vmmd.devicesRequest();
      request.setName(name);
      auto response = request.send().wait(waitScope);
      auto list = response.getDevices();
      if (json) {
        std::cout << "[";
        for (unsigned i = 0; i < list.size(); ++i) {
          auto d = list[i];
          std::cout
              << (i ? "," : "")
              << fmt::format(
                     R"({{"name":{},"pid":{},"state":{},"restarts":{},"lastExit":{},"policy":{},"sandbox":{},"lastViolation":{},)"
                     R"("backend":{}}})",
                     jsonString(d.getName()), d.getPid(), jsonString(d.getState()), d.getRestarts(),
                     jsonString(d.getLastExit()), jsonString(d.getPolicy()), jsonString(d.getSandbox()),
                     jsonString(d.getLastViolation()), jsonString(d.getBackend()));
        }
        std::cout << "]\n";
      } else {
        std::cout << fmt::format("{:<18} {:<8} {:<10} {:<8} {:<20} {:<10} {:<30} {}\n", "DEVICE", "PID",
                                 "STATE", "RESTARTS", "POLICY", "SANDBOX", "BACKEND", "LAST EXIT");
        for (auto d : list) {
          std::cout << fmt::format(
              "{:<18} {:<8} {:<10} {:<8} {:<20} {:<10} {:<30} {}{}\n", d.getName().cStr(), d.getPid(),
              d.getState().cStr(), d.getRestarts(), d.getPolicy().cStr(), d.getSandbox().cStr(),
              d.getBackend().cStr(), d.getLastExit().cStr(),
              d.getLastViolation().size() ? std::string(" [violation: ") + d.getLastViolation().cStr() + "]"
                                          : "");
        }
      }
    } else if (deviceRestart->parsed()) {
      auto request = vmmd.restartDeviceRequest();
      request.setName(name);
      request.setDevice(deviceName);
      request.setBinary(binary);
      request.send().wait(waitScope);
      std::cout << "Restarting " << deviceName << " of " << name << (binary.empty() ? "" : " on " + binary)
                << '\n';
    } else if (reset->parsed()) {
      auto request = vmmd.resetRequest();
      request.setName(name);
      request.send().wait(waitScope);
      std::cout << "Reset " << name << '\n';
    } else if (init->parsed()) {
      auto response = vmmd.initRequest().send().wait(waitScope);
      auto installed = response.getInstalled();
      for (auto name : installed) std::cout << "Installed template " << name.cStr() << '\n';
    } else if (restart->parsed()) {
      auto request = vmmd.restartRequest();
      request.setName(name);
      request.send().wait(waitScope);
      std::cout << "Restarted " << name << '\n';
    } else if (rename->parsed()) {
      auto request = vmmd.renameRequest();
      request.setName(name);
      request.setNewName(newName);
      request.send().wait(waitScope);
    } else if (clone->parsed()) {
      auto request = vmmd.cloneRequest();
      request.setName(name);
      request.setNewName(newName);
      request.send().wait(waitScope);
    } else if (add->parsed()) {
      if (addKind == "network") {
        auto request = vmmd.addNetworkRequest();
        request.setName(name);
        request.setSwitch(addValue);
        auto response = request.send().wait(waitScope);
        std::cout << "Added " << response.getNetwork().cStr() << " to " << name << " on switch " << addValue
                  << '\n';
      } else {
        auto request = vmmd.addDiskRequest();
        request.setName(name);
        request.setSize(addKind == "disk" ? addValue : addKind);
        request.setType(addType);
        auto response = request.send().wait(waitScope);
        std::cout << "Added " << response.getDisk().cStr() << " to " << name << '\n';
      }
    } else if (configure->parsed()) {
      auto request = vmmd.infoRequest();
      request.setName(name);
      auto response = request.send().wait(waitScope);
      std::string text = response.getConfig();
      // Edit a private copy; send it back only if it changed. vmmd validates
      // it: a refused edit changes nothing and says why.
      char path[] = "/tmp/vmctl-configure-XXXXXX.conf";
      int fd = ::mkstemps(path, 5);
      if (fd < 0 || ::write(fd, text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
        std::cerr << "vmctl: cannot write a temporary file\n";
        return 1;
      }
      ::close(fd);
      const char* editor = std::getenv("EDITOR");
      std::string command = std::string(editor && *editor ? editor : "vi") + " '" + path + "'";
      int edited = std::system(command.c_str());
      std::ifstream file(path);
      std::stringstream updated;
      updated << file.rdbuf();
      ::unlink(path);
      if (edited != 0) {
        std::cerr << "vmctl: editor failed; nothing changed\n";
        return 1;
      }
      if (updated.str() == text) return 0;
      auto save = vmmd.configureRequest();
      save.setName(name);
      save.setConfig(updated.str());
      save.send().wait(waitScope);
    } else if (console->parsed()) {
      return attachConsole(consolePath(vmmd, waitScope, name, port));
    }
  } catch (const kj::Exception& error) {
    std::string message = error.getDescription().cStr();
    // Strip the RPC layer's prefix: the user wants vmmd's message.
    auto at = message.find("remote exception: ");
    if (at != std::string::npos) message = message.substr(at + 18);
    std::cerr << "vmctl: " << message << '\n';
    return 1;
  }
  return 0;
}
