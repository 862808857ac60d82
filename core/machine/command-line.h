// vmm-core's command line: bhyve(8)'s flags, alone or grouped (-AHP), and
// our long options, turned into configuration keys in the order given (so
// the last -m wins and -o overrides a -k file before it, as in bhyve).
// Every flag bhyve documents is accepted or refused by name: never a
// parser's generic complaint.
#pragma once

#include <optional>
#include <string>

#include "core/machine/machine-config.h"

namespace cellvisor {

struct CommandLine {
  // Set when the core must exit at once: 0 after -h or a help list (the
  // text goes to stdout), 4 for a bad argument (the text, with a usage
  // line, goes to stderr).
  std::optional<int> exitStatus;
  std::string message;

  ConfigStore store;
  int statusFd = -1;      // --status-fd
  int deviceSocket = -1;  // --device-socket
  bool traceBoot = false;
};

CommandLine parseCommandLine(int argc, const char* const* argv);

// bhyve's synopsis, adapted: the first line of every argument error.
extern const char* const USAGE;

}  // namespace cellvisor
