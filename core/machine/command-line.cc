#include "core/machine/command-line.h"

#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <charconv>
#include <functional>
#include <map>
#include <sstream>

#include "core/machine/emulations.h"

namespace cellvisor {

const char* const USAGE =
    "usage: vmm-core [-aACDeHhPSuWwxY] [-c [[cpus=]numcpus][,sockets=n][,cores=n][,threads=n]]\n"
    "                [-k config_file] [-K layout] [-l lpcdev[,conf]] [-m memsize[K|M|G|T]]\n"
    "                [-o var=value] [-p vcpu:hostcpu] [-s slot,emulation[,conf]] [-U uuid]\n"
    "                --kernel FILE [--initrd FILE] [--cmdline TEXT] vmname";

namespace {

// A bad argument: the message, then the usage line, and exit status 4.
struct ArgumentError {
  std::string message;
  bool usage = true;  // False for a flag refused for what it asks, not how.
};

// bhyve's flags that only set a configuration variable (bhyve_config(5)).
struct FlagKey {
  const char* flag;
  const char* key;
  const char* value;
  const char* help;
};
constexpr FlagKey FLAG_KEYS[] = {
    {"-A", "acpi_tables", "true", "ACPI tables (always built)"},
    {"-a", "x86.x2apic", "false", "local APICs in xAPIC mode: no x2APIC in CPUID (the default)"},
    {"-C", "memory.guest_in_core", "true", "include guest memory in core dumps"},
    {"-D", "destroy_on_poweroff", "true",
     "destroy the VM on guest power-off (always so: the core owns no state)"},
    {"-e", "x86.strictio", "true", "exit (status 4) on a guest access to an I/O port nothing emulates"},
    {"-H", "x86.vmexit_on_hlt", "true", "yield the host CPU on HLT (KVM always does)"},
    {"-P", "x86.vmexit_on_pause", "true", "exit on PAUSE (KVM's pause-loop exiting decides)"},
    {"-S", "memory.wired", "true", "wire guest memory (mlock; needs RLIMIT_MEMLOCK or CAP_IPC_LOCK)"},
    {"-u", "rtc.use_localtime", "false", "RTC keeps UTC (default: local time)"},
    {"-W", "virtio_msix", "false", "MSI instead of MSI-X for virtio (accepted; devices use MSI-X)"},
    {"-w", "x86.strictmsr", "false", "ignore MSRs KVM does not know (reads give 0, writes are dropped)"},
    {"-x", "x86.x2apic", "true", "local APICs in x2APIC mode: x2APIC in CPUID"},
    {"-Y", "x86.mptable", "false", "no MPtable (none is built: ACPI's MADT lists the CPUs)"},
};

// bhyve's flags for what cellvisor cannot do yet: refused by name.
struct MissingFeature {
  const char* flag;
  const char* argument;
  const char* what;
};
constexpr MissingFeature MISSING[] = {
    {"-G", "[w][bind_address:]port", "a GDB debug server is not supported yet"},
    {"-r", "file", "resuming from a snapshot is not supported yet"},
    {"-n", "id,size,cpus[,domain_policy]", "guest NUMA domains are not supported yet"},
};

bool parseDecimal(const std::string& text, unsigned& out) {
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), out);
  return !text.empty() && error == std::errc() && end == text.data() + text.size();
}

// "-f opt/x,string=y" -> fw_cfg.file.opt/x=string=y (and file=PATH).
void addFwCfgFile(CommandLine& line, const std::string& spec) {
  auto comma = spec.find(',');
  if (comma == std::string::npos || comma == 0) {
    throw ArgumentError{"-f " + spec + ": expected name,string=DATA or name,file=PATH"};
  }
  line.store.set("fw_cfg.file." + spec.substr(0, comma), spec.substr(comma + 1), "-f " + spec);
}

// "-s 3,hostbridge" / "-s 3:1,lpc,opts" / "-s 0:3:1,..." -> pci.0.3.1.device=...
void addSlot(CommandLine& line, const std::string& spec) {
  if (spec == "help") {
    line.exitStatus = 0;
    line.message = "PCI emulations (-s slot,emulation[,conf]): " + describeAvailableEmulations() + '\n';
    return;
  }
  std::string origin = "-s " + spec;
  auto comma = spec.find(',');
  if (comma == std::string::npos || comma == 0)
    throw ArgumentError{origin + ": expected slot,emulation[,conf]"};
  std::vector<std::string> where;
  std::stringstream parts(spec.substr(0, comma));
  for (std::string part; std::getline(parts, part, ':');) where.push_back(part);
  if (where.size() == 1) where.push_back("0");
  if (where.size() == 2) where.insert(where.begin(), "0");
  unsigned bus = 0;
  unsigned slot = 0;
  unsigned function = 0;
  if (where.size() != 3 || !parseDecimal(where[0], bus) || !parseDecimal(where[1], slot) ||
      !parseDecimal(where[2], function)) {
    throw ArgumentError{origin + ": slot must be pcislot, pcislot:function or bus:pcislot:function"};
  }
  if (bus != 0) throw ArgumentError{origin + ": only bus 0 exists"};
  std::string rest = spec.substr(comma + 1);
  auto optionsAt = rest.find(',');
  std::string prefix = fmt::format("pci.0.{}.{}", slot, function);
  line.store.set(prefix + ".device", rest.substr(0, optionsAt), origin);
  if (optionsAt != std::string::npos) line.store.set(prefix + ".options", rest.substr(optionsAt + 1), origin);
}

