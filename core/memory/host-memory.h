// How much memory this host has, from /proc/meminfo, and whether a guest of
// a given size can be backed by it. Guest RAM is a sparse memfd, so a size
// the host cannot back is accepted by every system call and only fails, as
// the OOM killer, once the guest touches it: refuse it up front instead.
#pragma once

#include <cstdint>
#include <string>

namespace cellvisor {

struct HostMemory {
  uint64_t total = 0;      // MemTotal
  uint64_t swap = 0;       // SwapTotal
  uint64_t available = 0;  // MemAvailable: what can be had without swapping.
};

// Parses meminfo text; throws std::runtime_error if a field is missing.
HostMemory parseMeminfo(const std::string& text);
HostMemory readHostMemory();

// Throws std::invalid_argument when `guestBytes` is more than RAM and swap
// together (unless `overcommit`); returns a warning when it is more than the
// host has available now, "" when it fits.
std::string checkGuestMemory(uint64_t guestBytes, const HostMemory& host, bool overcommit);

// Locks [data, data + size) into RAM (bhyve -S). Throws std::runtime_error
// naming RLIMIT_MEMLOCK when the limit (or the host) forbids it.
void wireMemory(void* data, uint64_t size);
// Leaves [data, data + size) out of core dumps (bhyve without -C): a guest's
// RAM is large and holds the guest's secrets, not the core's state.
void excludeFromCoreDumps(void* data, uint64_t size);

// "512 MiB", "1 TiB", "23.5 GiB".
std::string formatBytes(uint64_t bytes);

}  // namespace cellvisor
