#include "servers/ahci/ahci-options.h"

#include <fcntl.h>
#include <fmt/format.h>

#include <stdexcept>

#include "servers/runtime/disk-image.h"
#include "servers/runtime/slot-options.h"

namespace cellvisor {
namespace {

void requireLength(const std::string& key, const std::string& value, size_t limit) {
  if (value.empty() || value.size() > limit) {
    throw std::invalid_argument(fmt::format("ahci: {}: 1 to {} characters, got '{}'", key, limit, value));
  }
  for (char c : value) {
    if (c < 0x20 || c > 0x7e) throw std::invalid_argument("ahci: " + key + ": printable ASCII only");
  }
}

bool powerOfTwoSector(uint32_t size) {
  return size >= 512 && size <= 65536 && (size & (size - 1)) == 0;
}

}  // namespace

AhciOptions parseAhciOptions(const std::string& emulation, const std::string& text) {
  AhciOptions options;
  SlotOptions slot = splitSlotOptions(text);
  std::string first = slot.first;
  if (emulation == "ahci-cd") {
    options.cd = true;
  } else if (emulation == "ahci" || first.rfind("hd:", 0) == 0 || first.rfind("cd:", 0) == 0) {
    // The controller form names the port's kind before its path.
    if (first.rfind("hd:", 0) == 0 || first.rfind("cd:", 0) == 0) {
      options.cd = first[0] == 'c';
      first = first.substr(3);
    } else {
      throw std::invalid_argument("ahci: expected hd:PATH or cd:PATH, got '" + first + "'");
    }
  } else if (emulation != "ahci-hd") {
    throw std::invalid_argument("ahci: unknown emulation " + emulation);
  }
  if (first.empty()) throw std::invalid_argument("ahci: no image path");
  options.path = first;
  for (const auto& [key, value] : slot.settings) {
    if (key == "hd" || key.rfind("hd:", 0) == 0 || key.rfind("cd:", 0) == 0) {
      throw std::invalid_argument("ahci: one port per controller in this build; give each disk its own slot");
    } else if (key == "ro") {
      options.readOnly = true;
    } else if (key == "nocache") {
      options.noCache = true;
    } else if (key == "direct" || key == "sync") {
      options.direct = true;
    } else if (key == "nodelete") {
      options.noDelete = true;
    } else if (key == "sectorsize") {
      auto slash = value.find('/');
      options.logicalSectorSize = slotOptionNumber<uint32_t>("ahci", key, value.substr(0, slash));
      if (slash != std::string::npos) {
        options.physicalSectorSize = slotOptionNumber<uint32_t>("ahci", key, value.substr(slash + 1));
      }
      if (!powerOfTwoSector(options.logicalSectorSize) ||
          (options.physicalSectorSize != 0 && (!powerOfTwoSector(options.physicalSectorSize) ||
                                               options.physicalSectorSize < options.logicalSectorSize))) {
        throw std::invalid_argument("ahci: sectorsize: a power of two from 512 to 65536 (L[/P], P >= L)");
      }
    } else if (key == "ser") {
      requireLength(key, value, 20);
      options.serial = value;
    } else if (key == "rev") {
      requireLength(key, value, 8);
      options.revision = value;
    } else if (key == "model") {
      requireLength(key, value, 40);
      options.model = value;
    } else if (key == "nmrr") {
      options.rotationRate = slotOptionNumber<uint16_t>("ahci", key, value);
      if (options.rotationRate != 1 && (options.rotationRate < 0x401 || options.rotationRate == 0xffff)) {
        throw std::invalid_argument("ahci: nmrr: 1 (solid state) or a rotation rate of 1025-65534 RPM");
      }
    } else {
      throw std::invalid_argument("ahci: unknown option '" + key + "'");
    }
  }
  if (options.cd) {
    options.readOnly = true;  // A CD-ROM drive writes nothing.
    if (options.logicalSectorSize != 512) throw std::invalid_argument("ahci: sectorsize: a CD's is 2048");
  }
  return options;
}

std::string formatAhciOptions(const AhciOptions& options) {
  std::string text = (options.cd ? "cd:" : "hd:") + options.path;
  if (options.readOnly) text += ",ro";
  if (options.noCache) text += ",nocache";
  if (options.direct) text += ",direct";
  if (options.noDelete) text += ",nodelete";
  if (options.logicalSectorSize != 512 || options.physicalSectorSize != 0) {
    text += fmt::format(",sectorsize={}", options.logicalSectorSize);
    if (options.physicalSectorSize != 0) text += fmt::format("/{}", options.physicalSectorSize);
  }
  if (!options.serial.empty()) text += ",ser=" + options.serial;
  if (!options.revision.empty()) text += ",rev=" + options.revision;
  if (!options.model.empty()) text += ",model=" + options.model;
  if (options.rotationRate != 1) text += fmt::format(",nmrr={}", options.rotationRate);
  return text;
}

UniqueFd openAhciBackend(const AhciOptions& options, const std::string& name) {
  int flags = (options.readOnly ? O_RDONLY : O_RDWR) | O_CLOEXEC;
  if (options.noCache) flags |= O_DIRECT;
  if (options.direct) flags |= O_SYNC;
  return openDiskImage(options.path, flags, name);
}

}  // namespace cellvisor
