// Why vmctl cannot reach vmmd, in words a user can act on: the RPC layer's
// own "connect(): No such file or directory" names neither the socket nor
// the daemon.
#pragma once

#include <string>

namespace cellvisor::cli {

// Empty when `socketPath` accepts a connection; otherwise what is wrong
// (no vmmd there, a stale socket, another user's daemon) and what to do.
std::string vmmdUnreachableReason(const std::string& socketPath);

}  // namespace cellvisor::cli
