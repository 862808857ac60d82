// A command's data pointer (PRPs or SGLs, NVMe 1.4 4.3-4.4) turned into host
// iovecs over guest RAM. Everything the driver wrote is checked before use:
// list entries outside RAM, misaligned entries, lists that do not end,
// lengths that do not add up. Nothing outside guest RAM is ever named.
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <span>
#include <vector>

#include "servers/nvme/nvme-spec.h"

namespace cellvisor {

class GuestMemory;

namespace nvme {

// Most descriptors or pages one command may name (io_uring's readv limit).
constexpr size_t MAX_SEGMENTS = 1024;

// Fills `iov` with `length` bytes of the command's data buffer. `toHost`:
// the device writes guest memory (a read); only then may an SGL bit bucket
// appear, and its bytes land in `bucket`. Returns SUCCESS or the status to
// complete the command with.
uint16_t mapDataPointer(const GuestMemory& memory, const Command& command, uint64_t length, bool toHost,
                        std::span<uint8_t> bucket, std::vector<iovec>& iov);

// Copies between a host buffer and the command's data buffer (Identify, log
// pages, DSM ranges). Returns SUCCESS or the status to complete with.
uint16_t copyToGuest(const GuestMemory& memory, const Command& command, std::span<const uint8_t> data);
uint16_t copyFromGuest(const GuestMemory& memory, const Command& command, std::span<uint8_t> data);

}  // namespace nvme
}  // namespace cellvisor
