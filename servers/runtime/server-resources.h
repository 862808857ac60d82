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
  UniqueFd backend;
  UniqueFd barMemory;  // Shared BAR memory (the device maps it), when it has some.
  // The bootstrap socket stays open: its hang-up means the spawner is gone.
  int lifeline = -1;
};

// Reads the bootstrap from `socket`; throws ProtocolError naming what is
// missing or inconsistent.
ServerResources receiveServerResources(int socket);

}  // namespace cellvisor
