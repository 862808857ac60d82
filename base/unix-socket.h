// A listening unix socket only its owner may connect to (consoles, control
// sockets): the guest's console is a root shell.
#pragma once

#include <string>
#include <utility>

#include "base/unique-fd.h"

namespace cellvisor {

// Binds `path` (replacing a stale socket) with mode 0600, listening,
// non-blocking. Throws std::invalid_argument for a path too long for a
// socket address, std::system_error otherwise.
UniqueFd listenOnUnixSocket(const std::string& path);

// A connected pair (SOCK_STREAM, SOCK_SEQPACKET...), close-on-exec.
std::pair<UniqueFd, UniqueFd> socketPair(int type);

}  // namespace cellvisor
