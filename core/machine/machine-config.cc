#include "core/machine/machine-config.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <fstream>
#include <regex>
#include <sstream>

#include "base/size-suffix.h"
#include "core/cpu/cpuid.h"
#include "core/machine/emulations.h"

namespace cellvisor {
namespace {

std::string trim(const std::string& text) {
  size_t begin = text.find_first_not_of(" \t\r");
  if (begin == std::string::npos) return "";
  size_t end = text.find_last_not_of(" \t\r");
  return text.substr(begin, end - begin + 1);
}

bool parseBool(const std::string& text, bool& out) {
  if (text == "true" || text == "yes" || text == "on" || text == "1") {
    out = true;
    return true;
  }
  if (text == "false" || text == "no" || text == "off" || text == "0") {
    out = false;
    return true;
  }
  return false;
}

template <typename T>
bool parseNumber(const std::string& text, T& out) {
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), out);
  return error == std::errc() && end == text.data() + text.size();
}

// bhyve's boolean variables that select KVM's own behaviour or something
// the core always does (or never needs): accepted, validated, no effect.
constexpr const char* ACCEPTED_BOOLEANS[] = {
    "acpi_tables", "destroy_on_poweroff", "virtio_msix",
    "x86.mptable", "x86.vmexit_on_hlt",   "x86.vmexit_on_pause",
};

// Removes "bootindex=N" from a comma-separated option list, handing N over.
template <typename Found>
std::string takeBootIndex(const std::string& options, Found found) {
  std::string kept;
  std::stringstream parts(options);
  for (std::string part; std::getline(parts, part, ',');) {
    if (part.rfind("bootindex=", 0) == 0) {
      found(part.substr(10));
      continue;
    }
    kept += (kept.empty() ? "" : ",") + part;
  }
  return kept;
}

template <typename Bad>
void setBootIndex(MachineConfig& config, int slot, int function, const std::string& value, Bad bad) {
  int index = 0;
  if (!parseNumber(value, index) || index < 0 || index > 255) throw bad("bootindex: expected 0 to 255");
  for (const auto& [where, other] : config.bootOrder) {
    if (other == index && where != std::pair{slot, function})
      throw bad("bootindex " + value + " given twice");
  }
  config.bootOrder[{slot, function}] = index;
}

}  // namespace

std::vector<uint32_t> parseCpuList(const std::string& text) {
  std::vector<uint32_t> cpus;
  std::stringstream parts(text);
  for (std::string part; std::getline(parts, part, ',');) {
    auto dash = part.find('-');
    uint32_t first = 0;
    uint32_t last = 0;
    bool ok = dash == std::string::npos ? parseNumber(part, first) && parseNumber(part, last)
                                        : parseNumber(part.substr(0, dash), first) &&
                                              parseNumber(part.substr(dash + 1), last) && first <= last;
    if (!ok || last >= 1024) throw ConfigError("bad CPU list '" + text + "' (e.g. 3 or 0-3,6)");
    for (uint32_t cpu = first; cpu <= last; ++cpu) cpus.push_back(cpu);
  }
  if (cpus.empty()) throw ConfigError("empty CPU list");
  return cpus;
}

uint64_t parseMemorySize(const std::string& text) {
  if (text.empty()) throw ConfigError("empty memory size");
  std::string digits = text;
  uint64_t multiplier = 1ull << 20;  // bhyve: a bare number is megabytes.
  char suffix = static_cast<char>(std::toupper(static_cast<unsigned char>(text.back())));
  if (std::isalpha(static_cast<unsigned char>(suffix))) {
    digits.pop_back();
    auto known = binarySuffixMultiplier(suffix);
    if (!known) throw ConfigError("bad memory size suffix in '" + text + "' (use K, M, G or T)");
    multiplier = *known;
  }
  uint64_t value = 0;
  if (!parseNumber(digits, value) || value == 0) throw ConfigError("bad memory size '" + text + "'");
  if (value > (1ull << 50) / multiplier) throw ConfigError("memory size '" + text + "' is too large");
  return value * multiplier;
}

bool isValidVmName(const std::string& name) {
  static const std::regex pattern("[A-Za-z0-9][A-Za-z0-9._-]{0,63}");
  return std::regex_match(name, pattern);
}

void ConfigStore::loadFile(const std::string& path) {
  std::ifstream file(path);
  if (!file) throw ConfigError(fmt::format("{}: cannot open config file", path));
  std::string line;
  for (int number = 1; std::getline(file, line); ++number) {
    std::string text = trim(line.substr(0, line.find('#')));
    if (text.empty()) continue;
    size_t equals = text.find('=');
    std::string origin = fmt::format("{}:{}", path, number);
    if (equals == std::string::npos || equals == 0) {
      throw ConfigError(fmt::format("{}: expected key=value, got '{}'", origin, text));
    }
    set(trim(text.substr(0, equals)), trim(text.substr(equals + 1)), origin);
  }
}

