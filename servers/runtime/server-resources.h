// Everything a device server is handed by its spawner, unpacked from the
// bootstrap message: guest RAM mapped, the rings and state segment opened,
// eventfds sorted by role. The server opens no paths of its own.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/guest-memory.h"
#include "base/unique-fd.h"
#include "proto/input-segment.h"
#include "proto/ring-segment.h"
#include "proto/state-segment.h"

namespace cellvisor {

struct ServerResources {
  std::string deviceName;
  std::string options;
  bool restart = false;
  std::string sandbox;
  std::string faultInjection;
  std::unique_ptr<GuestMemory> memory;
  std::optional<RingSegment> rings;
  std::optional<StateSegment> state;
  UniqueFd requestDoorbell;
  UniqueFd replyDoorbell;
  std::vector<UniqueFd> queueDoorbells;
  std::vector<UniqueFd> interrupts;
  std::vector<UniqueFd> backends;  // In the order the launcher opened them.
  UniqueFd barMemory;              // Shared BAR memory (the device maps it), when it has some.
  // The input link this server is an end of, and its pipe's end: a
  // display writes (to the core), a tablet reads (from a display).
  std::optional<InputSegment> input;
  UniqueFd inputDoorbell;
  // A display's second link, to a tablet's server, and its pipe's write end.
  std::optional<InputSegment> pointer;
  UniqueFd pointerDoorbell;
  // The bootstrap socket stays open: its hang-up means the spawner is gone.
  int lifeline = -1;
};

// The one backend of a server that takes exactly one (a disk, a tap);
// throws naming `what` when there is none or more than one.
UniqueFd takeOnlyBackend(ServerResources& resources, const std::string& what);

// Reads the bootstrap from `socket`; throws ProtocolError naming what is
// missing or inconsistent.
ServerResources receiveServerResources(int socket);

}  // namespace cellvisor
