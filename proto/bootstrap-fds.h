// The descriptors of a bootstrap message sorted by role, and its RAM layout:
// unpacked the same way by a device server (from its spawner) and by a core
// that adopts the resources vmmd made for a device.
#pragma once

#include <vector>

#include "base/guest-memory.h"
#include "base/unique-fd.h"
#include "device.capnp.h"

namespace cellvisor {

// A server's bootstrap socket: the one descriptor it is started with.
constexpr int BOOTSTRAP_FD = 3;
// The most backends one server is handed (an AHCI controller's 32 ports).
constexpr size_t MAX_BACKENDS = 32;

struct BootstrapFds {
  UniqueFd memory;
  UniqueFd rings;
  UniqueFd state;
  UniqueFd requestDoorbell;
  UniqueFd replyDoorbell;
  std::vector<UniqueFd> queueDoorbells;
  std::vector<UniqueFd> interrupts;
  std::vector<UniqueFd> backends;  // Disks, taps: in the order the launcher opened them.
  UniqueFd barMemory;              // Shared BAR memory, when the device has some.
  UniqueFd inputSegment;  // The input link this side is an end of and its pipe's end, both or neither.
  UniqueFd inputDoorbell;
  UniqueFd pointerSegment;  // A display's link to a tablet and its pipe's write end, both or neither.
  UniqueFd pointerDoorbell;
};

// Takes `fds` (in the order the message names their roles). Throws
// ProtocolError when the protocol version, the number of descriptors or the
// queue/vector counts do not match.
BootstrapFds sortBootstrapFds(proto::Bootstrap::Reader bootstrap, std::vector<UniqueFd>& fds);
std::vector<RamRegion> bootstrapRamRegions(proto::Bootstrap::Reader bootstrap);

}  // namespace cellvisor
