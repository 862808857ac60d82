// AHCI slot options, bhyve's spelling: `-s N,ahci-hd,PATH[,opts]` and
// `-s N,ahci-cd,PATH[,opts]` for a one-port controller, or
// `-s N,ahci,hd:PATH[,opts],cd:PATH[,opts],...` for up to 32 ports, where
// each hd:/cd: item starts the next port and the items after it are that
// port's options: block options (ro, nocache, direct, nodelete,
// sectorsize=L[/P]) and the AHCI ones (ser=, rev=, model=, nmrr=). The
// launcher hands the server the controller form.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/unique-fd.h"

namespace cellvisor {

struct AhciPortOptions {
  bool cd = false;  // An ATAPI CD-ROM (read-only, 2048-byte sectors), else an ATA disk.
  std::string path;
  bool readOnly = false;
  bool noCache = false;  // O_DIRECT
  bool direct = false;   // O_SYNC
  bool noDelete = false;
  uint32_t logicalSectorSize = 512;
  uint32_t physicalSectorSize = 0;  // 0: as logical.
  std::string serial;               // ser: up to 20 characters; derived from the device name if empty.
  std::string revision;             // rev: up to 8 characters.
  std::string model;                // model: up to 40 characters.
  uint16_t rotationRate = 1;        // nmrr: 1 = solid state, else RPM.
};

struct AhciOptions {
  static constexpr size_t MAX_PORTS = 32;
  std::vector<AhciPortOptions> ports;  // Port i is the i-th hd:/cd: item.
};

// `emulation` is "ahci", "ahci-hd" or "ahci-cd". Throws std::invalid_argument
// naming the bad option (and its port, on a controller with several).
AhciOptions parseAhciOptions(const std::string& emulation, const std::string& text);
// The options as the server gets them: "hd:PATH,...,cd:PATH,...".
std::string formatAhciOptions(const AhciOptions& options);
// A port's image, opened as its options ask. Errors start with `name`.
UniqueFd openAhciBackend(const AhciPortOptions& options, const std::string& name);

}  // namespace cellvisor
