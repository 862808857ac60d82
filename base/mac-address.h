// Ethernet MAC addresses: the text form and a stable address derived from a
// name (a VM's NIC keeps its MAC across restarts and hosts, as vm-bhyve's).
#pragma once

#include <array>
#include <cstdint>
#include <string>

namespace cellvisor {

using MacAddress = std::array<uint8_t, 6>;

// "02:63:0a:0b:0c:0d"
std::string formatMac(const MacAddress& mac);
// A locally administered unicast MAC, the same for the same seed everywhere.
MacAddress derivedMac(const std::string& seed);

}  // namespace cellvisor
