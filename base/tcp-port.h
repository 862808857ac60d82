// Finding a TCP port nobody has bound: for VNC displays that take the first
// free one from 5900 (vm-bhyve's graphics_port default), and for tests and
// benchmarks that need a display number.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace cellvisor {

// The first port in [from, to) that can be bound on `address` (an IPv4 or
// IPv6 literal) now; nothing when none can (or `address` is no address).
std::optional<uint16_t> firstFreeTcpPort(const std::string& address, uint16_t from, uint16_t to);

}  // namespace cellvisor