// "-l com1,stdio" -> lpc.com1.path=stdio; "-l bootrom,FILE[,VARS]" ->
// lpc.bootrom=FILE (and lpc.bootvars=VARS).
void addLpc(CommandLine& line, const std::string& spec) {
  if (spec == "help") {
    line.exitStatus = 0;
    line.message =
        "LPC devices (-l lpcdev,conf): com1, com2; conf: stdio, pty, file=PATH, unix=PATH or a device path\n"
        "  bootrom,FIRMWARE[,VARS]: boot FIRMWARE (SeaBIOS, OVMF) mapped below 4 GiB; VARS: OVMF's "
        "variables\n";
    return;
  }
  auto comma = spec.find(',');
  if (comma == std::string::npos)
    throw ArgumentError{"-l " + spec + ": expected com1|com2,BACKEND or bootrom,FILE"};
  if (spec.substr(0, comma) == "bootrom") {
    std::string rest = spec.substr(comma + 1);
    auto varsAt = rest.find(',');
    line.store.set("lpc.bootrom", rest.substr(0, varsAt), "-l " + spec);
    if (varsAt != std::string::npos) line.store.set("lpc.bootvars", rest.substr(varsAt + 1), "-l " + spec);
    return;
  }
  line.store.set("lpc." + spec.substr(0, comma) + ".path", spec.substr(comma + 1), "-l " + spec);
}

// "-c 4", "-c cpus=4", "-c 4,sockets=2,cores=2", "-c sockets=2,threads=2".
void addCpus(CommandLine& line, const std::string& spec) {
  std::string origin = "-c " + spec;
  std::stringstream parts(spec);
  bool first = true;
  for (std::string part; std::getline(parts, part, ','); first = false) {
    auto equals = part.find('=');
    std::string key = equals == std::string::npos ? "" : part.substr(0, equals);
    std::string value = part.substr(equals == std::string::npos ? 0 : equals + 1);
    if (key.empty() && first) key = "cpus";
    if (key != "cpus" && key != "sockets" && key != "cores" && key != "threads") {
      throw ArgumentError{origin + ": expected [[cpus=]numcpus][,sockets=n][,cores=n][,threads=n]"};
    }
    line.store.set(key, value, origin);
  }
  if (first) throw ArgumentError{origin + ": expected a vCPU count"};
}

// "-p 1:3" -> vcpu.1.cpuset=3; another -p for the same vCPU adds a CPU.
void addPin(CommandLine& line, const std::string& spec) {
  std::string origin = "-p " + spec;
  auto colon = spec.find(':');
  unsigned vcpu = 0;
  unsigned host = 0;
  if (colon == std::string::npos || !parseDecimal(spec.substr(0, colon), vcpu) ||
      !parseDecimal(spec.substr(colon + 1), host)) {
    throw ArgumentError{origin + ": expected vcpu:hostcpu (two numbers)"};
  }
  std::string key = fmt::format("vcpu.{}.cpuset", vcpu);
  std::string previous = line.store.valueOf(key);
  line.store.set(key, previous.empty() ? std::to_string(host) : previous + "," + std::to_string(host),
                 origin);
}

void addOverride(CommandLine& line, const std::string& entry) {
  auto equals = entry.find('=');
  if (equals == std::string::npos || equals == 0) throw ArgumentError{"-o " + entry + ": expected var=value"};
  line.store.set(entry.substr(0, equals), entry.substr(equals + 1), "-o " + entry);
}

int parseFd(const std::string& name, const std::string& text) {
  unsigned fd = 0;
  if (!parseDecimal(text, fd) || fd > 65535)
    throw ArgumentError{name + " " + text + ": expected a file descriptor"};
  return static_cast<int>(fd);
}

}  // namespace

