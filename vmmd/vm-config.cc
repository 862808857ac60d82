#include "vmmd/vm-config.h"

#include <fmt/format.h>

#include <cctype>
#include <charconv>
#include <cstdint>
#include <fstream>
#include <regex>
#include <sstream>

#include "base/size-suffix.h"
#include "core/machine/machine-config.h"

namespace cellvisor {
namespace {

std::string trim(const std::string& text) {
  size_t begin = text.find_first_not_of(" \t\r");
  if (begin == std::string::npos) return "";
  return text.substr(begin, text.find_last_not_of(" \t\r") - begin + 1);
}

bool yesNo(const std::string& value, bool& out) {
  if (value == "yes" || value == "true" || value == "on" || value == "1") return out = true, true;
  if (value == "no" || value == "false" || value == "off" || value == "0") return out = false, true;
  return false;
}

template <typename T>
bool number(const std::string& text, T& out) {
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), out);
  return error == std::errc() && end == text.data() + text.size() && !text.empty();
}

// A disk or switch name used in a path: plain names only.
bool plainName(const std::string& name) {
  static const std::regex pattern("[A-Za-z0-9][A-Za-z0-9._-]{0,127}");
  return std::regex_match(name, pattern) && name.find("..") == std::string::npos;
}

// vm-bhyve keys for devices cellvisor does not have yet, or that mean
// nothing here: accepted with a warning so vm-bhyve's templates still load.
bool isIgnoredKey(const std::string& key) {
  static const std::regex grub("grub_[a-z0-9_]+");
  return key == "virt_random" || key == "ahci_device_limit" || std::regex_match(key, grub);
}

std::string ignoredBecause(const std::string& key) {
  if (key.rfind("grub_", 0) == 0) return "ignored: loader=\"grub\" boots the disk's own GRUB through SeaBIOS";
  return "ignored: that device is not supported yet";
}

// A rate with rctl's suffixes (K, M, G, T: powers of 1024); 0 is refused
// (it would stop the guest's disks).
bool rate(const std::string& text, uint64_t& out) {
  if (text.empty()) return false;
  std::string digits = text;
  uint64_t multiplier = binarySuffixMultiplier(text.back()).value_or(1);
  if (multiplier != 1) digits.pop_back();
  uint64_t value = 0;
  if (!number(digits, value) || value == 0 || value > UINT64_MAX / multiplier) return false;
  out = value * multiplier;
  return true;
}

}  // namespace