void ConfigStore::set(const std::string& key, const std::string& value, const std::string& origin) {
  values_[key] = {value, origin};
}

std::string ConfigStore::valueOf(const std::string& key) const {
  auto found = values_.find(key);
  return found == values_.end() ? "" : found->second.value;
}

std::string ConfigStore::originOf(const std::string& key) const {
  auto found = values_.find(key);
  return found == values_.end() ? "" : found->second.origin;
}

MachineConfig ConfigStore::build() const {
  MachineConfig config;
  static const std::regex pciKey(R"(pci\.0\.(\d+)\.(\d+)\.(device|options|bootindex))");
  static const std::regex cpusetKey(R"(vcpu\.(\d+)\.cpuset)");
  static const std::regex uuidPattern(
      "[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}");
  static const std::regex layoutPattern("[A-Za-z0-9][A-Za-z0-9_.-]{0,63}");
  const std::map<std::string, bool MachineConfig::*> booleans = {
      {"memory.overcommit", &MachineConfig::memoryOvercommit},
      {"memory.wired", &MachineConfig::memoryWired},
      {"memory.guest_in_core", &MachineConfig::guestMemoryInCore},
      {"x86.x2apic", &MachineConfig::x2apic},
      {"x86.strictio", &MachineConfig::strictIo},
      {"x86.strictmsr", &MachineConfig::strictMsr},
  };
  const std::map<std::string, uint32_t MachineConfig::*> topology = {
      {"sockets", &MachineConfig::sockets},
      {"cores", &MachineConfig::cores},
      {"threads", &MachineConfig::threads},
  };
  std::map<std::pair<int, int>, PciSlotConfig> slots;
  std::map<uint32_t, std::string> cpusetOrigins;
  for (const auto& [key, entry] : values_) {
    const std::string& value = entry.value;
    auto bad = [&](const std::string& why) {
      return ConfigError(fmt::format("{}: {}: {}", entry.origin, key, why));
    };
    std::smatch match;
    if (key == "name") {
      if (!isValidVmName(value))
        throw bad("invalid VM name '" + value + "' (letters, digits, '.', '_', '-'; at most 64)");
      config.name = value;
    } else if (key == "cpus") {
      if (!parseNumber(value, config.cpus) || config.cpus < 1 || config.cpus > 255) {
        throw bad("expected a vCPU count from 1 to 255, got '" + value + "'");
      }
    } else if (key == "memory.size") {
      try {
        config.memoryBytes = parseMemorySize(value);
      } catch (const ConfigError& error) {
        throw bad(error.what());
      }
      if (config.memoryBytes % (2ull << 20) != 0) throw bad("memory size must be a multiple of 2 MiB");
    } else if (auto flag = booleans.find(key); flag != booleans.end()) {
      if (!parseBool(value, config.*(flag->second))) throw bad("expected true or false, got '" + value + "'");
    } else if (std::find(std::begin(ACCEPTED_BOOLEANS), std::end(ACCEPTED_BOOLEANS), key) !=
               std::end(ACCEPTED_BOOLEANS)) {
      bool ignored = false;
      if (!parseBool(value, ignored)) throw bad("expected true or false, got '" + value + "'");
    } else if (auto level = topology.find(key); level != topology.end()) {
      uint32_t& count = config.*(level->second);
      if (!parseNumber(value, count) || count < 1 || count > 255) {
        throw bad("expected a count from 1 to 255, got '" + value + "'");
      }
    } else if (std::regex_match(key, match, cpusetKey)) {
      uint32_t vcpu = 0;
      if (!parseNumber(match[1].str(), vcpu)) throw bad("bad vCPU number");
      try {
        config.vcpuHostCpus[vcpu] = parseCpuList(value);
      } catch (const ConfigError& error) {
        throw bad(error.what());
      }
      cpusetOrigins[vcpu] = entry.origin;
    } else if (key == "uuid") {
      if (!std::regex_match(value, uuidPattern)) {
        throw bad("'" + value + "' is not a UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx, hexadecimal)");
      }
      config.uuid = value;
    } else if (key == "keyboard.layout") {
      if (!std::regex_match(value, layoutPattern)) throw bad("'" + value + "' is not a keyboard layout name");
      config.keyboardLayout = value;
    } else if (key == "gdb.port" || key == "gdb.address" || key == "gdb.wait") {
      throw bad("a GDB debug server is not supported yet");
    } else if (key == "lpc.com1.path" || key == "lpc.com2.path") {
      config.serial[key.substr(4, 4)] = value;
    } else if (key == "rtc.use_localtime") {
      bool local = false;
      if (!parseBool(value, local)) throw bad("expected true or false, got '" + value + "'");
      config.utcClock = !local;
    } else if (key == "lpc.bootrom") {
      config.bootrom = value;
    } else if (key == "lpc.bootvars") {
      config.bootvars = value;
    } else if (key.rfind("fw_cfg.file.", 0) == 0) {
      std::string name = key.substr(12);
      if (name.empty() || name.size() > 55) throw bad("a fw_cfg file name has 1-55 characters");
      if (value.rfind("string=", 0) == 0) {
        config.fwCfgFiles.push_back({name, value.substr(7), ""});
      } else if (value.rfind("file=", 0) == 0 && value.size() > 5) {
        config.fwCfgFiles.push_back({name, "", value.substr(5)});
      } else {
        throw bad("expected string=DATA or file=PATH, got '" + value + "'");
      }
    } else if (key == "kernel.path") {
      config.kernelPath = value;
    } else if (key == "kernel.initrd") {
      config.initrdPath = value;
    } else if (key == "kernel.cmdline") {
      config.cmdline = value;
    } else if (key == "cpuid.mask") {
      config.cpuidMaskSet = true;
      std::stringstream list(value);
      for (std::string name; std::getline(list, name, ',');) {
        if (name.empty()) continue;
        if (findCpuidFeature(name) == nullptr) throw bad("unknown CPUID feature '" + name + "'");
        config.cpuidMask.push_back(name);
      }
    } else if (key == "sandbox") {
      if (value != "off" && value != "log" && value != "enforce") throw bad("expected off, log or enforce");
      config.sandbox = value;
    } else if (key == "sandbox.identity") {
      auto colon = value.find(':');
      uint32_t uid = 0;
      uint32_t gid = 0;
      if (colon == std::string::npos || !parseNumber(value.substr(0, colon), uid) ||
          !parseNumber(value.substr(colon + 1), gid) || uid == 0 || gid == 0) {
        throw bad("expected UID:GID, neither 0");
      }
      config.sandboxIdentity = std::make_pair(uid, gid);
    } else if (key == "sandbox.fault") {
      if (value != "open" && value != "socket" && value != "execve" && value != "signal")
        throw bad("expected open, socket, execve or signal");
      config.sandboxFault = value;
    } else if (std::regex_match(key, match, pciKey)) {
      int slot = 0;
      int function = 0;
      if (!parseNumber(match[1].str(), slot) || slot > 31 || !parseNumber(match[2].str(), function) ||
          function > 7) {
        throw bad("PCI slot must be 0-31 and function 0-7");
      }
      if (match[3] == "device") {
        if (auto problem = emulationProblem(value); !problem.empty()) throw bad(problem);
      }
      auto& pci = slots[{slot, function}];
      pci.slot = slot;
      pci.function = function;
      if (match[3] == "bootindex") {
        setBootIndex(config, slot, function, value, bad);
      } else if (match[3] == "device") {
        pci.emulation = value;
      } else {
        // bhyve's "-s 4,virtio-blk,disk.img,bootindex=1": the boot order is
        // the platform's (firmware reads it), not the device server's option.
        pci.options = takeBootIndex(
            value, [&](const std::string& index) { setBootIndex(config, slot, function, index, bad); });
      }
    } else {
      throw bad("unknown configuration key");
    }
  }
  // bhyve: cpus defaults to the topology's product and must equal it.
  std::string topologyOrigin;
  for (const auto& [key, member] : topology) {
    if (values_.count(key) != 0) topologyOrigin = values_.at(key).origin;
  }
  uint32_t product = config.sockets * config.cores * config.threads;
  if (!topologyOrigin.empty() && values_.count("cpus") == 0) {
    if (product > 255)
      throw ConfigError(fmt::format("{}: the topology gives {} vCPUs; at most 255", topologyOrigin, product));
    config.cpus = product;
  } else if (!topologyOrigin.empty() && product != config.cpus) {
    throw ConfigError(fmt::format("{}: cpus={} but sockets*cores*threads = {}*{}*{} = {}", topologyOrigin,
                                  config.cpus, config.sockets, config.cores, config.threads, product));
  }
  for (const auto& [vcpu, origin] : cpusetOrigins) {
    if (vcpu >= config.cpus) {
      throw ConfigError(fmt::format("{}: vcpu.{}.cpuset: the VM has {} vCPUs (0-{})", origin, vcpu,
                                    config.cpus, config.cpus - 1));
    }
  }
  for (auto& [where, pci] : slots) {
    if (pci.emulation.empty()) {
      throw ConfigError(fmt::format("pci.0.{}.{}: options given but no device", pci.slot, pci.function));
    }
    config.pciSlots.push_back(pci);
  }
  return config;
}

}  // namespace cellvisor
