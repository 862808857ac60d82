// vmm-core: runs one VM, with arguments in the style of bhyve(8):
//   vmm-core -c 2 -m 512M -l com1,stdio -s 0,hostbridge -s 31,lpc
//            --kernel guest.elf --cmdline "test=hello" NAME
// Every option also has a config key (-o key=value, -k FILE), as in bhyve.
// Exit status: 0 reboot, 1 poweroff, 2 halt, 3 triple fault, 4 error; a
// guest write of V to the debug-exit port gives (V << 1) | 1.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "core/boot/load-error.h"
#include "core/machine/machine-config.h"
#include "core/machine/machine.h"

namespace {

using cellvisor::ConfigError;
using cellvisor::ConfigStore;

// "-s 3,hostbridge" / "-s 3:1,lpc,opts" -> pci.0.3.1.device=... (bhyve's form).
void addSlot(ConfigStore& store, const std::string& spec) {
  auto comma = spec.find(',');
  if (comma == std::string::npos) throw ConfigError("-s " + spec + ": expected slot,emulation[,options]");
  std::string where = spec.substr(0, comma);
  std::string rest = spec.substr(comma + 1);
  std::string slot = where;
  std::string function = "0";
  if (auto colon = where.find(':'); colon != std::string::npos) {
    slot = where.substr(0, colon);
    function = where.substr(colon + 1);
  }
  auto optionsAt = rest.find(',');
  std::string origin = "-s " + spec;
  std::string prefix = fmt::format("pci.0.{}.{}", slot, function);
  store.set(prefix + ".device", rest.substr(0, optionsAt), origin);
  if (optionsAt != std::string::npos) store.set(prefix + ".options", rest.substr(optionsAt + 1), origin);
}

// "-l com1,stdio" -> lpc.com1.path=stdio.
void addLpc(ConfigStore& store, const std::string& spec) {
  auto comma = spec.find(',');
  if (comma == std::string::npos) throw ConfigError("-l " + spec + ": expected com1|com2,BACKEND");
  store.set("lpc." + spec.substr(0, comma) + ".path", spec.substr(comma + 1), "-l " + spec);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"cellvisor VM core: runs one virtual machine on KVM"};
  std::string cpus;
  std::string memory;
  std::vector<std::string> lpcDevices;
  std::vector<std::string> slots;
  std::vector<std::string> configFiles;
  std::vector<std::string> overrides;
  std::string kernel;
  std::string initrd;
  std::string cmdline;
  std::string cpuidMask;
  std::string name;
  bool utc = false;
  bool destroyOnPoweroff = false;
  bool cmdlineGiven = false;
  bool traceBoot = false;
  std::string sandbox;
  int statusFd = -1;
  int deviceSocket = -1;
  app.add_option("-c", cpus, "vCPUs: N or cpus=N")->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.add_option("-m", memory, "guest memory, e.g. 512M or 2G (no suffix: MiB)")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.add_option("-l", lpcDevices,
                 "LPC device: com1,BACKEND or com2,BACKEND (stdio, pty, file=PATH, unix=PATH, /dev/...)")
      ->allow_extra_args(false);
  app.add_option("-s", slots, "PCI slot: SLOT[:FUNC],EMULATION[,OPTIONS]")->allow_extra_args(false);
  app.add_option("-k", configFiles, "read key=value configuration from FILE")->allow_extra_args(false);
  app.add_option("-o", overrides, "set a configuration key: KEY=VALUE")->allow_extra_args(false);
  app.add_flag("-u", utc, "RTC keeps UTC (default: local time)");
  app.add_flag("-D", destroyOnPoweroff,
               "destroy the VM on guest poweroff (always so: the core owns no state)");
  app.add_option("--kernel", kernel, "boot this Linux bzImage or PVH ELF directly");
  app.add_option("--initrd", initrd, "initial ramdisk for --kernel");
  app.add_option("--cmdline", cmdline, "kernel command line for --kernel")->each([&](const std::string&) {
    cmdlineGiven = true;
  });
  app.add_option("--cpuid-mask", cpuidMask, "comma-separated CPUID features to hide (e.g. cx16,xsave)");
  app.add_option("--sandbox", sandbox, "device server sandbox: off, log (violations only logged) or enforce");
  app.add_option("--status-fd", statusFd, "take commands from vmmd (Cap'n Proto CoreCommand) on this socket");
  app.add_option("--device-socket", deviceSocket,
                 "run under vmmd: it runs the device servers and sends their resources on this socket");
  app.add_flag("--trace-boot", traceBoot,
               "print when the guest first wrote the debug-exit port (CLOCK_MONOTONIC)");
  app.add_option("vmname", name, "VM name");
  CLI11_PARSE(app, argc, argv);

  try {
    ConfigStore store;
    for (const auto& file : configFiles) store.loadFile(file);
    if (!name.empty()) store.set("name", name, "command line");
    if (!cpus.empty()) store.set("cpus", cpus.rfind("cpus=", 0) == 0 ? cpus.substr(5) : cpus, "-c");
    if (!memory.empty()) store.set("memory.size", memory, "-m");
    for (const auto& spec : lpcDevices) addLpc(store, spec);
    for (const auto& spec : slots) addSlot(store, spec);
    if (utc) store.set("rtc.use_localtime", "false", "-u");
    if (!kernel.empty()) store.set("kernel.path", kernel, "--kernel");
    if (!initrd.empty()) store.set("kernel.initrd", initrd, "--initrd");
    if (cmdlineGiven) store.set("kernel.cmdline", cmdline, "--cmdline");
    if (!cpuidMask.empty()) store.set("cpuid.mask", cpuidMask, "--cpuid-mask");
    if (!sandbox.empty()) store.set("sandbox", sandbox, "--sandbox");
    for (const auto& entry : overrides) {
      auto equals = entry.find('=');
      if (equals == std::string::npos || equals == 0)
        throw ConfigError("-o " + entry + ": expected KEY=VALUE");
      store.set(entry.substr(0, equals), entry.substr(equals + 1), "-o " + entry);
    }
    cellvisor::MachineConfig config = store.build();
    if (config.name.empty()) throw ConfigError("no VM name given");
    config.statusFd = statusFd;
    config.deviceSocket = deviceSocket;

    cellvisor::Machine machine(config);
    int status = machine.run();
    if (traceBoot) std::cerr << "vmm-core: first-debug-write-ns " << machine.firstDebugWriteNs() << '\n';
    std::cerr << "vmm-core: " << config.name << ": " << machine.exitReason() << " (exit " << status << ")\n";
    return status;
  } catch (const ConfigError& error) {
    std::cerr << "vmm-core: config: " << error.what() << '\n';
  } catch (const cellvisor::LoadError& error) {
    std::cerr << "vmm-core: " << error.what() << '\n';
  } catch (const std::exception& error) {
    std::cerr << "vmm-core: " << error.what() << '\n';
  }
  return static_cast<int>(cellvisor::ExitStatus::ERROR);
}