VmConfig parseVmConfig(const std::string& text, const std::string& origin) {
  VmConfig config;
  static const std::regex indexed("(disk|network)([0-9]{1,2})_(type|name|dev|opts|size|switch|mac)");
  std::istringstream stream(text);
  std::string line;
  for (int number_ = 1; std::getline(stream, line); ++number_) {
    std::string body = trim(line);
    if (body.empty() || body[0] == '#') continue;
    size_t equals = body.find('=');
    auto fail = [&](const std::string& key, const std::string& why) {
      return VmConfigError(fmt::format("{}:{}: {}{}", origin, number_, key.empty() ? "" : key + ": ", why));
    };
    if (equals == std::string::npos || equals == 0)
      throw fail("", "expected key=\"value\", got '" + body + "'");
    std::string key = trim(body.substr(0, equals));
    std::string value = trim(body.substr(equals + 1));
    if (value.size() >= 2 && value.front() == '"') {
      if (value.back() != '"') throw fail(key, "unterminated quoted value");
      value = value.substr(1, value.size() - 2);
    } else if (value.find_first_of("\" \t#") != std::string::npos) {
      throw fail(key, "values with spaces or quotes must be written key=\"value\"");
    }
    config.entries.emplace_back(key, value);

    std::smatch match;
    if (key == "loader") {
      if (value == "bhyveload") {
        throw fail(key,
                   "bhyveload runs FreeBSD's loader(8), which has no Linux host equivalent; use "
                   "loader=\"uefi\" or loader=\"bios\"");
      }
      if (value != "kernel" && value != "uefi" && value != "uefi-csm" && value != "bios" && value != "grub") {
        throw fail(key, "expected kernel, uefi, uefi-csm, bios or grub");
      }
      config.loader = value;
    } else if (key == "uefi_vars") {
      if (!yesNo(value, config.uefiVars)) throw fail(key, "expected yes or no");
    } else if (isIgnoredKey(key)) {
      config.warnings.push_back(
          fmt::format("{}:{}: {}=\"{}\": {}", origin, number_, key, value, ignoredBecause(key)));
    } else if (key == "cpu") {
      if (!number(value, config.cpu) || config.cpu < 1 || config.cpu > 255)
        throw fail(key, "expected 1 to 255");
    } else if (key == "memory") {
      try {
        config.memoryBytes = parseMemorySize(value);
      } catch (const ConfigError& error) {
        throw fail(key, error.what());
      }
      if (config.memoryBytes % (2ull << 20) != 0) throw fail(key, "must be a multiple of 2 MiB");
      config.memoryText = value;
    } else if (std::regex_match(key, match, indexed)) {
      int index = std::stoi(match[2].str());
      std::string field = match[3].str();
      if (match[1] == "disk") {
        DiskConfig& disk = config.disks[index];
        if (field == "type") {
          if (value != "virtio-blk" && value != "nvme" && value != "ahci-hd") {
            throw fail(key, "expected virtio-blk, nvme or ahci-hd");
          }
          disk.type = value;
        } else if (field == "dev") {
          if (value != "file" && value != "custom") throw fail(key, "expected file or custom");
          disk.dev = value;
        } else if (field == "name") {
          disk.name = value;
        } else if (field == "opts") {
          disk.opts = value;
        } else if (field == "size") {
          try {
            disk.sizeBytes = parseMemorySize(value);  // Same suffixes: 20G, 512M.
          } catch (const ConfigError& error) {
            throw fail(key, error.what());
          }
        } else {
          throw fail(key, "unknown configuration key");
        }
      } else {
        NetworkConfig& network = config.networks[index];
        if (field == "type") {
          if (value != "virtio-net" && value != "e1000") throw fail(key, "expected virtio-net or e1000");
          network.type = value;
        } else if (field == "switch") {
          if (!plainName(value)) throw fail(key, "invalid switch name '" + value + "'");
          network.vmSwitch = value;
        } else if (field == "mac") {
          static const std::regex mac("([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}");
          if (!std::regex_match(value, mac)) throw fail(key, "expected a MAC address like 58:9c:fc:00:00:01");
          network.mac = value;
        } else {
          throw fail(key, "unknown configuration key");
        }
      }
    } else if (key == "graphics") {
      if (!yesNo(value, config.graphics)) throw fail(key, "expected yes or no");

    } else if (key == "graphics_port") {
      uint16_t port;
      if (!number(value, port) || port == 0) throw fail(key, "expected a TCP port");
      config.graphicsPort = port;
    } else if (key == "graphics_listen") {
      static const std::regex address("[0-9.]+|[0-9a-fA-F:]+");
      if (!std::regex_match(value, address)) throw fail(key, "expected an IPv4 or IPv6 address");
      config.graphicsListen = value;
    } else if (key == "graphics_res") {
      static const std::regex resolution("[0-9]{3,4}x[0-9]{3,4}");
      if (!std::regex_match(value, resolution)) throw fail(key, "expected WIDTHxHEIGHT");
      config.graphicsResolution = value;
    } else if (key == "xhci_mouse") {
      if (!yesNo(value, config.xhciMouse)) throw fail(key, "expected yes or no");
    } else if (key == "graphics_wait") {
      if (value != "yes" && value != "no" && value != "auto") throw fail(key, "expected yes, no or auto");
      config.graphicsWait = value;
    } else if (key == "graphics_vga") {
      if (value != "on" && value != "io" && value != "off") throw fail(key, "expected on, io or off");
      config.graphicsVga = value;
    } else if (key == "vnc_password") {
      if (value.empty() || value.find(',') != std::string::npos)
        throw fail(key, "expected a password without commas");
      config.vncPassword = value;
    } else if (key == "comports") {
      config.comports.clear();
      std::istringstream ports(value);
      for (std::string port; ports >> port;) {
        if (port != "com1" && port != "com2") throw fail(key, "expected com1 and/or com2");
        config.comports.push_back(port);
      }
    } else if (key == "utctime") {
      if (!yesNo(value, config.utctime)) throw fail(key, "expected yes or no");
    } else if (key == "uuid") {
      static const std::regex uuid(
          "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}");
      if (!std::regex_match(value, uuid)) throw fail(key, "expected a UUID");
      config.uuid = value;
    } else if (key == "start_slot") {
      int slot;
      if (!number(value, slot) || slot < 1 || slot > 29) throw fail(key, "expected a PCI slot from 1 to 29");
      config.startSlot = slot;
    } else if (key == "priority") {
      int priority;
      if (!number(value, priority) || priority < -20 || priority > 20) throw fail(key, "expected -20 to 20");
      config.limits.priority = priority;
    } else if (key == "limit_pcpu") {
      uint32_t pcpu;
      if (!number(value, pcpu) || pcpu < 1 || pcpu > 100 * 1024)
        throw fail(key, "expected a percentage of one CPU, e.g. 50 or 200");
      config.limits.pcpu = pcpu;
    } else if (key == "limit_rbps" || key == "limit_wbps" || key == "limit_riops" || key == "limit_wiops") {
      uint64_t limit;
      if (!rate(value, limit)) throw fail(key, "expected a positive number, e.g. 500, 10M or 1G");
      auto& slot = key == "limit_rbps"    ? config.limits.readBps
                   : key == "limit_wbps"  ? config.limits.writeBps
                   : key == "limit_riops" ? config.limits.readIops
                                          : config.limits.writeIops;
      slot = limit;
    } else if (key == "kernel") {
      config.kernel = value;
    } else if (key == "kernel_initrd") {
      config.kernelInitrd = value;
    } else if (key == "kernel_cmdline") {
      config.kernelCmdline = value;
    } else {
      throw fail(key, "unknown configuration key");
    }
  }
  for (const auto& [index, disk] : config.disks) {
    std::string where = fmt::format("{}: disk{}", origin, index);
    if (disk.type.empty()) throw VmConfigError(where + "_type is missing");
    if (disk.name.empty()) throw VmConfigError(where + "_name is missing");
    bool custom = disk.dev == "custom";
    if (custom && disk.name.front() != '/')
      throw VmConfigError(where + "_name: a custom disk needs an absolute path");
    if (!custom && !plainName(disk.name)) {
      throw VmConfigError(where + "_name: '" + disk.name +
                          "' must be a plain file name in the VM's directory");
    }
  }
  for (const auto& [index, network] : config.networks) {
    if (network.type.empty())
      throw VmConfigError(fmt::format("{}: network{}_type is missing", origin, index));
  }
  if (config.loader == "kernel" && config.kernel.empty()) {
    throw VmConfigError(origin + ": loader=\"kernel\" needs kernel=\"PATH\"");
  }
  return config;
}

VmConfig loadVmConfig(const std::string& path) {
  std::ifstream file(path);
  if (!file) throw VmConfigError(path + ": cannot open configuration");
  std::stringstream text;
  text << file.rdbuf();
  return parseVmConfig(text.str(), path);
}

std::string formatVmConfig(const std::vector<std::pair<std::string, std::string>>& entries) {
  std::string out;
  for (const auto& [key, value] : entries) out += key + "=\"" + value + "\"\n";
  return out;
}

}  // namespace cellvisor