CommandLine parseCommandLine(int argc, const char* const* argv) {
  CommandLine line;
  CLI::App app{"cellvisor VM core: runs one virtual machine on KVM, with bhyve(8)'s options"};
  app.set_help_flag("-h,--help", "print this help and exit");
  std::map<CLI::Option*, std::function<void(const std::string&)>> handlers;
  // Every occurrence is kept and applied in command-line order.
  auto option = [&](const std::string& names, const std::string& help,
                    std::function<void(const std::string&)> apply) {
    CLI::Option* added = app.add_option(names, help)
                             ->allow_extra_args(false)
                             ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
    handlers[added] = std::move(apply);
  };
  for (const auto& flag : FLAG_KEYS) {
    CLI::Option* added =
        app.add_flag(flag.flag)->description(flag.help)->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
    handlers[added] = [&line, &flag](const std::string&) { line.store.set(flag.key, flag.value, flag.flag); };
  }
  for (const auto& missing : MISSING) {
    option(std::string(missing.flag), std::string(missing.argument) + ": " + missing.what,
           [&missing](const std::string& value) {
             throw ArgumentError{fmt::format("{} {}: {}", missing.flag, value, missing.what), false};
           });
  }
  option("-c", "vCPUs: [[cpus=]numcpus][,sockets=n][,cores=n][,threads=n]",
         [&](const std::string& spec) { addCpus(line, spec); });
  option("-m", "guest memory, e.g. 512M or 2G (no suffix: MiB)",
         [&](const std::string& size) { line.store.set("memory.size", size, "-m"); });
  option("-l",
         "LPC device: com1,BACKEND or com2,BACKEND (stdio, pty, file=PATH, unix=PATH, /dev/nmdmNA, "
         "/dev/...); help",
         [&](const std::string& spec) { addLpc(line, spec); });
  option("-s", "PCI slot: [bus:]slot[:function],emulation[,conf]; help lists the emulations",
         [&](const std::string& spec) { addSlot(line, spec); });
  option("-f", "fw_cfg file for the firmware: name,string=DATA or name,file=PATH",
         [&](const std::string& spec) { addFwCfgFile(line, spec); });
  option("-k", "read var=value configuration from config_file",
         [&](const std::string& file) { line.store.loadFile(file); });
  option("-o", "set a configuration variable: var=value",
         [&](const std::string& entry) { addOverride(line, entry); });
  option("-p", "pin vCPU vcpu's thread to host CPU hostcpu: vcpu:hostcpu",
         [&](const std::string& spec) { addPin(line, spec); });
  option("-U", "UUID for the guest's SMBIOS (kept for firmware)",
         [&](const std::string& uuid) { line.store.set("uuid", uuid, "-U"); });
  option("-K", "keyboard layout for a framebuffer's VNC server",
         [&](const std::string& layout) { line.store.set("keyboard.layout", layout, "-K"); });
  option("--kernel", "boot this Linux bzImage or PVH ELF directly",
         [&](const std::string& path) { line.store.set("kernel.path", path, "--kernel"); });
  option("--initrd", "initial ramdisk for --kernel",
         [&](const std::string& path) { line.store.set("kernel.initrd", path, "--initrd"); });
  option("--cmdline", "kernel command line for --kernel",
         [&](const std::string& text) { line.store.set("kernel.cmdline", text, "--cmdline"); });
  option("--cpuid-mask", "comma-separated CPUID features to hide (e.g. cx16,xsave)",
         [&](const std::string& mask) { line.store.set("cpuid.mask", mask, "--cpuid-mask"); });
  option("--sandbox", "the core's and device servers' sandbox: off, log (violations only logged) or enforce",
         [&](const std::string& mode) { line.store.set("sandbox", mode, "--sandbox"); });
  option("--uid", "UID:GID the confined core runs as (vmmd gives each VM its own)",
         [&](const std::string& identity) { line.store.set("sandbox.identity", identity, "--uid"); });
  option("--sandbox-fault",
         "test only: once confined, the core tries open, socket, execve or signalling another process",
         [&](const std::string& fault) { line.store.set("sandbox.fault", fault, "--sandbox-fault"); });
  option("--status-fd", "take commands from vmmd (Cap'n Proto CoreCommand) on this socket",
         [&](const std::string& fd) { line.statusFd = parseFd("--status-fd", fd); });
  option("--device-socket", "run under vmmd: it runs the device servers and sends their resources here",
         [&](const std::string& fd) { line.deviceSocket = parseFd("--device-socket", fd); });
  CLI::Option* trace =
      app.add_flag("--trace-boot")->description("print when the guest first wrote the debug-exit port");
  handlers[trace] = [&](const std::string&) { line.traceBoot = true; };
  option("vmname", "VM name", [&](const std::string& name) { line.store.set("name", name, "command line"); });

  try {
    app.parse(argc, argv);
    std::map<CLI::Option*, size_t> seen;
    for (CLI::Option* given : app.parse_order()) {
      const auto& results = given->results();
      size_t index = seen[given]++;
      handlers.at(given)(index < results.size() ? results[index] : "");
      if (line.exitStatus) return line;  // A help list.
    }
  } catch (const CLI::CallForHelp&) {
    line.exitStatus = 0;
    line.message = app.help();
  } catch (const CLI::ParseError& error) {
    line.exitStatus = 4;
    line.message = fmt::format("vmm-core: {}\n{}\n", error.what(), USAGE);
  } catch (const ArgumentError& error) {
    line.exitStatus = 4;
    line.message =
        fmt::format("vmm-core: {}\n{}", error.message, error.usage ? std::string(USAGE) + "\n" : "");
  } catch (const ConfigError& error) {  // A -k file that cannot be read.
    line.exitStatus = 4;
    line.message = fmt::format("vmm-core: config: {}\n", error.what());
  }
  return line;
}

}  // namespace cellvisor
