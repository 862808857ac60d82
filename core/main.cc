// vmm-core: runs one VM, with arguments in the style of bhyve(8):
//   vmm-core -c 2 -m 512M -l com1,stdio -s 0,hostbridge -s 31,lpc
//            --kernel guest.elf --cmdline "test=hello" NAME
// Every option also has a config key (-o key=value, -k FILE), as in bhyve.
// Exit status: 0 reboot, 1 poweroff, 2 halt, 3 triple fault, 4 error (any
// bad argument included); -h and the help lists exit 0. A guest write of V
// to the debug-exit port gives (V << 1) | 1.
#include <iostream>

#include "core/boot/load-error.h"
#include "core/machine/command-line.h"
#include "core/machine/host-checks.h"
#include "core/machine/machine-config.h"
#include "core/machine/machine.h"
#include "core/machine/standalone-supervisor.h"
#include "sandbox/sandbox.h"

int main(int argc, char** argv) {
  cellvisor::CommandLine line = cellvisor::parseCommandLine(argc, argv);
  if (line.exitStatus) {
    (*line.exitStatus == 0 ? std::cout : std::cerr) << line.message;
    return *line.exitStatus;
  }
  try {
    cellvisor::MachineConfig config = line.store.build();
    if (config.name.empty()) {
      std::cerr << "vmm-core: no VM name given\n" << cellvisor::USAGE << '\n';
      return static_cast<int>(cellvisor::ExitStatus::ERROR);
    }
    for (const auto& warning : checkHostFits(config, line.store, cellvisor::readHostFacts()))
      std::cerr << "vmm-core: warning: " << warning << '\n';
    config.statusFd = line.statusFd;
    config.deviceSocket = line.deviceSocket;
    // Standalone, this process becomes the VM's supervisor and a forked
    // child the confined core (standalone-supervisor.h).
    if (cellvisor::wantsStandaloneSupervisor(config)) {
      if (auto status = cellvisor::runStandaloneSupervisor(config)) return *status;
    }

    cellvisor::Machine machine(config);
    int status = machine.run();
    if (line.traceBoot) std::cerr << "vmm-core: first-debug-write-ns " << machine.firstDebugWriteNs() << '\n';
    std::cerr << "vmm-core: " << config.name << ": " << machine.exitReason() << " (exit " << status << ")\n";
    if (machine.sandboxed()) cellvisor::exitSandboxed(status);
    return status;
  } catch (const cellvisor::ConfigError& error) {
    std::cerr << "vmm-core: config: " << error.what() << '\n';
  } catch (const cellvisor::LoadError& error) {
    std::cerr << "vmm-core: " << error.what() << '\n';
  } catch (const std::exception& error) {
    std::cerr << "vmm-core: " << error.what() << '\n';
  }
  return static_cast<int>(cellvisor::ExitStatus::ERROR);
}
