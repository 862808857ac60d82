#include "servers/ahci/ahci-options.h"

#include <fcntl.h>
#include <fmt/format.h>

#include <sstream>
#include <stdexcept>

#include "servers/runtime/disk-image.h"
#include "servers/runtime/slot-options.h"

namespace cellvisor {
namespace {

// Errors name `label`: "ahci", or "ahci: port N" on the controller form.
void requireLength(const std::string& label, const std::string& key, const std::string& value, size_t limit) {
  if (value.empty() || value.size() > limit) {
    throw std::invalid_argument(
        fmt::format("{}: {}: 1 to {} characters, got '{}'", label, key, limit, value));
  }
  for (char c : value) {
    if (c < 0x20 || c > 0x7e) throw std::invalid_argument(label + ": " + key + ": printable ASCII only");
  }
}

bool powerOfTwoSector(uint32_t size) {
  return size >= 512 && size <= 65536 && (size & (size - 1)) == 0;
}

// One of a port's items after its path: KEY or KEY=VALUE.
void applyPortOption(AhciPortOptions& port, const std::string& label, const std::string& item) {
  auto equals = item.find('=');
  std::string key = item.substr(0, equals);
  std::string value = equals == std::string::npos ? "" : item.substr(equals + 1);
  if (key == "ro") {
    port.readOnly = true;
  } else if (key == "nocache") {
    port.noCache = true;
  } else if (key == "direct" || key == "sync") {
    port.direct = true;
  } else if (key == "nodelete") {
    port.noDelete = true;
  } else if (key == "sectorsize") {
    auto slash = value.find('/');
    port.logicalSectorSize = slotOptionNumber<uint32_t>(label, key, value.substr(0, slash));
    if (slash != std::string::npos) {
      port.physicalSectorSize = slotOptionNumber<uint32_t>(label, key, value.substr(slash + 1));
    }
    if (!powerOfTwoSector(port.logicalSectorSize) ||
        (port.physicalSectorSize != 0 &&
         (!powerOfTwoSector(port.physicalSectorSize) || port.physicalSectorSize < port.logicalSectorSize))) {
      throw std::invalid_argument(label + ": sectorsize: a power of two from 512 to 65536 (L[/P], P >= L)");
    }
  } else if (key == "ser") {
    requireLength(label, key, value, 20);
    port.serial = value;
  } else if (key == "rev") {
    requireLength(label, key, value, 8);
    port.revision = value;
  } else if (key == "model") {
    requireLength(label, key, value, 40);
    port.model = value;
  } else if (key == "nmrr") {
    port.rotationRate = slotOptionNumber<uint16_t>(label, key, value);
    if (port.rotationRate != 1 && (port.rotationRate < 0x401 || port.rotationRate == 0xffff)) {
      throw std::invalid_argument(label + ": nmrr: 1 (solid state) or a rotation rate of 1025-65534 RPM");
    }
  } else {
    throw std::invalid_argument(label + ": unknown option '" + key + "'");
  }
}

bool startsPort(const std::string& item) {
  return item.rfind("hd:", 0) == 0 || item.rfind("cd:", 0) == 0;
}

}  // namespace

AhciOptions parseAhciOptions(const std::string& emulation, const std::string& text) {
  bool controller = emulation == "ahci";
  if (!controller && emulation != "ahci-hd" && emulation != "ahci-cd") {
    throw std::invalid_argument("ahci: unknown emulation " + emulation);
  }
  AhciOptions options;
  std::string label = "ahci";
  std::stringstream stream(text);
  std::string item;
  for (bool first = true; std::getline(stream, item, ','); first = false) {
    if (first && !controller) {
      // The one-port spellings: the path first (an hd:/cd: in front of it
      // is taken too, as the controller form's).
      options.ports.push_back(
          {.cd = emulation == "ahci-cd", .path = startsPort(item) ? item.substr(3) : item});
    } else if (startsPort(item)) {
      if (!controller) {
        throw std::invalid_argument("ahci: " + emulation +
                                    " has one port; for several: -s N,ahci,hd:PATH,cd:PATH");
      }
      if (options.ports.size() == AhciOptions::MAX_PORTS) {
        throw std::invalid_argument(fmt::format("ahci: at most {} ports", AhciOptions::MAX_PORTS));
      }
      label = fmt::format("ahci: port {}", options.ports.size());
      options.ports.push_back({.cd = item[0] == 'c', .path = item.substr(3)});
    } else if (options.ports.empty()) {
      throw std::invalid_argument("ahci: expected hd:PATH or cd:PATH, got '" + item + "'");
    } else {
      applyPortOption(options.ports.back(), label, item);
    }
  }
  if (options.ports.empty()) throw std::invalid_argument("ahci: no ports (hd:PATH or cd:PATH)");
  for (size_t i = 0; i < options.ports.size(); ++i) {
    AhciPortOptions& port = options.ports[i];
    std::string name = controller ? fmt::format("ahci: port {}", i) : std::string("ahci");
    if (port.path.empty()) throw std::invalid_argument(name + ": no image path");
    if (port.cd) {
      port.readOnly = true;  // A CD-ROM drive writes nothing.
      if (port.logicalSectorSize != 512) throw std::invalid_argument(name + ": sectorsize: a CD's is 2048");
    }
  }
  return options;
}

std::string formatAhciOptions(const AhciOptions& options) {
  std::string text;
  for (const AhciPortOptions& port : options.ports) {
    if (!text.empty()) text += ",";
    text += (port.cd ? "cd:" : "hd:") + port.path;
    if (port.readOnly) text += ",ro";
    if (port.noCache) text += ",nocache";
    if (port.direct) text += ",direct";
    if (port.noDelete) text += ",nodelete";
    if (port.logicalSectorSize != 512 || port.physicalSectorSize != 0) {
      text += fmt::format(",sectorsize={}", port.logicalSectorSize);
      if (port.physicalSectorSize != 0) text += fmt::format("/{}", port.physicalSectorSize);
    }
    if (!port.serial.empty()) text += ",ser=" + port.serial;
    if (!port.revision.empty()) text += ",rev=" + port.revision;
    if (!port.model.empty()) text += ",model=" + port.model;
    if (port.rotationRate != 1) text += fmt::format(",nmrr={}", port.rotationRate);
  }
  return text;
}

UniqueFd openAhciBackend(const AhciPortOptions& options, const std::string& name) {
  int flags = (options.readOnly ? O_RDONLY : O_RDWR) | O_CLOEXEC;
  if (options.noCache) flags |= O_DIRECT;
  if (options.direct) flags |= O_SYNC;
  return openDiskImage(options.path, flags, name);
}

}  // namespace cellvisor
