// NVMe slot options, bhyve's spelling:
//   `-s N,nvme,PATH[,maxq=N][,qsz=N][,ioslots=N][,sectsz=512|4096|8192][,ser=S]
//    [,eui64=N][,dsm=auto|enable|disable][,ro][,nocache][,direct]`
//   or `-s N,nvme,ram=MiB[,...]` for a namespace in memory.
// Parsed by the launcher (which opens the image or makes the memory) and by
// the server, from this one definition.
#pragma once

#include <cstdint>
#include <string>

#include "base/unique-fd.h"

namespace cellvisor {

struct NvmeOptions {
  std::string path;           // Empty with ram=.
  uint64_t ramMiB = 0;        // ram=: a namespace of this many MiB in memory.
  uint16_t maxQueues = 16;    // maxq: I/O queue pairs offered.
  uint32_t queueSize = 2048;  // qsz: entries per queue (CAP.MQES + 1).
  uint32_t ioSlots = 8;       // ioslots: commands in flight per I/O queue.
  uint32_t sectorSize = 0;    // sectsz: 0 means the image's own (512 if it has none).
  std::string serial;         // ser: up to 20 characters.
  uint64_t eui64 = 0;         // 0: derived from the device name.
  enum class Dsm { AUTO, ENABLE, DISABLE } dsm = Dsm::AUTO;
  bool readOnly = false;
  bool noCache = false;  // O_DIRECT
  bool direct = false;   // O_SYNC
};

// Throws std::invalid_argument naming the bad option.
NvmeOptions parseNvmeOptions(const std::string& text);
// The namespace's backend: the image opened as the options ask, or a sealed
// memfd of ram= MiB. Errors start with `name`.
UniqueFd openNvmeBackend(const NvmeOptions& options, const std::string& name);

}  // namespace cellvisor
