// AHCI slot options, bhyve's spelling: `-s N,ahci-hd,PATH[,opts]`,
// `-s N,ahci-cd,PATH[,opts]`, or `-s N,ahci,hd:PATH[,opts]` (`cd:` for a CD),
// where opts are block options (ro, nocache, direct, nodelete,
// sectorsize=L[/P]) and the AHCI ones (ser=, rev=, model=, nmrr=). The
// launcher hands the server the one-port form, "hd:PATH,..." or "cd:PATH,...".
// This build has one port per controller.
#pragma once

#include <cstdint>
#include <string>

#include "base/unique-fd.h"

namespace cellvisor {

struct AhciOptions {
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

// `emulation` is "ahci", "ahci-hd" or "ahci-cd". Throws std::invalid_argument
// naming the bad option.
AhciOptions parseAhciOptions(const std::string& emulation, const std::string& text);
// The options as the server gets them ("hd:PATH,..." / "cd:PATH,...").
std::string formatAhciOptions(const AhciOptions& options);
// The port's image, opened as the options ask. Errors start with `name`.
UniqueFd openAhciBackend(const AhciOptions& options, const std::string& name);

}  // namespace cellvisor
